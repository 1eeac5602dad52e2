//! `gpudeckd [--socket PATH] [--data-dir DIR]`: GPU Deck's service, in the foreground (systemd
//! runs it as `gpudeck.service`; where no systemd runs, start it by hand or from a script).

use std::path::PathBuf;

use clap::Parser;
use gpudeck_core::paths::DataDir;

#[derive(Parser)]
#[command(
    name = "gpudeckd",
    version,
    about = "GPU Deck's service: the one privileged process; the app and the CLI are its clients."
)]
struct Args {
    /// The Unix socket to serve on (mode 0660, group gpudeck).
    #[arg(long, default_value = gpudeck_api::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Where GPU Deck keeps its database, settings and volume files (made 0700).
    #[arg(long, default_value = "/var/lib/gpudeck")]
    data_dir: PathBuf,
}

fn main() {
    let args = Args::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    // Everything the service writes (database, volume files, snapshots) is its own: 0600/0700.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gpudeckd: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(async {
        let data = DataDir::at(&args.data_dir);
        let lock = match gpudeck_daemon::lock_data_dir(&data) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("gpudeckd: {e}");
                return 1;
            }
        };
        let d = match gpudeck_daemon::Daemon::start(data) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("gpudeckd: {e}");
                return 1;
            }
        };
        let listener = match gpudeck_daemon::bind_socket(&args.socket) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("gpudeckd: {e}");
                return 1;
            }
        };
        tracing::info!("serving on {}", args.socket.display());
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        };
        let r = gpudeck_daemon::serve(listener, d, shutdown).await;
        let _ = std::fs::remove_file(&args.socket);
        drop(lock);
        match r {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("gpudeckd: {e}");
                1
            }
        }
    });
    std::process::exit(code);
}
