//! `gpudeck <command>`: the CLI on the same core as the app. Machine output with `--json` on
//! stdout; a failure is one line on stderr and a non-zero exit.

use std::io::Write;
use std::time::Duration;

use clap::{Parser, Subcommand};
use gpudeck_api::{Client, PatchRequest, PolicyUpdate};
use gpudeck_core::doctor::CheckStatus;
use gpudeck_core::gpu::{GpuReading, GpuSnapshot, NvmlState};
use gpudeck_core::paths::DataDir;
use gpudeck_core::replicaset::{Bind, RsInfo, RsSpec};
use gpudeck_core::volume::{human, VolumeInfo};
use gpudeck_core::{CoreError, Result};

#[derive(Parser)]
#[command(
    name = "gpudeck",
    version,
    about = "GPU Deck: run a lab's GPU workstation. With no command, opens the app."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The service's socket (default: $GPUDECK_SOCKET, else /run/gpudeck/gpudeck.sock).
    #[arg(long, global = true)]
    pub socket: Option<String>,
    /// Root only, when no service runs: run the service's code in this process on the data folder
    /// ($GPUDECK_DATA_DIR, else /var/lib/gpudeck), for scripts and recovery.
    #[arg(long, global = true)]
    pub local: bool,
}

#[derive(Subcommand)]
pub enum Command {
    /// Every GPU with its readings, processes and the containers that hold it.
    Gpus {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Checks the Docker engine, the NVIDIA driver, the container hook, storage and volume limits.
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// ReplicaSets: named, versioned GPU containers (`gpudeck rs --help`).
    Rs {
        #[command(subcommand)]
        cmd: RsCmd,
        /// Machine-readable output on stdout.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Volumes: named, versioned, with enforced sizes (`gpudeck vol --help`).
    Vol {
        #[command(subcommand)]
        cmd: VolCmd,
        #[arg(long, global = true)]
        json: bool,
    },
    /// The host port range containers get: who uses which port.
    Ports {
        #[arg(long)]
        json: bool,
    },
    /// Per-user limits an admin sets: GPUs at once, bind roots, root in containers.
    Policy {
        #[command(subcommand)]
        cmd: PolicyCmd,
        #[arg(long, global = true)]
        json: bool,
    },
    /// Who did what, newest first (admins).
    Audit {
        #[arg(long)]
        json: bool,
    },
    /// Who the service says you are, and your role.
    Whoami {
        #[arg(long)]
        json: bool,
    },
}

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
    },
}

#[derive(Subcommand)]
pub enum VolCmd {
    /// Creates NAME-1 of SIZE (512MB, 20GB, 1.5TB decimal; 64GiB binary; or bytes).
    Create {
        name: String,
        #[arg(long)]
        size: String,
    },
    Ls,
    Info {
        name: String,
    },
    History {
        name: String,
    },
    /// A new version of SIZE with every byte copied.
    Resize {
        name: String,
        #[arg(long)]
        size: String,
        /// Move the replicaSets that bind it to the new version (a patch each).
        #[arg(long = "move")]
        move_users: bool,
    },
    /// Deletes it (refused while a container uses it); its history stays.
    Rm {
        name: String,
    },
}

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

/// Runs a CLI command; the exit code.
pub fn main(cli: Cli) -> i32 {
    let Some(cmd) = cli.command else {
        return 0;
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&e.to_string()),
    };
    let result = rt.block_on(async {
        let client = connect(cli.socket.as_deref(), cli.local).await?;
        match cmd {
            Command::Gpus { json } => gpus(&client, json).await,
            Command::Doctor { json } => doctor(&client, json).await,
            Command::Rs { cmd, json } => rs(&client, cmd, json).await,
            Command::Ports { json } => ports(&client, json).await,
            Command::Vol { cmd, json } => vol(&client, cmd, json).await,
            Command::Policy { cmd, json } => policy(&client, cmd, json).await,
            Command::Audit { json } => audit(&client, json).await,
            Command::Whoami { json } => whoami(&client, json).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => fail(&e.to_string()),
    }
}

/// The service's client, or with `--local` (root) the service's code in this process.
async fn connect(socket: Option<&str>, local: bool) -> Result<Client> {
    if !local {
        return Ok(Client::unix(gpudeck_api::socket_path(socket)));
    }
    if !nix_is_root() {
        return Err(CoreError::Forbidden(
            "--local runs the privileged service's code and needs root: run it with sudo, or leave --local out to use the service.".into(),
        ));
    }
    let data = match std::env::var_os("GPUDECK_DATA_DIR").filter(|v| !v.is_empty()) {
        Some(d) => DataDir::at(d),
        None => DataDir::at("/var/lib/gpudeck"),
    };
    gpudeck_daemon::local(data).await
}

fn nix_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn fail(msg: &str) -> i32 {
    eprintln!("gpudeck: {msg}");
    1
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| CoreError::Io {
        path: "stdout".into(),
        reason: e.to_string(),
    })?;
    writeln!(std::io::stdout(), "{text}").map_err(|e| CoreError::io("stdout", e))
}

