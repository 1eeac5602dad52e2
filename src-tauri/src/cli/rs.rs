//! `gpudeck rs …`: replicaSets.

use std::time::Duration;

use clap::Subcommand;
use gpudeck_api::{Client, PatchRequest};
use gpudeck_core::replicaset::{Bind, RsInfo, RsSpec};
use gpudeck_core::{CoreError, Result};

use super::{human_time, print_json};

#[derive(Subcommand)]
pub enum RsCmd {
    /// Creates NAME-1 and starts it.
    Run {
        name: String,
        #[arg(long)]
        image: String,
        /// GPUs to give it (0: none, and it sees none).
        #[arg(long, default_value_t = 0)]
        gpus: u32,
        /// SRC:DEST[:ro], SRC a host path or a volume.
        #[arg(long = "bind")]
        binds: Vec<String>,
        /// KEY=VALUE.
        #[arg(long = "env")]
        env: Vec<String>,
        /// A container port; each gets a host port.
        #[arg(long = "port")]
        ports: Vec<u16>,
        /// The command (after --).
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Every replicaSet.
    Ls,
    Info {
        name: String,
    },
    /// Every version: when, what changed, the GPUs and ports it had.
    History {
        name: String,
    },
    /// Commits the current version to IMAGE[:TAG].
    Commit {
        name: String,
        image: String,
        #[arg(long, default_value = "")]
        message: String,
        /// Then push it (one job, two phases, with per-layer progress).
        #[arg(long)]
        push: bool,
    },
    /// A new version with another GPU count and/or one bind swapped; files carried over.
    Patch {
        name: String,
        #[arg(long)]
        gpus: Option<u32>,
        /// OLD_SRC:DEST=NEW_SRC:DEST
        #[arg(long = "swap-bind")]
        swap_bind: Option<String>,
    },
    /// A new version with VERSION's spec and files.
    Rollback {
        name: String,
        version: u32,
        /// VERSION's files are gone (pruned): start its configuration from its clean image.
        #[arg(long = "config-only")]
        config_only: bool,
    },
    /// Keeps the files of only the newest KEEP replaced versions; older ones roll back as
    /// configuration only.
    Prune {
        name: String,
        #[arg(long)]
        keep: u32,
    },
    /// Stops it and frees its GPUs and ports.
    Stop {
        name: String,
    },
    /// Freezes it; GPUs and ports stay held.
    Pause {
        name: String,
    },
    /// Continues a paused one, or starts a stopped one on its old GPUs and ports.
    Continue {
        name: String,
    },
    /// A new version on freshly chosen GPUs and ports; files carried over.
    Restart {
        name: String,
    },
    /// Runs a command in it: exit code, stdout, stderr.
    Exec {
        name: String,
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Its container's output.
    Logs {
        name: String,
        #[arg(long)]
        follow: bool,
    },
    /// Removes it and everything it owns.
    Rm {
        name: String,
    },
}

fn print_info(i: &RsInfo) {
    println!("name:      {}", i.name);
    println!("owner:     {}", i.spec.owner.as_deref().unwrap_or("-"));
    println!("version:   {} ({} versions)", i.version, i.versions);
    println!("container: {}", i.container);
    println!("status:    {:?}", i.status);
    println!("image:     {}", i.spec.image);
    println!(
        "gpus:      {}",
        if i.gpus.is_empty() {
            "-".into()
        } else {
            i.gpus.join(",")
        }
    );
    let ports: Vec<String> = i.ports.iter().map(|(c, h)| format!("{h}->{c}")).collect();
    println!(
        "ports:     {}",
        if ports.is_empty() {
            "-".into()
        } else {
            ports.join(",")
        }
    );
}

pub(super) async fn run(client: &Client, cmd: RsCmd, json: bool) -> Result<i32> {
    let show = |i: RsInfo| -> Result<i32> {
        if json {
            print_json(&i)?;
        } else {
            print_info(&i);
        }
        Ok(0)
    };
    match cmd {
        RsCmd::Run {
            name,
            image,
            gpus,
            binds,
            env,
            ports,
            command,
        } => {
            let binds = binds
                .iter()
                .map(|b| Bind::parse(b))
                .collect::<Result<Vec<_>>>()?;
            show(
                client
                    .rs_run(
                        &name,
                        RsSpec {
                            image,
                            command,
                            env,
                            binds,
                            ports,
                            gpus,
                            ..Default::default()
                        },
                    )
                    .await?,
            )
        }
        RsCmd::Ls => {
            let list = client.rs_list().await?;
            if json {
                print_json(&list)?;
            } else {
                println!(
                    "{:<20} {:<12} {:>7}  {:<8} {:<28} {:<5} PORTS",
                    "NAME", "OWNER", "VERSION", "STATUS", "IMAGE", "GPUS"
                );
                for i in list {
                    let ports: Vec<String> =
                        i.ports.iter().map(|(c, h)| format!("{h}->{c}")).collect();
                    println!(
                        "{:<20} {:<12} {:>7}  {:<8} {:<28} {:<5} {}",
                        i.name,
                        i.spec.owner.as_deref().unwrap_or("-"),
                        i.version,
                        format!("{:?}", i.status).to_lowercase(),
                        i.spec.image,
                        i.gpus.len(),
                        ports.join(",")
                    );
                }
            }
            Ok(0)
        }
        RsCmd::Info { name } => show(client.rs_info(&name).await?),
        RsCmd::History { name } => {
            let h = client.rs_history(&name).await?;
            if json {
                print_json(&h)?;
            } else {
                for v in h {
                    let ports: Vec<String> =
                        v.ports.iter().map(|(c, h)| format!("{h}->{c}")).collect();
                    let files = match (v.pruned, v.snapshot_bytes) {
                        (true, _) => "files pruned".to_string(),
                        (false, Some(b)) => format!("files {}", gpudeck_core::volume::human(b)),
                        (false, None) => "current".to_string(),
                    };
                    let commits = if v.commits.is_empty() {
                        String::new()
                    } else {
                        format!("  committed to {}", v.commits.join(", "))
                    };
                    println!(
                        "{}-{}  {}  {}  {}  gpus [{}]  ports [{}]  {}{commits}",
                        v.name,
                        v.version,
                        human_time(v.created_at),
                        v.op,
                        files,
                        v.gpus.join(","),
                        ports.join(","),
                        v.changes
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("; ")
                    );
                }
            }
            Ok(0)
        }
        RsCmd::Commit {
            name,
            image,
            message,
            push: true,
        } => {
            let job = client.rs_commit_push(&name, &image, &message).await?;
            super::image::follow(client, job, json).await
        }
        RsCmd::Commit {
            name,
            image,
            message,
            push: false,
        } => {
            let r = client.rs_commit(&name, &image, &message).await?;
            if json {
                print_json(&r)?;
            } else {
                println!("{} {}", r.image, r.id);
            }
            Ok(0)
        }
        RsCmd::Patch {
            name,
            gpus,
            swap_bind,
        } => {
            let swap = swap_bind
                .map(|s| {
                    let (old, new) = s.split_once('=').ok_or_else(|| CoreError::InvalidInput {
                        what: "--swap-bind".into(),
                        reason: format!("\"{s}\" is not OLD_SRC:DEST=NEW_SRC:DEST"),
                    })?;
                    Ok::<_, CoreError>((Bind::parse(old)?, Bind::parse(new)?))
                })
                .transpose()?;
            show(client.rs_patch(&name, &PatchRequest { gpus, swap }).await?)
        }
        RsCmd::Rollback {
            name,
            version,
            config_only,
        } => show(client.rs_rollback(&name, version, config_only).await?),
        RsCmd::Prune { name, keep } => {
            let r = client.rs_prune(&name, keep).await?;
            let pruned = &r.pruned;
            if json {
                print_json(&r)?;
            } else if pruned.is_empty() {
                println!("{name}: nothing to prune (at most {keep} replaced versions keep files)");
            } else {
                let list: Vec<String> = pruned.iter().map(|v| format!("{name}-{v}")).collect();
                println!(
                    "pruned {}: they roll back as configuration only now",
                    list.join(", ")
                );
            }
            Ok(0)
        }
        RsCmd::Stop { name } => show(client.rs_action(&name, "stop").await?),
        RsCmd::Pause { name } => show(client.rs_action(&name, "pause").await?),
        RsCmd::Continue { name } => show(client.rs_action(&name, "continue").await?),
        RsCmd::Restart { name } => show(client.rs_action(&name, "restart").await?),
        RsCmd::Exec {
            name,
            timeout,
            command,
        } => {
            if json {
                let out = client
                    .rs_exec(&name, &command, Duration::from_secs(timeout))
                    .await?;
                print_json(&out)?;
                return Ok(0);
            }
            // As it prints: nothing is kept, in the service or here.
            use futures_util::StreamExt;
            use gpudeck_core::docker::ExecFrame;
            use std::io::Write;
            let mut frames = client
                .rs_exec_stream(&name, &command, Duration::from_secs(timeout))
                .await?;
            let mut code = -1;
            while let Some(f) = frames.next().await {
                match f? {
                    ExecFrame::Stdout(t) => {
                        let mut o = std::io::stdout().lock();
                        let _ = o.write_all(t.as_bytes());
                        let _ = o.flush();
                    }
                    ExecFrame::Stderr(t) => {
                        let _ = std::io::stderr().write_all(t.as_bytes());
                    }
                    ExecFrame::Exit(c) => code = c,
                    ExecFrame::Error(e) => {
                        return Err(CoreError::InvalidInput {
                            what: "exec".into(),
                            reason: e,
                        })
                    }
                }
            }
            Ok(code as i32)
        }
        RsCmd::Logs { name, follow } => {
            use futures_util::StreamExt;
            let mut logs = client.rs_logs(&name, follow).await?;
            while let Some(chunk) = logs.next().await {
                print!("{}", chunk?);
            }
            Ok(0)
        }
        RsCmd::Rm { name } => {
            client.rs_delete(&name).await?;
            if json {
                print_json(&serde_json::json!({ "deleted": name }))?;
            } else {
                println!("deleted {name}");
            }
            Ok(0)
        }
    }
}
