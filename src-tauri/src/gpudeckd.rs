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
    /// Also serve gpu-docker-api's REST API on this TCP address (e.g. 127.0.0.1:2378), for scripts
    /// written for it; requests need `Authorization: Bearer TOKEN` (`gpudeck token create`).
    #[arg(long)]
    gda_listen: Option<String>,
    /// TLS certificate (PEM) for --gda-listen; needed on a non-loopback address.
    #[arg(long)]
    gda_tls_cert: Option<PathBuf>,
    /// TLS key (PEM, PKCS#8) for --gda-listen.
    #[arg(long)]
    gda_tls_key: Option<PathBuf>,
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
    // Every connection is a file descriptor: the soft limit is raised to the hard one (the unit
    // sets LimitNOFILE), and connections are bounded within it (`conn`).
    let nofile = gpudeck_daemon::conn::raise_nofile();
    tracing::info!("open files allowed: {nofile:?}");
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
    // A REST address it cannot honour stops it before anything starts, with the reason.
    let gda = match args
        .gda_listen
        .as_deref()
        .map(|a| gpudeck_daemon::gda::check(a, args.gda_tls_cert.clone(), args.gda_tls_key.clone()))
        .transpose()
    {
        Ok(g) => g,
        Err(e) => {
            eprintln!("gpudeckd: {e}");
            std::process::exit(2);
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
        if let Some(l) = gda {
            let addr = l.addr;
            let (gd, tls) = (d.clone(), l.tls.is_some());
            match tokio::net::TcpListener::bind(addr).await {
                // Bound here first, so that a taken port stops the service with the reason.
                Ok(probe) => drop(probe),
                Err(e) => {
                    eprintln!("gpudeckd: --gda-listen {addr}: {e}");
                    return 1;
                }
            }
            tokio::spawn(async move {
                if let Err(e) = gpudeck_daemon::gda::serve(gd, l).await {
                    tracing::error!("the gpu-docker-api REST API stopped: {e}");
                }
            });
            tracing::info!(
                "serving gpu-docker-api's REST API on {}://{addr}",
                if tls { "https" } else { "http" }
            );
        }
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