async fn gpus(client: &Client, json: bool) -> Result<i32> {
    let snap = client.gpus().await?;
    if json {
        print_json(&snap)?;
    } else {
        print!("{}", render_gpus(&snap));
    }
    Ok(0)
}

fn na<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "N/A".into())
}

fn gib(b: Option<u64>) -> String {
    b.map(|b| format!("{:.1}", b as f64 / (1u64 << 30) as f64))
        .unwrap_or_else(|| "N/A".into())
}

fn row(g: &GpuReading) -> [String; 7] {
    let holders: Vec<String> = g
        .held_by
        .iter()
        .map(|c| {
            if c.name.is_empty() {
                c.id.chars().take(12).collect()
            } else {
                c.name.clone()
            }
        })
        .collect();
    [
        g.index.to_string(),
        na(g.name.clone()),
        g.utilization_gpu_pct
            .map(|u| format!("{u}%"))
            .unwrap_or_else(|| "N/A".into()),
        format!(
            "{}/{} GiB",
            gib(g.memory_used_bytes),
            gib(g.memory_total_bytes)
        ),
        g.temperature_c
            .map(|t| format!("{t}°C"))
            .unwrap_or_else(|| "N/A".into()),
        match (g.power_draw_mw, g.power_limit_mw) {
            (Some(d), Some(l)) => format!("{}/{} W", d / 1000, l / 1000),
            (Some(d), None) => format!("{} W", d / 1000),
            (None, _) => "N/A".into(),
        },
        if holders.is_empty() {
            "-".into()
        } else {
            holders.join(",")
        },
    ]
}

