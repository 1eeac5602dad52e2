//! `gpudeck image …` and `gpudeck registry …`: local images, pulls and pushes with per-layer bars
//! (one JSON object a line with `--json`), and the lab's registries.

use std::collections::HashMap;
use std::io::{IsTerminal, Read};

use clap::Subcommand;
use futures_util::StreamExt;
use gpudeck_api::Client;
use gpudeck_core::image::jobs::{JobState, JobView};
use gpudeck_core::image::RegistryAdd;
use gpudeck_core::volume::human;
use gpudeck_core::{CoreError, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::{human_time, print_json};

#[derive(Subcommand)]
pub enum ImageCmd {
    /// Local images, with the replicaSet versions that use them.
    Ls,
    /// One image: config, layers with sizes, users.
    Inspect { image: String },
    /// Gives SOURCE (a name or id) the name TARGET.
    Tag { source: String, target: String },
    /// Removes a tag, or the image at its last tag (refused while replicaSets use it).
    Rm { image: String },
    /// Removes dangling images no replicaSet version uses (admins).
    Prune,
    /// Pulls with per-layer progress (credentials of a registry added for that host).
    Pull { image: String },
    /// Pushes with per-layer progress (members: images under their own name).
    Push { image: String },
}

#[derive(Subcommand)]
pub enum RegistryCmd {
    /// Adds a registry after trying its login (admins). The password is read from stdin.
    Add {
        name: String,
        url: String,
        #[arg(long)]
        user: Option<String>,
        /// Read the password from stdin (one line), never from the command line.
        #[arg(long)]
        password_stdin: bool,
    },
    /// The registries GPU Deck knows.
    Ls,
    /// Forgets a registry and its password (admins).
    Rm { name: String },
    /// Every repository of a registry.
    Repos { name: String },
    /// The tags of REPO.
    Tags { name: String, repo: String },
    /// Digest, compressed size, created and platforms of REPO:TAG.
    Info { name: String, image: String },
    /// Deletes REPO:TAG by digest, with every tag of that digest (admins).
    Delete { name: String, image: String },
}

pub async fn run(client: &Client, cmd: ImageCmd, json: bool) -> Result<i32> {
    match cmd {
        ImageCmd::Ls => {
            let list = client.images_local().await?;
            if json {
                print_json(&list)?;
                return Ok(0);
            }
            if list.is_empty() {
                println!("No images. Pull one: gpudeck image pull IMAGE");
                return Ok(0);
            }
            println!(
                "{:<48} {:<14} {:>10}  {:<20}  USED BY",
                "NAME", "ID", "SIZE", "CREATED"
            );
            for i in list {
                let id =
                    i.id.trim_start_matches("sha256:")
                        .chars()
                        .take(12)
                        .collect::<String>();
                let used: Vec<String> = i
                    .used_by
                    .iter()
                    .map(|u| format!("{}-{}", u.replicaset, u.version))
                    .collect();
                let names = if i.tags.is_empty() {
                    vec!["<none>".to_string()]
                } else {
                    i.tags.clone()
                };
                for n in names {
                    println!(
                        "{:<48} {:<14} {:>10}  {:<20}  {}",
                        n,
                        id,
                        human(i.size),
                        human_time(i.created),
                        used.join(", ")
                    );
                }
            }
            Ok(0)
        }
        ImageCmd::Inspect { image } => {
            let d = client.image_inspect(&image).await?;
            if json {
                print_json(&d)?;
                return Ok(0);
            }
            println!("id:       {}", d.image.id);
            println!("names:    {}", d.image.tags.join(", "));
            println!("size:     {}", human(d.image.size));
            println!("created:  {}", human_time(d.image.created));
            println!("platform: {}/{}", d.os, d.architecture);
            println!("cmd:      {:?}", d.cmd);
            if !d.entrypoint.is_empty() {
                println!("entrypoint: {:?}", d.entrypoint);
            }
            for e in &d.env {
                println!("env:      {e}");
            }
            for u in &d.image.used_by {
                println!("used by:  {}-{} ({})", u.replicaset, u.version, u.role);
            }
            if let Some(o) = &d.image.origin {
                println!("committed from: {}-{}", o.replicaset, o.version);
            }
            println!("layers:");
            for l in &d.layers {
                let by: String = l.created_by.chars().take(90).collect();
                println!("  {:>10}  {by}", human(l.size));
            }
            Ok(0)
        }
        ImageCmd::Tag { source, target } => {
            client.image_tag(&source, &target).await?;
            if json {
                print_json(&serde_json::json!({ "source": source, "target": target }))?;
            }
            Ok(0)
        }
        ImageCmd::Rm { image } => {
            let gone = client.image_remove(&image).await?;
            if json {
                print_json(&gone)?;
            } else {
                for g in gone {
                    println!("{g}");
                }
            }
            Ok(0)
        }
        ImageCmd::Prune => {
            let r = client.image_prune().await?;
            if json {
                print_json(&r)?;
            } else {
                println!(
                    "removed {} image(s), {} reclaimed; kept {} a replicaSet version uses",
                    r.removed.len(),
                    human(r.reclaimed),
                    r.kept.len()
                );
            }
            Ok(0)
        }
        ImageCmd::Pull { image } => {
            let job = client.image_pull(&image).await?;
            follow(client, job, json).await
        }
        ImageCmd::Push { image } => {
            let job = client.image_push(&image).await?;
            follow(client, job, json).await
        }
    }
}

/// Follows a job to its end: bars on a terminal, one JSON object a line with `--json` (each
/// layer's change, then the digest), else only the result (a failure stays one line on stderr).
/// Ending the CLI (Ctrl-C) cancels the job.
pub async fn follow(client: &Client, job: JobView, json: bool) -> Result<i32> {
    let mut events = client.job_events(job.id, true).await?;
    let bars = (!json && std::io::stderr().is_terminal()).then(MultiProgress::new);
    let overall = bars.as_ref().map(|m| {
        let b = m.add(ProgressBar::new(0));
        b.set_style(
            ProgressStyle::with_template(
                "{msg:30} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.set_message(job.image.clone());
        b
    });
    let mut layer_bars: HashMap<String, ProgressBar> = HashMap::new();
    let mut seen: HashMap<String, (String, u64)> = HashMap::new();
    let mut phase = String::new();
    let mut last = job;
    while let Some(v) = events.next().await {
        let v = v?;
        if v.phase != phase {
            phase = v.phase.clone();
            if json {
                println!("{}", serde_json::json!({ "phase": phase }));
            }
            seen.clear();
        }
        for l in &v.progress.layers {
            let key = format!("{phase}/{}", l.id);
            let now = (l.status.clone(), l.current);
            if seen.get(&key) == Some(&now) {
                continue;
            }
            seen.insert(key.clone(), now);
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "phase": phase, "layer": l.id, "status": l.status,
                        "current": l.current, "total": l.total,
                    })
                );
            } else if let Some(m) = &bars {
                let b = layer_bars.entry(key).or_insert_with(|| {
                    let b = m.add(ProgressBar::new(0));
                    b.set_style(
                        ProgressStyle::with_template(
                            "  {prefix:12} {msg:22} [{bar:30}] {bytes}/{total_bytes}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    b.set_prefix(l.id.chars().take(12).collect::<String>());
                    b
                });
                b.set_length(l.total.unwrap_or(0));
                b.set_position(l.current);
                b.set_message(l.status.clone());
            }
        }
        if let Some(b) = &overall {
            b.set_length(v.progress.total);
            b.set_position(v.progress.current);
        }
        last = v;
    }
    if let Some(m) = &bars {
        let _ = m.clear();
    }
    match last.state {
        JobState::Done => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "image": last.image, "digest": last.digest, "state": "done" })
                );
            } else {
                println!(
                    "{} {}",
                    last.image,
                    last.digest
                        .as_deref()
                        .unwrap_or("(the engine named no digest)")
                );
            }
            Ok(0)
        }
        _ => {
            let e = last.error.map(CoreError::from).unwrap_or_else(|| {
                CoreError::Docker(
                    "the job ended without saying how; `gpudeck` lost the service's stream".into(),
                )
            });
            Err(e)
        }
    }
}

