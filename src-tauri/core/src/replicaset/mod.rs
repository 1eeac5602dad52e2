//! ReplicaSets: named, versioned GPU containers.

pub(crate) mod archive;
pub(crate) mod copy;
pub(crate) mod files;
pub mod pin;
mod quiesce;
mod service;
mod spec;
pub mod store;

pub use files::{check_room_at, layer_need};
pub use pin::LABEL_PINS;
pub use service::{
    container_name, split_image, Admission, Admit, Env, Pending, ReplicaSets, RsInfo, RsStatus,
};
pub use spec::*;
