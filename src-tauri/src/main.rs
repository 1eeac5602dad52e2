// No console window on Windows release builds; the CLI still prints when run from a terminal.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use clap::Parser;
use gpudeck_app::cli::{self, Cli};

fn main() {
    let args = Cli::parse();
    let code = match args.command {
        Some(cmd) => cli::main(cmd),
        None => match gpudeck_app::run() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("gpudeck: the app could not start: {e}");
                1
            }
        },
    };
    std::process::exit(code);
}
