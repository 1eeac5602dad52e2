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
    let args = Cli::parse();
    let code = match args.command {
        Some(_) => cli::main(args),
        None => open_app(),
    };
    std::process::exit(code);
}
