//! The catalog: everyone lists, checks, previews and launches entries; admins import, export and
//! delete them. A launch is a replicaSet run as the caller (the same policy as any run), recorded
//! with the entry, revision and image it came from.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use gpudeck_api::*;
use gpudeck_core::catalog::entry::{self, Rendered};
use gpudeck_core::catalog::filter::FilterSpec;
use gpudeck_core::catalog::store::EntryRecord;
use gpudeck_core::catalog::template::ParamKind;
use gpudeck_core::catalog::{self, compat, CatalogItem, Imported};
use gpudeck_core::replicaset::{RsInfo, RsSpec};
use gpudeck_core::{CoreError, Result};
use serde::Deserialize;

use super::{Api, St, Who};
use crate::state::Daemon;

pub fn routes() -> Router<Arc<Daemon>> {
    Router::new()
        .route("/v1/catalog", get(list))
        // A lab's whole catalog in one file may pass the usual 1 MiB.
        .route(
            "/v1/catalog/import",
            post(import).layer(axum::extract::DefaultBodyLimit::max(16 << 20)),
        )
        .route("/v1/catalog/export", post(export))
        .route("/v1/catalog/{name}", get(show).delete(remove))
        .route("/v1/catalog/{name}/render", post(render))
        .route("/v1/catalog/{name}/launch", post(launch))
}

fn not_found(name: &str) -> CoreError {
    CoreError::InvalidInput {
        what: format!("catalog entry \"{name}\""),
        reason: "there is none of that name (`gpudeck catalog ls` lists them)".into(),
    }
}

fn get_live(d: &Daemon, name: &str) -> Result<EntryRecord> {
    d.db(|s| s.catalog_get(name))?
        .filter(|r| r.deleted_at.is_none())
        .ok_or_else(|| not_found(name))
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    filter: Option<String>,
}

async fn list(
    State(d): St,
    Extension(c): Who,
    Query(q): Query<ListQuery>,
) -> Api<Vec<CatalogItem>> {
    c.require_member()?;
    let spec = match q.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(f) => FilterSpec::parse(f)?,
        None => FilterSpec::default(),
    };
    let all = d.db(|s| s.catalog_all())?;
    let picked = catalog::select(all, &spec)?;
    // The machine is read once for the whole list.
    let m = catalog::machine(&d.sampler.latest());
    Ok(Json(
        picked
            .into_iter()
            .map(|r| CatalogItem {
                compat: compat::check(&catalog::needs(&r.entry), &m),
                record: r,
            })
            .collect(),
    ))
}

/// One entry; where its image is on this machine, the CUDA version the image itself declares
/// (`NVIDIA_REQUIRE_CUDA`, `CUDA_VERSION`) is what is checked.
async fn show(State(d): St, Extension(c): Who, Path(name): Path<String>) -> Api<CatalogItem> {
    c.require_member()?;
    let rec = get_live(&d, &name)?;
    let mut needs = catalog::needs(&rec.entry);
    let own = match d.docker().await {
        Ok(docker) => d
            .images(&docker)
            .env_of(&rec.entry.image)
            .await
            .and_then(|env| compat::image_cuda(&env)),
        Err(_) => None,
    };
    let mut note = None;
    if !rec.entry.cpu_only {
        if let Some(v) = own {
            if needs.cuda.as_deref() != Some(v.as_str()) {
                note = Some(format!(
                    "The image on this machine declares CUDA {v}{}; that is what is checked.",
                    needs
                        .cuda
                        .as_deref()
                        .map(|e| format!(" (the entry says {e})"))
                        .unwrap_or_default()
                ));
            }
            needs.cuda = Some(v);
        }
    }
    let m = catalog::machine(&d.sampler.latest());
    let mut compat = compat::check(&needs, &m);
    if let Some(n) = note {
        compat.reasons.insert(0, n);
    }
    Ok(Json(CatalogItem {
        record: rec,
        compat,
    }))
}

async fn import(
    State(d): St,
    Extension(c): Who,
    Json(r): Json<CatalogImportRequest>,
) -> Api<Vec<Imported>> {
    c.require_admin("change the catalog")?;
    let parsed = catalog::parse_import(r.format, &r.text)?;
    let mut out = Vec::new();
    for (e, fixes) in parsed {
        let revision = d.db(|s| s.catalog_save(&e, &c.user))?;
        out.push(Imported {
            name: e.name.clone(),
            revision,
            fixes,
            command: e.command.clone(),
        });
    }
    Ok(Json(out))
}

