// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

//! `gpudeck-app`: the desktop app.

fn main() {
    if let Err(e) = gpudeck_app::run() {
        eprintln!("gpudeck: the app could not start: {e}");
        std::process::exit(1);
    }
}
