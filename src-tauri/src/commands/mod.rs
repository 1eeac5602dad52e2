//! Tauri command handlers: a few lines each, calling the core.

pub mod catalog;
pub mod gpus;
pub mod images;
pub mod replicasets;
pub mod settings;
pub mod system;
pub mod terminal;
pub mod volumes;
