//! The admin's per-user limits, and the audit. Members read their own limits; only admins
//! change them.

use axum::extract::{Path, State};
use axum::routing::{get, put};
use axum::Extension;
use axum::{Json, Router};
use gpudeck_api::{PolicyUpdate, PolicyView};
use gpudeck_core::policy::store::AuditEntry;
use gpudeck_core::policy::tokens::{NewToken, TokenInfo};
use gpudeck_core::policy::{self, PolicyRow};
use gpudeck_core::CoreError;

use super::{Api, St, Who};
use crate::state::Daemon;

pub fn routes() -> Router<std::sync::Arc<Daemon>> {
    Router::new()
        .route("/v1/policy", get(view))
        .route("/v1/policy/{user}", put(set))
        .route("/v1/audit", get(audit))
        .route("/v1/tokens", get(tokens).post(token_create))
        .route("/v1/tokens/{id}", axum::routing::delete(token_remove))
}

/// Tokens for the gpu-docker-api REST API: an admin makes them for anyone, a member for
/// themselves; each sees (and removes) the ones they may.
async fn tokens(State(d): St, Extension(c): Who) -> Api<Vec<TokenInfo>> {
    c.require_member()?;
    let mine = (!c.is_admin()).then_some(c.user.as_str());
    Ok(Json(d.db(|s| s.token_list(mine))?))
}

async fn token_create(
    State(d): St,
    Extension(c): Who,
    Json(r): Json<gpudeck_api::TokenRequest>,
) -> Api<NewToken> {
    c.require_member()?;
    if r.user != c.user {
        c.require_admin("make tokens for other users")?;
    }
    if nix::unistd::User::from_name(&r.user)
        .ok()
        .flatten()
        .is_none()
    {
        return Err(CoreError::InvalidInput {
            what: format!("user \"{}\"", r.user),
            reason: "there is no Linux user of that name on this machine".into(),
        }
        .into());
    }
    if r.name.len() > 100 || r.name.chars().any(char::is_control) {
        return Err(CoreError::InvalidInput {
            what: "token name".into(),
            reason: "use up to 100 characters, no control characters".into(),
        }
        .into());
    }
    Ok(Json(d.db(|s| s.token_create(&r.user, &r.name, &c.user))?))
}

async fn token_remove(State(d): St, Extension(c): Who, Path(id): Path<i64>) -> Api<()> {
    c.require_member()?;
    let mine = (!c.is_admin()).then_some(c.user.as_str());
    let known = d.db(|s| s.token_list(mine))?.iter().any(|t| t.id == id);
    if !known || !d.db(|s| s.token_remove(id))? {
        return Err(CoreError::InvalidInput {
            what: format!("token {id}"),
            reason: "there is no such token of yours (`gpudeck token ls` lists them)".into(),
        }
        .into());
    }
    Ok(Json(()))
}

async fn view(State(d): St, Extension(c): Who) -> Api<PolicyView> {
    c.require_member()?;
    let rows = d.db(|s| s.policy_rows())?;
    let rows = if c.is_admin() {
        rows
    } else {
        rows.into_iter()
            .filter(|r| r.user == c.user || r.user == policy::DEFAULT_ROW)
            .collect()
    };
    Ok(Json(PolicyView {
        rows,
        you: d.policy_of(&c)?,
    }))
}

async fn set(
    State(d): St,
    Extension(c): Who,
    Path(user): Path<String>,
    Json(u): Json<PolicyUpdate>,
) -> Api<PolicyRow> {
    c.require_admin("change limits")?;
    let mut row = d.db(|s| s.policy_row(&user))?.unwrap_or_else(|| PolicyRow {
        user: user.clone(),
        ..Default::default()
    });
    for f in &u.clear {
        match f.as_str() {
            "maxGpus" => row.max_gpus = None,
            "bindRoots" => row.bind_roots = None,
            "rootInContainer" => row.root_in_container = None,
            "maxVolumeBytes" => row.max_volume_bytes = None,
            "memoryBytes" => row.memory_bytes = None,
            "cpusMilli" => row.cpus_milli = None,
            other => {
                return Err(CoreError::InvalidInput {
                    what: "policy".into(),
                    reason: format!(
                        "\"{other}\" is not a field (maxGpus, bindRoots, rootInContainer, maxVolumeBytes, memoryBytes, cpusMilli)"
                    ),
                }
                .into())
            }
        }
    }
    if u.max_gpus.is_some() {
        row.max_gpus = u.max_gpus;
    }
    if u.bind_roots.is_some() {
        row.bind_roots = u.bind_roots;
    }
    if u.root_in_container.is_some() {
        row.root_in_container = u.root_in_container;
    }
    if let Some(v) = &u.max_volume_size {
        row.max_volume_bytes = Some(gpudeck_core::volume::parse_size(v)?);
    }
    if let Some(v) = &u.memory {
        row.memory_bytes = Some(gpudeck_core::volume::parse_size(v)?);
    }
    if let Some(c) = u.cpus {
        if !(c > 0.0 && c <= 1024.0) {
            return Err(CoreError::InvalidInput {
                what: "policy".into(),
                reason: format!("--cpus {c}: give more than 0 and at most 1024, e.g. 2 or 0.5"),
            }
            .into());
        }
        row.cpus_milli = Some((c * 1000.0).round() as u32);
    }
    policy::validate_row(&row)?;
    d.db(|s| s.policy_put(&row))?;
    Ok(Json(row))
}

async fn audit(State(d): St, Extension(c): Who) -> Api<Vec<AuditEntry>> {
    c.require_admin("read the audit")?;
    Ok(Json(d.db(|s| s.audit_recent(1000))?))
}
