//! `gpudeck <command>`: the CLI on the same core as the app. Machine output with `--json` on
//! stdout; a failure is one line on stderr and a non-zero exit.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use clap::{Parser, Subcommand};
use gpudeck_core::docker::{ContainerDirectory, DockerAdapter};
use gpudeck_core::doctor::{self, CheckStatus};
use gpudeck_core::gpu::{self, GpuReading, GpuSnapshot, NvmlSource, NvmlState};
use gpudeck_core::paths::{nvml_lib_from_env, DataDir};
use gpudeck_core::settings::Settings;
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
}

/// Runs a CLI command; the exit code.
pub fn main(cmd: Command) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&e.to_string()),
    };
    let result = rt.block_on(async {
        let settings = Settings::load_file(&DataDir::resolve()?.settings_file())?;
        match cmd {
            Command::Gpus { json } => gpus(&settings, json).await,
            Command::Doctor { json } => doctor(&settings, json).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => fail(&e.to_string()),
    }
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

/// The engine's directory of containers, or an empty one when the engine does not answer quickly.
async fn directory(settings: &Settings) -> ContainerDirectory {
    let fetch = async {
        DockerAdapter::new(settings.docker_endpoint.as_deref())?
            .connect()
            .await?
            .directory()
            .await
    };
    match tokio::time::timeout(Duration::from_secs(3), fetch).await {
        Ok(Ok(d)) => d,
        _ => ContainerDirectory::default(),
    }
}

async fn gpus(settings: &Settings, json: bool) -> Result<i32> {
    let dir = directory(settings).await;
    let snap = NvmlSource::open(nvml_lib_from_env().as_deref())
        .and_then(|s| gpu::read_snapshot(&s, &dir, Path::new("/proc")))?;
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

async fn doctor(settings: &Settings, json: bool) -> Result<i32> {
    let checks = doctor::run(
        settings.docker_endpoint.as_deref(),
        nvml_lib_from_env().as_deref(),
    )
    .await;
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
