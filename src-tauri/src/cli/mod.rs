//! `gpudeck <command>`: the CLI, a client of gpudeckd (or, with `--local`, of the service's code in
//! this process). Machine output with `--json` on stdout; a failure is one line on stderr and a
//! non-zero exit. A file per domain: rs.rs, vol.rs, image.rs (images, registries), policy.rs,
//! system.rs (GPUs, doctor, ports, who).

mod catalog;
mod image;
mod policy;
mod rs;
mod system;
mod vol;

use std::io::Write;

use clap::{Parser, Subcommand};
use gpudeck_api::Client;
use gpudeck_core::paths::DataDir;
use gpudeck_core::{CoreError, Result};

pub use catalog::CatalogCmd;
pub use image::{ImageCmd, RegistryCmd};
pub use policy::{PolicyCmd, TokenCmd};
pub use rs::RsCmd;
pub use system::render_gpus;
pub use vol::VolCmd;

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
    /// Local images; pull and push with per-layer progress (`gpudeck image --help`).
    Image {
        #[command(subcommand)]
        cmd: ImageCmd,
        #[arg(long, global = true)]
        json: bool,
    },
    /// The lab's registries: add (admins), browse, delete (`gpudeck registry --help`).
    Registry {
        #[command(subcommand)]
        cmd: RegistryCmd,
        #[arg(long, global = true)]
        json: bool,
    },
    /// The catalog: launchable images with typed command templates (`gpudeck catalog --help`).
    Catalog {
        #[command(subcommand)]
        cmd: CatalogCmd,
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
    /// Tokens for scripts using the gpu-docker-api REST API (`gpudeckd --gda-listen`).
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
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
            Command::Gpus { json } => system::gpus(&client, json).await,
            Command::Doctor { json } => system::doctor(&client, json).await,
            Command::Rs { cmd, json } => rs::run(&client, cmd, json).await,
            Command::Ports { json } => system::ports(&client, json).await,
            Command::Image { cmd, json } => image::run(&client, cmd, json).await,
            Command::Catalog { cmd, json } => catalog::run(&client, cmd, json).await,
            Command::Registry { cmd, json } => image::registry(&client, cmd, json).await,
            Command::Vol { cmd, json } => vol::run(&client, cmd, json).await,
            Command::Policy { cmd, json } => policy::run(&client, cmd, json).await,
            Command::Audit { json } => policy::audit(&client, json).await,
            Command::Token { cmd, json } => policy::token(&client, cmd, json).await,
            Command::Whoami { json } => system::whoami(&client, json).await,
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

pub(crate) fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(|e| CoreError::Io {
        path: "stdout".into(),
        reason: e.to_string(),
    })?;
    writeln!(std::io::stdout(), "{text}").map_err(|e| CoreError::io("stdout", e))
}

/// A Unix time as the local date and time (`2026-11-24 09:41:03 CET`).
pub(crate) fn human_time(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map(|ts| {
            ts.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        })
        .unwrap_or_else(|_| t.to_string())
}
