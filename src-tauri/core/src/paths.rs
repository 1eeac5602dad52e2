//! Where GPU Deck keeps its files. The app and the CLI resolve the same folder:
//! `$GPUDECK_DATA_DIR` when set, else `$XDG_DATA_HOME/gpudeck` (default `~/.local/share/gpudeck`).

use std::path::{Path, PathBuf};

use crate::{CoreError, Result};

pub const NVML_LIB_ENV: &str = "GPUDECK_NVML_LIB";

#[derive(Debug, Clone)]
pub struct DataDir(PathBuf);

impl DataDir {
    pub fn resolve() -> Result<Self> {
        Self::from_env(|k| std::env::var_os(k))
    }

    /// Resolution with an injectable environment (pure; unit-tested).
    pub fn from_env(get: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<Self> {
        if let Some(dir) = get("GPUDECK_DATA_DIR").filter(|v| !v.is_empty()) {
            return Ok(DataDir(PathBuf::from(dir)));
        }
        let base = get("XDG_DATA_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| get("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .or_else(dirs::data_dir)
            .ok_or_else(|| CoreError::Io {
                path: "$HOME".into(),
                reason: "no home folder is known".into(),
            })?;
        Ok(DataDir(base.join("gpudeck")))
    }

    pub fn at(path: impl Into<PathBuf>) -> Self {
        DataDir(path.into())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn ensure(&self) -> Result<&Path> {
        std::fs::create_dir_all(&self.0).map_err(|e| CoreError::io(&self.0, e))?;
        Ok(&self.0)
    }

    pub fn database(&self) -> PathBuf {
        self.0.join("gpudeck.db")
    }

    pub fn settings_file(&self) -> PathBuf {
        self.0.join("settings.json")
    }
}

/// (free, used) bytes of the file system that holds `path`.
pub fn fs_space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: a NUL-terminated path and a zeroed statvfs for the kernel to fill.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let f = st.f_frsize as u64;
    Some((
        st.f_bavail as u64 * f,
        (st.f_blocks as u64).saturating_sub(st.f_bfree as u64) * f,
    ))
}

/// The NVML library to load: `$GPUDECK_NVML_LIB` when set, else the driver's `libnvidia-ml.so.1`.
pub fn nvml_lib_from_env() -> Option<PathBuf> {
    std::env::var_os(NVML_LIB_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn explicit_dir_wins() {
        let d = DataDir::from_env(env(&[
            ("GPUDECK_DATA_DIR", "/x/y"),
            ("XDG_DATA_HOME", "/a"),
        ]));
        assert_eq!(d.ok().map(|d| d.0), Some(PathBuf::from("/x/y")));
    }

    #[test]
    fn xdg_then_home() {
        let d = DataDir::from_env(env(&[("XDG_DATA_HOME", "/a"), ("HOME", "/h")]));
        assert_eq!(d.ok().map(|d| d.0), Some(PathBuf::from("/a/gpudeck")));
        let d = DataDir::from_env(env(&[("XDG_DATA_HOME", "rel"), ("HOME", "/h")]));
        assert_eq!(
            d.ok().map(|d| d.0),
            Some(PathBuf::from("/h/.local/share/gpudeck"))
        );
    }
}
