//! `gpudeck`: the CLI. It links no GUI library, so it starts as fast as `docker` does; with no
//! command it opens the desktop app (`gpudeck-app`, installed beside it).

use clap::Parser;
use gpudeck_app::cli::{self, Cli};

fn open_app() -> i32 {
    use std::os::unix::process::CommandExt;
    let app = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("gpudeck-app")))
        .filter(|p| p.is_file());
    match app {
        Some(app) => {
            let err = std::process::Command::new(&app).exec();
            eprintln!("gpudeck: could not start {}: {err}", app.display());
            1
        }
        None => {
            eprintln!("gpudeck: the desktop app (gpudeck-app) is not installed beside this CLI; reinstall GPU Deck, or run a command (`gpudeck --help`).");
            1
        }
    }
}

fn main() {
    // As a Unix tool: output piped into `head` that closes ends the CLI quietly (Rust ignores
    // SIGPIPE and would panic on the next print). A pull or push it follows is then cancelled,
    // as when it is interrupted.
    // SAFETY: set once at start, before any thread; the default action needs no handler.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
    let args = Cli::parse();
    let code = match args.command {
        Some(_) => cli::main(args),
        None => open_app(),
    };
    std::process::exit(code);
}