async fn export(
    State(d): St,
    Extension(c): Who,
    Json(r): Json<CatalogExportRequest>,
) -> Api<String> {
    c.require_member()?;
    let all = d.db(|s| s.catalog_all())?;
    let mut entries = Vec::new();
    // A name is every version of it; NAME@VERSION one.
    let named = |e: &entry::Entry, n: &str| n == e.name || n == format!("{}@{}", e.name, e.version);
    for rec in all.into_iter().filter(|r| r.deleted_at.is_none()) {
        if r.names.is_empty() || r.names.iter().any(|n| named(&rec.entry, n)) {
            entries.push(rec.entry);
        }
    }
    for n in &r.names {
        if !entries.iter().any(|e| named(e, n)) {
            return Err(not_found(n).into());
        }
    }
    Ok(Json(if r.yaml {
        entry::write_yaml(&entries)
    } else {
        entry::write_json(&entries)
    }))
}

async fn remove(State(d): St, Extension(c): Who, Path(name): Path<String>) -> Api<()> {
    c.require_admin("change the catalog")?;
    let rec = get_live(&d, &name)?;
    let (entry, version) = (rec.entry.name.clone(), rec.entry.version.clone());
    // A bare name of several versions says which: a delete never picks one by itself.
    let versions = d.db(|s| s.catalog_versions(&entry))?;
    if name == entry && versions.len() > 1 {
        return Err(CoreError::InvalidInput {
            what: format!("catalog entry \"{name}\""),
            reason: format!(
                "it has the versions {}: name the one to delete as {entry}@VERSION",
                versions.join(", ")
            ),
        }
        .into());
    }
    let launched = d.db(|s| s.catalog_launches_of(&entry, &version))?;
    let existing: Vec<String> = d.db(|s| s.rs_names())?;
    let live: Vec<String> = launched
        .into_iter()
        .filter(|r| existing.contains(r))
        .collect();
    if !live.is_empty() {
        return Err(CoreError::InvalidInput {
            what: format!("catalog entry \"{name}\""),
            reason: format!(
                "the replicaSets {} were launched from it; delete them first. Nothing was changed",
                live.join(", ")
            ),
        }
        .into());
    }
    d.db(|s| s.catalog_delete(&entry, &version))?;
    Ok(Json(()))
}

/// The form's `KIND.NAME` → value map, as the renderer takes it.
fn values(v: &BTreeMap<String, String>) -> Result<BTreeMap<(ParamKind, String), String>> {
    v.iter()
        .map(|(k, x)| entry::parse_set(&format!("{k}={x}")))
        .collect()
}

async fn render(
    State(d): St,
    Extension(c): Who,
    Path(name): Path<String>,
    Json(r): Json<CatalogRenderRequest>,
) -> Api<Rendered> {
    c.require_member()?;
    let rec = get_live(&d, &name)?;
    Ok(Json(entry::render(&rec.entry, &values(&r.values)?, true)?))
}

async fn launch(
    State(d): St,
    Extension(c): Who,
    Path(name): Path<String>,
    Json(r): Json<CatalogLaunchRequest>,
) -> Api<RsInfo> {
    c.require_member()?;
    let rec = get_live(&d, &name)?;
    let e = &rec.entry;
    let gpus = r.gpus.unwrap_or(e.gpus.default);
    if gpus < e.gpus.min || gpus > e.gpus.max {
        return Err(CoreError::InvalidInput {
            what: "GPU count".into(),
            reason: format!(
                "\"{name}\" runs on {} to {} GPU(s), not {gpus}",
                e.gpus.min, e.gpus.max
            ),
        }
        .into());
    }
    let out = entry::render(e, &values(&r.values)?, false)?;
    let secrets: Vec<String> = e
        .params
        .iter()
        .filter(|p| p.ty == entry::ParamType::Secret)
        .map(|p| p.name.to_uppercase())
        .collect();
    let spec = RsSpec {
        image: e.image.clone(),
        command: out.argv,
        env: out.env,
        secret_env: (!secrets.is_empty()).then_some(secrets),
        binds: out.binds,
        gpus,
        ..Default::default()
    };
    let info = super::replicasets::run(
        State(d.clone()),
        Extension(c.clone()),
        Json(RunRequest {
            name: r.replicaset.clone(),
            spec,
        }),
    )
    .await?
    .0;
    // The image it ran, by id (recorded at run), whatever its tag points at later.
    let image_id = d
        .db(|s| s.rs_versions(&r.replicaset))?
        .first()
        .and_then(|v| v.image_id.clone());
    d.db(|s| {
        s.catalog_launch_add(
            &r.replicaset,
            &rec.entry.name,
            rec.revision,
            image_id.as_deref(),
        )
    })?;
    Ok(Json(info))
}
