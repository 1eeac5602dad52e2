// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

//! `gpudeck-app`: the desktop app.

fn main() {
    // The webview never runs as root: everything privileged is the service's.
    if nix::unistd::geteuid().is_root() {
        eprintln!("gpudeck: the app does not run as root. Open it as your own user (who must be in the group gpudeck: `sudo usermod -aG gpudeck $USER`); GPU Deck's service does the privileged work.");
        std::process::exit(1);
    }
    if let Err(e) = gpudeck_app::run() {
        eprintln!("gpudeck: the app could not start: {e}");
        std::process::exit(1);
    }
}