pub async fn registry(client: &Client, cmd: RegistryCmd, json: bool) -> Result<i32> {
    match cmd {
        RegistryCmd::Add {
            name,
            url,
            user,
            password_stdin,
        } => {
            let password = if password_stdin {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .map_err(|e| CoreError::io("stdin", e))?;
                Some(s.trim_end_matches(['\n', '\r']).to_string())
            } else {
                None
            };
            let r = client
                .registry_add(&RegistryAdd {
                    name,
                    url,
                    username: user,
                    password,
                })
                .await?;
            if json {
                print_json(&r)?;
            } else {
                println!("added {} ({}), login checked", r.name, r.url);
            }
            Ok(0)
        }
        RegistryCmd::Ls => {
            let list = client.registries().await?;
            if json {
                print_json(&list)?;
            } else if list.is_empty() {
                println!("No registries. An admin adds one: gpudeck registry add NAME URL --user USER --password-stdin");
            } else {
                println!("{:<16} {:<36} {:<16} ADDED BY", "NAME", "URL", "USER");
                for r in list {
                    println!(
                        "{:<16} {:<36} {:<16} {}",
                        r.name,
                        r.url,
                        r.username.as_deref().unwrap_or("-"),
                        r.created_by
                    );
                }
            }
            Ok(0)
        }
        RegistryCmd::Rm { name } => {
            client.registry_remove(&name).await?;
            if json {
                print_json(&serde_json::json!({ "removed": name }))?;
            }
            Ok(0)
        }
        RegistryCmd::Repos { name } => {
            let v = client.registry_repositories(&name).await?;
            lines(&v, json)
        }
        RegistryCmd::Tags { name, repo } => {
            let v = client.registry_tags(&name, &repo).await?;
            lines(&v, json)
        }
        RegistryCmd::Info { name, image } => {
            let i = client.registry_info(&name, &image).await?;
            if json {
                print_json(&i)?;
            } else {
                println!("digest:   {}", i.digest);
                println!("size:     {} (compressed, in the registry)", human(i.size));
                println!("created:  {}", i.created.as_deref().unwrap_or("-"));
                for p in &i.platforms {
                    println!(
                        "platform: {}/{}{} {} {}",
                        p.os,
                        p.architecture,
                        p.variant
                            .as_deref()
                            .map(|v| format!("/{v}"))
                            .unwrap_or_default(),
                        human(p.size),
                        p.digest
                    );
                }
            }
            Ok(0)
        }
        RegistryCmd::Delete { name, image } => {
            let d = client.registry_delete(&name, &image).await?;
            if json {
                print_json(&d)?;
            } else {
                println!(
                    "deleted {} ({}); tags gone with it: {}. The registry frees the disk at its next garbage collection.",
                    d.digest,
                    d.repository,
                    d.tags.join(", ")
                );
            }
            Ok(0)
        }
    }
}

fn lines(v: &[String], json: bool) -> Result<i32> {
    if json {
        print_json(&v)?;
    } else {
        for s in v {
            println!("{s}");
        }
    }
    Ok(0)
}
