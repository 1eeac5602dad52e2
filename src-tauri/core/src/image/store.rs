//! The images domain's SQL: registries (never their passwords) and which replicaSet versions
//! use, or made, an image.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::store::Store;
use crate::Result;

/// A registry GPU Deck knows. Its password is sealed apart (`secrets.rs`) and never sent back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct Registry {
    pub name: String,
    pub url: String,
    /// `host[:port]`, what image references for it start with.
    pub host: String,
    pub username: Option<String>,
    pub created_by: String,
    #[ts(type = "number")]
    pub created_at: i64,
}

/// A replicaSet version that starts from an image (`base`) or keeps its files in it (`files`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct ImageUse {
    pub replicaset: String,
    pub version: u32,
    pub role: String,
}

/// Where a committed image came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct ImageOrigin {
    pub replicaset: String,
    pub version: u32,
    #[ts(type = "number")]
    pub at: i64,
}

fn reg(r: &rusqlite::Row<'_>) -> rusqlite::Result<Registry> {
    Ok(Registry {
        name: r.get(0)?,
        url: r.get(1)?,
        host: r.get(2)?,
        username: r.get(3)?,
        created_by: r.get(4)?,
        created_at: r.get(5)?,
    })
}

const REG_COLS: &str = "name, url, host, username, created_by, created_at";

impl Store {
    pub fn registries(&self) -> Result<Vec<Registry>> {
        let mut q = self
            .conn
            .prepare(&format!("SELECT {REG_COLS} FROM registries ORDER BY name"))?;
        let v = q.query_map([], reg)?.collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }

    pub fn registry(&self, name: &str) -> Result<Option<Registry>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {REG_COLS} FROM registries WHERE name = ?1"),
                [name],
                reg,
            )
            .optional()?)
    }

    pub fn registry_by_host(&self, host: &str) -> Result<Option<Registry>> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {REG_COLS} FROM registries WHERE host = ?1 ORDER BY created_at LIMIT 1"
                ),
                [host],
                reg,
            )
            .optional()?)
    }

    pub fn registry_add(&mut self, r: &Registry) -> Result<()> {
        self.conn.execute(
            "INSERT INTO registries (name, url, host, username, created_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![r.name, r.url, r.host, r.username, r.created_by, r.created_at],
        )?;
        Ok(())
    }

    pub fn registry_remove(&mut self, name: &str) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM registries WHERE name = ?1", [name])?
            > 0)
    }

    /// Every (image id, use) of the replicaSets that exist: the image a version started from and
    /// the snapshot that keeps its files.
    pub fn image_uses(&self) -> Result<Vec<(String, ImageUse)>> {
        let mut q = self.conn.prepare(
            "SELECT image_id, name, version, 'base' FROM rs_versions WHERE image_id IS NOT NULL
             UNION ALL
             SELECT CASE WHEN snapshot_id LIKE 'dir:%' THEN substr(snapshot_id, 5) ELSE snapshot_id END, name, version, 'files' FROM rs_versions WHERE snapshot_id IS NOT NULL
             ORDER BY 2, 3",
        )?;
        let v = q
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    ImageUse {
                        replicaset: r.get(1)?,
                        version: r.get(2)?,
                        role: r.get(3)?,
                    },
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }

    /// Every (image id, origin) of images committed from a replicaSet.
    pub fn image_origins(&self) -> Result<Vec<(String, ImageOrigin)>> {
        let mut q = self.conn.prepare(
            "SELECT image_id, name, version, created_at FROM rs_commits ORDER BY created_at",
        )?;
        let v = q
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    ImageOrigin {
                        replicaset: r.get(1)?,
                        version: r.get(2)?,
                        at: r.get(3)?,
                    },
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_round_trip_without_a_password_column() -> Result<()> {
        let mut s = Store::open_in_memory()?;
        let r = Registry {
            name: "lab".into(),
            url: "http://127.0.0.1:5000/".into(),
            host: "127.0.0.1:5000".into(),
            username: Some("u".into()),
            created_by: "root".into(),
            created_at: 1,
        };
        s.registry_add(&r)?;
        assert!(s.registry_add(&r).is_err());
        assert_eq!(s.registries()?, vec![r.clone()]);
        assert_eq!(s.registry_by_host("127.0.0.1:5000")?, Some(r));
        let cols: Vec<String> = s
            .conn
            .prepare("SELECT name FROM pragma_table_info('registries')")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        assert!(!cols.iter().any(|c| c.contains("pass")), "{cols:?}");
        assert!(s.registry_remove("lab")?);
        assert!(!s.registry_remove("lab")?);
        Ok(())
    }
}
