//! `gpudeck policy …` and `gpudeck audit`: per-user limits and who did what.

use clap::Subcommand;
use gpudeck_api::{Client, PolicyUpdate};
use gpudeck_core::{CoreError, Result};

use super::{human_time, print_json};

#[derive(Subcommand)]
pub enum PolicyCmd {
    /// Every user's limits (members: their own) and yours after the defaults.
    Ls,
    /// Sets USER's limits, or the default ones (--default). Admins only.
    Set {
        /// The Linux user; leave out with --default.
        user: Option<String>,
        /// The row every user without one of their own falls back to.
        #[arg(long = "default", conflicts_with = "user")]
        default: bool,
        /// GPUs their replicaSets may hold at once.
        #[arg(long)]
        max_gpus: Option<u32>,
        /// A host folder they may bind (repeat for several; replaces the list).
        #[arg(long = "bind-root")]
        bind_roots: Vec<String>,
        /// Whether their containers may run as root (root-equivalent on the host with a
        /// writable bind).
        #[arg(long, value_parser = ["yes", "no"])]
        root_in_container: Option<String>,
        /// What all their volumes may hold together, e.g. 500GB.
        #[arg(long)]
        max_volume_size: Option<String>,
        /// Memory each of their containers gets at most, e.g. 16GiB.
        #[arg(long)]
        memory: Option<String>,
        /// CPUs each of their containers gets at most, e.g. 4 or 0.5.
        #[arg(long)]
        cpus: Option<f64>,
    },
}

pub(super) async fn run(client: &Client, cmd: PolicyCmd, json: bool) -> Result<i32> {
    match cmd {
        PolicyCmd::Ls => {
            let v = client.policy().await?;
            if json {
                print_json(&v)?;
                return Ok(0);
            }
            println!("{:<16} {:>8}  {:<6} BIND ROOTS", "USER", "MAX GPUS", "ROOT");
            for r in &v.rows {
                println!(
                    "{:<16} {:>8}  {:<6} {}",
                    if r.user == "*" { "(default)" } else { &r.user },
                    r.max_gpus
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "-".into()),
                    match r.root_in_container {
                        Some(true) => "yes",
                        Some(false) => "no",
                        None => "-",
                    },
                    r.bind_roots
                        .as_ref()
                        .map(|b| b.join(","))
                        .unwrap_or_else(|| "-".into())
                );
            }
            let size = |b: Option<u64>| {
                b.map(gpudeck_core::volume::human)
                    .unwrap_or_else(|| "unlimited".into())
            };
            println!(
                "you ({}): max GPUs {}, bind under {}, root in containers {}, volumes {}, memory {}, CPUs {}",
                v.you.user,
                v.you
                    .max_gpus
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "unlimited".into()),
                v.you.bind_roots.join(", "),
                if v.you.root_in_container { "yes" } else { "no" },
                size(v.you.max_volume_bytes),
                size(v.you.memory_bytes),
                v.you
                    .cpus_milli
                    .map(|c| format!("{}", f64::from(c) / 1000.0))
                    .unwrap_or_else(|| "unlimited".into())
            );
            Ok(0)
        }
        PolicyCmd::Set {
            user,
            default,
            max_gpus,
            bind_roots,
            root_in_container,
            max_volume_size,
            memory,
            cpus,
        } => {
            let user = match (user, default) {
                (_, true) => "*".to_string(),
                (Some(u), false) => u,
                (None, false) => {
                    return Err(CoreError::InvalidInput {
                        what: "policy set".into(),
                        reason: "name a USER, or --default".into(),
                    })
                }
            };
            let row = client
                .policy_set(
                    &user,
                    &PolicyUpdate {
                        max_gpus,
                        bind_roots: (!bind_roots.is_empty()).then_some(bind_roots),
                        root_in_container: root_in_container.map(|v| v == "yes"),
                        max_volume_size,
                        memory,
                        cpus,
                        clear: vec![],
                    },
                )
                .await?;
            if json {
                print_json(&row)?;
            } else {
                println!(
                    "limits of {} saved",
                    if user == "*" { "(default)" } else { &user }
                );
            }
            Ok(0)
        }
    }
}

pub(super) async fn audit(client: &Client, json: bool) -> Result<i32> {
    let entries = client.audit().await?;
    if json {
        print_json(&entries)?;
    } else {
        for e in entries {
            println!(
                "{}  {:<12} {:<40} {}",
                human_time(e.at),
                e.user,
                e.action,
                e.outcome
            );
        }
    }
    Ok(0)
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Makes a token for USER's scripts against the gpu-docker-api REST API (`gpudeckd
    /// --gda-listen`); printed once, kept only as a hash. Admins: any user; members: themselves.
    Create {
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// The tokens (members: their own), never their secrets.
    Ls,
    /// Removes a token by its id.
    Rm { id: i64 },
}

pub(super) async fn token(client: &Client, cmd: TokenCmd, json: bool) -> Result<i32> {
    match cmd {
        TokenCmd::Create { user, name } => {
            let t = client.token_create(&user, &name).await?;
            if json {
                print_json(&t)?;
            } else {
                println!("{}", t.token);
                eprintln!(
                    "token {} for {}: shown only now; send it as `Authorization: Bearer TOKEN`",
                    t.info.id, t.info.user
                );
            }
            Ok(0)
        }
        TokenCmd::Ls => {
            let v = client.tokens().await?;
            if json {
                print_json(&v)?;
            } else if v.is_empty() {
                println!("No tokens. Make one: gpudeck token create --user USER");
            } else {
                println!(
                    "{:>4}  {:<12} {:<20} {:<12} {:<26} LAST USED",
                    "ID", "USER", "NAME", "BY", "CREATED"
                );
                for t in v {
                    println!(
                        "{:>4}  {:<12} {:<20} {:<12} {:<26} {}",
                        t.id,
                        t.user,
                        t.name,
                        t.created_by,
                        human_time(t.created_at),
                        t.last_used
                            .map(human_time)
                            .unwrap_or_else(|| "never".into())
                    );
                }
            }
            Ok(0)
        }
        TokenCmd::Rm { id } => {
            client.token_remove(id).await?;
            if json {
                print_json(&serde_json::json!({ "removed": id }))?;
            }
            Ok(0)
        }
    }
}
