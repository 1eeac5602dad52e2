//! Registry passwords at rest. gpudeckd is a headless system service: no user's keyring runs for
//! it, so passwords live sealed (XChaCha20-Poly1305) in `registry-secrets.sealed` in the data
//! folder (0700, root), under a random key kept in `registry-secrets.key` (0600). Never in
//! SQLite, the settings, a reply, a log line or an error.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

use crate::{CoreError, Result};

pub struct Secrets {
    dir: PathBuf,
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| CoreError::io(&tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| CoreError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| CoreError::io(path, e))
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| CoreError::Io {
        path: "the system's random source".into(),
        reason: e.to_string(),
    })?;
    Ok(b)
}

impl Secrets {
    pub fn new(dir: &Path) -> Secrets {
        Secrets {
            dir: dir.to_path_buf(),
        }
    }

    fn key_file(&self) -> PathBuf {
        self.dir.join("registry-secrets.key")
    }

    fn sealed_file(&self) -> PathBuf {
        self.dir.join("registry-secrets.sealed")
    }

    fn cipher(&self) -> Result<XChaCha20Poly1305> {
        let kf = self.key_file();
        let key = match std::fs::read(&kf) {
            Ok(k) if k.len() == 32 => k,
            Ok(_) => {
                return Err(CoreError::Io {
                    path: kf.display().to_string(),
                    reason: "it is not a 32-byte key; remove it and add the registries again"
                        .into(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let k = random::<32>()?;
                write_private(&kf, &k)?;
                k.to_vec()
            }
            Err(e) => return Err(CoreError::io(&kf, e)),
        };
        Ok(XChaCha20Poly1305::new(Key::from_slice(&key)))
    }

    fn load(&self) -> Result<BTreeMap<String, String>> {
        let f = self.sealed_file();
        match std::fs::read(&f) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| CoreError::Io {
                path: f.display().to_string(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(CoreError::io(&f, e)),
        }
    }

    fn save(&self, m: &BTreeMap<String, String>) -> Result<()> {
        write_private(
            &self.sealed_file(),
            &serde_json::to_vec(m).unwrap_or_default(),
        )
    }

    pub fn put(&self, name: &str, secret: &str) -> Result<()> {
        let cipher = self.cipher()?;
        let nonce = random::<24>()?;
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), secret.as_bytes())
            .map_err(|_| CoreError::Io {
                path: self.sealed_file().display().to_string(),
                reason: "sealing failed".into(),
            })?;
        let mut blob = nonce.to_vec();
        blob.extend(sealed);
        let mut m = self.load()?;
        m.insert(
            name.to_string(),
            base64::engine::general_purpose::STANDARD.encode(blob),
        );
        self.save(&m)
    }

    pub fn get(&self, name: &str) -> Result<Option<String>> {
        let m = self.load()?;
        let Some(b64) = m.get(name) else {
            return Ok(None);
        };
        let unreadable = |why: &str| {
            CoreError::Io {
            path: self.sealed_file().display().to_string(),
            reason: format!(
                "the password of registry \"{name}\" cannot be read ({why}); remove the registry and add it again"
            ),
        }
        };
        let blob = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| unreadable("not base64"))?;
        if blob.len() < 24 {
            return Err(unreadable("too short"));
        }
        let plain = self
            .cipher()?
            .decrypt(XNonce::from_slice(&blob[..24]), &blob[24..])
            .map_err(|_| unreadable("the key does not open it"))?;
        String::from_utf8(plain)
            .map(Some)
            .map_err(|_| unreadable("not text"))
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        let mut m = self.load()?;
        if m.remove(name).is_some() {
            self.save(&m)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_at_rest_opened_by_name_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let s = Secrets::new(dir.path());
        s.put("lab", "p+ss/w0rd?>>").unwrap();
        s.put("other", "second").unwrap();
        assert_eq!(s.get("lab").unwrap().as_deref(), Some("p+ss/w0rd?>>"));
        assert_eq!(s.get("missing").unwrap(), None);
        for f in std::fs::read_dir(dir.path()).unwrap() {
            let f = f.unwrap();
            let bytes = std::fs::read(f.path()).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains("p+ss/w0rd"),
                "{:?} holds the password",
                f.path()
            );
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        }
        s.remove("lab").unwrap();
        assert_eq!(s.get("lab").unwrap(), None);
        assert_eq!(s.get("other").unwrap().as_deref(), Some("second"));
        // Another key cannot open it.
        std::fs::write(dir.path().join("registry-secrets.key"), [7u8; 32]).unwrap();
        assert!(s.get("other").is_err());
    }
}
