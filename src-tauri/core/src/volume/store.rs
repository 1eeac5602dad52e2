//! The volume domain's SQL: every version of a volume (size, backend, why), and the counters
//! its backends number things with (XFS project ids).

use rusqlite::{params, TransactionBehavior};

use crate::store::Store;
use crate::Result;

use crate::store::now_s;

/// One stored version of a volume.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, ts_rs::TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeVersion {
    pub name: String,
    pub version: u32,
    #[ts(type = "number")]
    pub size_bytes: u64,
    /// How the size is enforced: "image-file" (ext4 in a file on a loop device).
    pub backend: String,
    /// "create" or "resize".
    pub op: String,
    #[ts(type = "number")]
    pub created_at: i64,
    #[ts(type = "number | null")]
    pub retired_at: Option<i64>,
}

impl Store {
    /// (current version, deleted) of a volume.
    pub fn vol_current(&self, name: &str) -> Result<Option<(u32, bool)>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .query_row(
                "SELECT current, deleted_at IS NOT NULL FROM volumes WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    pub fn vol_names(&self) -> Result<Vec<String>> {
        let mut q = self
            .conn
            .prepare("SELECT name FROM volumes WHERE deleted_at IS NULL ORDER BY name")?;
        let v = q
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }

    pub fn vol_add_version(&mut self, v: &VolumeVersion) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if v.version == 1 {
            // A name reused after a delete starts a new history.
            tx.execute("DELETE FROM vol_versions WHERE name = ?1", [&v.name])?;
        }
        tx.execute(
            "INSERT INTO vol_versions (name, version, size_bytes, backend, op, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![v.name, v.version, v.size_bytes as i64, v.backend, v.op, v.created_at],
        )?;
        tx.execute(
            "INSERT INTO volumes (name, current, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(name) DO UPDATE SET current = excluded.current, deleted_at = NULL",
            params![v.name, v.version, v.created_at],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn vol_versions(&self, name: &str) -> Result<Vec<VolumeVersion>> {
        let mut q = self.conn.prepare(
            "SELECT name, version, size_bytes, backend, op, created_at, retired_at FROM vol_versions WHERE name = ?1 ORDER BY version",
        )?;
        let v = q
            .query_map([name], |r| {
                Ok(VolumeVersion {
                    name: r.get(0)?,
                    version: r.get(1)?,
                    size_bytes: r.get::<_, i64>(2)? as u64,
                    backend: r.get(3)?,
                    op: r.get(4)?,
                    created_at: r.get(5)?,
                    retired_at: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }

    /// A live volume as a member's bind checks it (`policy::check_member_volume`): owner,
    /// current version and the versions not retired, current first. `None`: GPU Deck made no
    /// volume of that name (or it was deleted).
    pub fn vol_ref(&self, name: &str) -> Result<Option<crate::policy::VolumeRef>> {
        let Some((current, deleted)) = self.vol_current(name)? else {
            return Ok(None);
        };
        if deleted {
            return Ok(None);
        }
        let owner = self.vol_owner(name)?.flatten();
        let mut live: Vec<u32> = self
            .vol_versions(name)?
            .into_iter()
            .filter(|v| v.retired_at.is_none())
            .map(|v| v.version)
            .collect();
        live.sort_by_key(|v| (*v != current, std::cmp::Reverse(*v)));
        Ok(Some(crate::policy::VolumeRef {
            owner,
            current,
            live,
        }))
    }

    /// Bytes the current versions of `owner`'s live volumes hold, `except` one of them.
    pub fn vol_bytes_of(&self, owner: &str, except: &str) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT COALESCE(SUM(vv.size_bytes), 0) FROM volumes v
             JOIN vol_versions vv ON vv.name = v.name AND vv.version = v.current
             WHERE v.owner = ?1 AND v.deleted_at IS NULL AND v.name <> ?2",
            params![owner, except],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    pub fn vol_retire(&mut self, name: &str, version: u32) -> Result<()> {
        self.conn.execute(
            "UPDATE vol_versions SET retired_at = ?3 WHERE name = ?1 AND version = ?2 AND retired_at IS NULL",
            params![name, version, now_s()],
        )?;
        Ok(())
    }

    /// The next value of a counter that starts above `floor`; never the same twice.
    pub fn next_counter(&mut self, name: &str, floor: i64) -> Result<i64> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO counters(name, value) VALUES (?1, ?2 + 1)
             ON CONFLICT(name) DO UPDATE SET value = max(value, ?2) + 1",
            params![name, floor],
        )?;
        let v: i64 = tx.query_row(
            "SELECT value FROM counters WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(v)
    }

    pub fn vol_mark_deleted(&mut self, name: &str) -> Result<()> {
        let t = now_s();
        self.conn.execute(
            "UPDATE volumes SET deleted_at = ?2 WHERE name = ?1",
            params![name, t],
        )?;
        self.conn.execute(
            "UPDATE vol_versions SET retired_at = ?2 WHERE name = ?1 AND retired_at IS NULL",
            params![name, t],
        )?;
        Ok(())
    }
}
