//! `gpudeck catalog …`: launchable images described once, launched from their template.

use std::collections::BTreeMap;

use clap::Subcommand;
use gpudeck_api::{CatalogLaunchRequest, Client};
use gpudeck_core::catalog::ImportFormat;
use gpudeck_core::{CoreError, Result};

use super::print_json;

#[derive(Subcommand)]
pub enum CatalogCmd {
    /// Imports entries from FILE (admins): GPU Deck's file (YAML or JSON), Argon's payload or
    /// UFDL's image JSON, told from its contents unless --format says. An edit of an entry makes
    /// a new revision.
    Import {
        file: String,
        #[arg(long, value_parser = ["auto", "gpudeck", "argon", "ufdl"], default_value = "auto")]
        format: String,
    },
    /// GPU Deck's file of the entry (or of every entry), on stdout.
    Export {
        name: Option<String>,
        #[arg(long)]
        yaml: bool,
    },
    /// Entries, with whether each runs here; --filter takes UFDL's filter specification (JSON).
    Ls {
        #[arg(long)]
        filter: Option<String>,
    },
    /// One entry.
    Show { name: String },
    /// Deletes an entry (soft; refused while a replicaSet launched from it exists). Admins.
    Rm { name: String },
    /// Whether the entry runs on this workstation, and why.
    Check { name: String },
    /// The argv (and env, secrets masked) a launch would run.
    Render {
        name: String,
        /// KIND.NAME=VALUE, e.g. inputs.file=/home/me/a.png (repeat).
        #[arg(long = "set")]
        set: Vec<String>,
    },
    /// Launches a replicaSet from the entry.
    Launch {
        name: String,
        #[arg(long = "as")]
        replicaset: String,
        #[arg(long)]
        gpus: Option<u32>,
        #[arg(long = "set")]
        set: Vec<String>,
    },
}

fn values(set: &[String]) -> Result<BTreeMap<String, String>> {
    set.iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| CoreError::InvalidInput {
                    what: format!("--set {s}"),
                    reason: "write KIND.NAME=VALUE".into(),
                })
        })
        .collect()
}

pub(super) async fn run(client: &Client, cmd: CatalogCmd, json: bool) -> Result<i32> {
    match cmd {
        CatalogCmd::Import { file, format } => {
            let text = std::fs::read_to_string(&file).map_err(|e| CoreError::io(&file, e))?;
            let format = match format.as_str() {
                "argon" => ImportFormat::Argon,
                "ufdl" => ImportFormat::Ufdl,
                "gpudeck" => ImportFormat::Gpudeck,
                _ => ImportFormat::Auto,
            };
            let done = client.catalog_import(format, &text).await?;
            if json {
                print_json(&done)?;
            } else {
                for i in done {
                    println!(
                        "{} (revision {}): {}",
                        i.name,
                        i.revision,
                        shell_words(&i.command)
                    );
                    for p in i.fixes.added_params {
                        println!("  added a required string parameter for {{{{{p}}}}}: describe it, then import again");
                    }
                }
            }
            Ok(0)
        }
        CatalogCmd::Export { name, yaml } => {
            let names: Vec<String> = name.into_iter().collect();
            print!("{}", client.catalog_export(&names, yaml).await?);
            Ok(0)
        }
        CatalogCmd::Ls { filter } => {
            let v = client.catalog(filter.as_deref()).await?;
            if json {
                print_json(&v)?;
            } else if v.is_empty() {
                println!("No catalog entries. An admin imports some: gpudeck catalog import FILE");
            } else {
                println!(
                    "{:<28} {:<8} {:<40} {:<8} {:<9} HERE",
                    "NAME", "VERSION", "IMAGE", "CUDA", "STATUS"
                );
                for i in v {
                    let e = &i.record.entry;
                    println!(
                        "{:<28} {:<8} {:<40} {:<8} {:<9} {}",
                        e.name,
                        e.version,
                        e.image,
                        e.cuda_version
                            .as_deref()
                            .unwrap_or(if e.cpu_only { "cpu" } else { "-" }),
                        format!("{:?}", i.compat.status).to_lowercase(),
                        i.compat.reasons.first().cloned().unwrap_or_default()
                    );
                }
            }
            Ok(0)
        }
        CatalogCmd::Show { name } => {
            let i = client.catalog_show(&name).await?;
            if json {
                print_json(&i)?;
            } else {
                print!(
                    "{}",
                    gpudeck_core::catalog::entry::write_yaml(std::slice::from_ref(&i.record.entry))
                );
                println!(
                    "# revision {}, by {}",
                    i.record.revision, i.record.updated_by
                );
            }
            Ok(0)
        }
        CatalogCmd::Rm { name } => {
            client.catalog_remove(&name).await?;
            if json {
                print_json(&serde_json::json!({ "removed": name }))?;
            }
            Ok(0)
        }
        CatalogCmd::Check { name } => {
            let c = client.catalog_show(&name).await?.compat;
            if json {
                print_json(&c)?;
            } else {
                println!("{}", format!("{:?}", c.status).to_lowercase());
                for r in c.reasons {
                    println!("  {r}");
                }
            }
            Ok(if c.compatible { 0 } else { 3 })
        }
        CatalogCmd::Render { name, set } => {
            let r = client.catalog_render(&name, values(&set)?).await?;
            if json {
                print_json(&r)?;
            } else {
                println!("{}", shell_words(&r.argv));
                for e in r.env {
                    println!("env {e}");
                }
                for b in r.binds {
                    println!(
                        "bind {}:{}{}",
                        b.src,
                        b.dest,
                        if b.read_only { ":ro" } else { "" }
                    );
                }
            }
            Ok(0)
        }
        CatalogCmd::Launch {
            name,
            replicaset,
            gpus,
            set,
        } => {
            let info = client
                .catalog_launch(
                    &name,
                    &CatalogLaunchRequest {
                        replicaset,
                        gpus,
                        values: values(&set)?,
                    },
                )
                .await?;
            if json {
                print_json(&info)?;
            } else {
                println!(
                    "{} started ({})",
                    info.container,
                    shell_words(&info.spec.command)
                );
            }
            Ok(0)
        }
    }
}

/// An argv as a shell would need it typed (for showing only).
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
