//! ReplicaSets: named, versioned GPU containers.

mod files;
mod service;
mod spec;

pub use files::{snapshot_ref, state_volume, MAX_LAYERS, SNAPSHOT_REPO};
pub use service::{container_name, split_image, Env, ReplicaSets, RsInfo, RsStatus};
pub use spec::*;
