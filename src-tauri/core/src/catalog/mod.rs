//! The catalog: launchable images described once by an admin (in zh-CN and en), whose command
//! templates become typed forms. Pure rules here: the template (`template.rs`), the numeric
//! compatibility check (`compat.rs`), UFDL's filter specification (`filter.rs`).

pub mod compat;
pub mod entry;
pub mod filter;
pub mod import;
pub mod template;
