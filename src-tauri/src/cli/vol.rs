//! `gpudeck vol …`: volumes.

use clap::Subcommand;
use gpudeck_api::Client;
use gpudeck_core::volume::{human, VolumeInfo};
use gpudeck_core::Result;

use super::print_json;

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

pub(super) async fn run(client: &Client, cmd: VolCmd, json: bool) -> Result<i32> {
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