/// The human table of `gpudeck gpus`.
pub fn render_gpus(snap: &GpuSnapshot) -> String {
    if let NvmlState::Unavailable { reason } = &snap.nvml {
        return format!("No NVIDIA GPUs: {reason}\n");
    }
    let mut rows =
        vec![["IDX", "NAME", "UTIL", "MEMORY", "TEMP", "POWER", "HELD BY"].map(String::from)];
    rows.extend(snap.gpus.iter().map(row));
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!(
        "Driver {}  CUDA {}  {} GPU(s)\n",
        na(snap.driver_version.clone()),
        na(snap.cuda_driver_version.clone()),
        snap.gpus.len()
    );
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

async fn doctor(client: &Client, json: bool) -> Result<i32> {
    let checks = client.doctor().await?;
    if json {
        print_json(&checks)?;
    } else {
        for c in &checks {
            let mark = match c.status {
                CheckStatus::Ok => "ok  ",
                CheckStatus::Warn => "warn",
                CheckStatus::Fail => "FAIL",
            };
            println!("[{mark}] {:<17} {}", c.id, c.summary);
            if let Some(fix) = &c.fix {
                println!("       {:<17} fix: {fix}", "");
            }
        }
    }
    // Doctor reports; it fails (exit 1) only when a check failed.
    Ok(i32::from(
        checks.iter().any(|c| c.status == CheckStatus::Fail),
    ))
}

/// A Unix time as the local date and time (`2026-11-24 09:41:03 CET`).
fn human_time(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map(|ts| {
            ts.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        })
        .unwrap_or_else(|_| t.to_string())
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

async fn rs(client: &Client, cmd: RsCmd, json: bool) -> Result<i32> {
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
            let out = client
                .rs_exec(&name, &command, Duration::from_secs(timeout))
                .await?;
            if json {
                print_json(&out)?;
                Ok(0)
            } else {
                print!("{}", out.stdout);
                eprint!("{}", out.stderr);
                Ok(out.exit_code as i32)
            }
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

async fn ports(client: &Client, json: bool) -> Result<i32> {
    let map = client.ports().await?;
    if json {
        print_json(&map)?;
    } else {
        println!(
            "range {}-{}: {} used, {} free",
            map.start,
            map.end,
            map.used.len(),
            map.free
        );
        for u in map.used {
            println!(
                "{:>5}  {:<10} {}",
                u.port,
                format!("{:?}", u.kind).to_lowercase(),
                u.owner
            );
        }
    }
    Ok(0)
}

fn print_volume(v: &VolumeInfo) {
    println!("name:    {}", v.name);
    println!("owner:   {}", v.owner.as_deref().unwrap_or("-"));
    println!("version: {} (docker volume {})", v.version, v.docker_name);
    println!("size:    {}", human(v.size_bytes));
    println!(
        "used:    {}",
        v.used_bytes.map(human).unwrap_or_else(|| "N/A".into())
    );
    let how = match v.backend.as_str() {
        gpudeck_core::volume::XFS_QUOTA => "XFS project quota on its folder",
        _ => "ext4 in a file on a loop device",
    };
    println!("limit:   {} ({how}; writes past the size fail)", v.backend);
    println!(
        "users:   {}",
        if v.users.is_empty() {
            "-".into()
        } else {
            v.users.join(",")
        }
    );
}

async fn vol(client: &Client, cmd: VolCmd, json: bool) -> Result<i32> {
    let show = |v: VolumeInfo| -> Result<i32> {
        if json {
            print_json(&v)?;
        } else {
            print_volume(&v);
        }
        Ok(0)
    };
    match cmd {
        VolCmd::Create { name, size } => show(client.vol_create(&name, &size).await?),
        VolCmd::Ls => {
            let list = client.vol_list().await?;
            if json {
                print_json(&list)?;
            } else {
                println!(
                    "{:<20} {:>7}  {:<24} {:<24} USERS",
                    "NAME", "VERSION", "SIZE", "USED"
                );
                for v in list {
                    println!(
                        "{:<20} {:>7}  {:<24} {:<24} {}",
                        v.name,
                        v.version,
                        human(v.size_bytes),
                        v.used_bytes.map(human).unwrap_or_else(|| "N/A".into()),
                        v.users.join(",")
                    );
                }
            }
            Ok(0)
        }
        VolCmd::Info { name } => show(client.vol_info(&name).await?),
        VolCmd::History { name } => {
            let h = client.vol_history(&name).await?;
            if json {
                print_json(&h)?;
            } else {
                for v in h {
                    println!(
                        "{}-{}  {}  {}  {}{}",
                        v.name,
                        v.version,
                        v.created_at,
                        v.op,
                        human(v.size_bytes),
                        if v.retired_at.is_some() {
                            "  (retired)"
                        } else {
                            ""
                        }
                    );
                }
            }
            Ok(0)
        }
        VolCmd::Resize {
            name,
            size,
            move_users,
        } => show(client.vol_resize(&name, &size, move_users).await?),
        VolCmd::Rm { name } => {
            client.vol_delete(&name).await?;
            if json {
                print_json(&serde_json::json!({ "deleted": name }))?;
            } else {
                println!("deleted {name}");
            }
            Ok(0)
        }
    }
}

async fn policy(client: &Client, cmd: PolicyCmd, json: bool) -> Result<i32> {
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
            println!(
                "you ({}): max GPUs {}, bind under {}, root in containers {}",
                v.you.user,
                v.you
                    .max_gpus
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "unlimited".into()),
                v.you.bind_roots.join(", "),
                if v.you.root_in_container { "yes" } else { "no" }
            );
            Ok(0)
        }
        PolicyCmd::Set {
            user,
            default,
            max_gpus,
            bind_roots,
            root_in_container,
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

async fn audit(client: &Client, json: bool) -> Result<i32> {
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

async fn whoami(client: &Client, json: bool) -> Result<i32> {
    let c = client.whoami().await?;
    if json {
        print_json(&c)?;
    } else {
        println!("{} (uid {}): {:?}", c.user, c.uid, c.role);
    }
    c.require_member()?;
    Ok(0)
}
