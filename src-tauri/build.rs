fn main() {
    // The manifest (and tauri.conf.json) live at the repo root; capabilities stay in src-tauri/.
    let attrs =
        tauri_build::Attributes::new().capabilities_path_pattern("./src-tauri/capabilities/**/*");
    if let Err(e) = tauri_build::try_build(attrs) {
        panic!("tauri-build failed: {e:#}");
    }
}
