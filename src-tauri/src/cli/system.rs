//! `gpudeck gpus`, `doctor`, `ports`, `whoami`.

use gpudeck_api::Client;
use gpudeck_core::doctor::CheckStatus;
use gpudeck_core::gpu::{GpuReading, GpuSnapshot, NvmlState};
use gpudeck_core::Result;

use super::print_json;

pub(super) async fn gpus(client: &Client, json: bool) -> Result<i32> {
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

pub(super) async fn doctor(client: &Client, json: bool) -> Result<i32> {
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

pub(super) async fn ports(client: &Client, json: bool) -> Result<i32> {
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

pub(super) async fn whoami(client: &Client, json: bool) -> Result<i32> {
    let c = client.whoami().await?;
    if json {
        print_json(&c)?;
    } else {
        println!("{} (uid {}): {:?}", c.user, c.uid, c.role);
    }
    c.require_member()?;
    Ok(0)
}
