//! The replicaSet domain's SQL: every version's spec, GPUs, ports, files and why it was made,
//! commits, and the current version of each.

use rusqlite::{params, TransactionBehavior};

use crate::store::Store;
use crate::Result;

use crate::store::now_s;

/// One stored version of a replicaSet.
// A new one starts with no snapshot and no commits: `..Default::default()`.
#[derive(
    Debug, Clone, Default, serde::Serialize, serde::Deserialize, ts_rs::TS, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct VersionRecord {
    pub name: String,
    pub version: u32,
    pub spec: crate::replicaset::RsSpec,
    /// The GPU UUIDs it got.
    pub gpus: Vec<String>,
    /// (container port, host port).
    pub ports: Vec<(u16, u16)>,
    /// "run", "patch", "restart", "rollback 1", …
    pub op: String,
    /// What changed from the version before ("GPUs 3 → 1").
    pub changes: Vec<crate::replicaset::Change>,
    #[ts(type = "number")]
    pub created_at: i64,
    /// The image id it was created on (the base image recorded at run); `None` for versions
    /// made before GPU Deck recorded it.
    pub image_id: Option<String>,
    /// Once replaced: the snapshot image holding its files (what a rollback to it starts from).
    pub snapshot_id: Option<String>,
    /// Bytes of the layer its snapshot added: what this version changed.
    #[ts(type = "number | null")]
    pub snapshot_bytes: Option<u64>,
    /// Its files were pruned: a rollback to it is configuration only.
    pub pruned: bool,
    /// Images committed from this version (`repo:tag`), oldest first.
    pub commits: Vec<String>,
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

impl Store {
    /// (current version, stopped) of a replicaSet, or `None`.
    pub fn rs_current(&self, name: &str) -> Result<Option<(u32, bool)>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .query_row(
                "SELECT current, stopped FROM replicasets WHERE name = ?1",
                [name],
                |r| Ok((r.get::<_, u32>(0)?, r.get::<_, bool>(1)?)),
            )
            .optional()?)
    }

    pub fn rs_names(&self) -> Result<Vec<String>> {
        let mut q = self
            .conn
            .prepare("SELECT name FROM replicasets ORDER BY name")?;
        let v = q
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }

    /// Records a new version and makes it current, with the snapshot of the version it replaced
    /// (version, image id, layer bytes), in one transaction.
    pub fn rs_add_version(
        &mut self,
        rec: &VersionRecord,
        replaced: Option<(u32, &str, Option<u64>)>,
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO rs_versions (name, version, spec, gpus, ports, op, changes, created_at, image_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                rec.name,
                rec.version,
                json(&rec.spec),
                json(&rec.gpus),
                json(&rec.ports),
                rec.op,
                json(&rec.changes),
                rec.created_at,
                rec.image_id,
            ],
        )?;
        if let Some((old, id, bytes)) = replaced {
            tx.execute(
                "UPDATE rs_versions SET snapshot_id = ?3, snapshot_bytes = ?4 WHERE name = ?1 AND version = ?2",
                params![rec.name, old, id, bytes.map(|b| b as i64)],
            )?;
        }
        tx.execute(
            "INSERT INTO replicasets (name, current, stopped, created_at) VALUES (?1, ?2, 0, ?3)
             ON CONFLICT(name) DO UPDATE SET current = excluded.current, stopped = 0",
            params![rec.name, rec.version, rec.created_at],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn rs_set_stopped(&mut self, name: &str, stopped: bool) -> Result<()> {
        self.conn.execute(
            "UPDATE replicasets SET stopped = ?2 WHERE name = ?1",
            params![name, stopped],
        )?;
        Ok(())
    }

    pub fn rs_versions(&self, name: &str) -> Result<Vec<VersionRecord>> {
        let mut q = self.conn.prepare(
            "SELECT name, version, spec, gpus, ports, op, changes, created_at, image_id, snapshot_id, snapshot_bytes, pruned FROM rs_versions WHERE name = ?1 ORDER BY version",
        )?;
        let rows = q.query_map([name], |r| {
            let bad = |i: usize, e: serde_json::Error| {
                rusqlite::Error::FromSqlConversionFailure(
                    i,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            };
            Ok(VersionRecord {
                name: r.get(0)?,
                version: r.get(1)?,
                spec: serde_json::from_str(&r.get::<_, String>(2)?).map_err(|e| bad(2, e))?,
                gpus: serde_json::from_str(&r.get::<_, String>(3)?).map_err(|e| bad(3, e))?,
                ports: serde_json::from_str(&r.get::<_, String>(4)?).map_err(|e| bad(4, e))?,
                op: r.get(5)?,
                changes: serde_json::from_str(&r.get::<_, String>(6)?).map_err(|e| bad(6, e))?,
                created_at: r.get(7)?,
                image_id: r.get(8)?,
                snapshot_id: r.get(9)?,
                snapshot_bytes: r.get::<_, Option<i64>>(10)?.map(|b| b.max(0) as u64),
                pruned: r.get(11)?,
                commits: vec![],
            })
        })?;
        let mut out: Vec<VersionRecord> = rows.collect::<rusqlite::Result<_>>()?;
        let mut q = self.conn.prepare(
            "SELECT version, image FROM rs_commits WHERE name = ?1 ORDER BY created_at, rowid",
        )?;
        let commits = q
            .query_map([name], |r| {
                Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        for (v, image) in commits {
            if let Some(rec) = out.iter_mut().find(|r| r.version == v) {
                rec.commits.push(image);
            }
        }
        Ok(out)
    }

    /// Records a commit of `name`'s version `version` to `image`.
    pub fn rs_add_commit(
        &mut self,
        name: &str,
        version: u32,
        image: &str,
        image_id: &str,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO rs_commits (name, version, image, image_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![name, version, image, image_id, now_s()],
        )?;
        Ok(())
    }

    /// The bytes of every kept version snapshot.
    pub fn rs_snapshot_bytes_total(&self) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT COALESCE(SUM(snapshot_bytes), 0) FROM rs_versions WHERE snapshot_id IS NOT NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(n.max(0) as u64)
    }

    /// The bytes a version's kept files take, once measured.
    pub fn rs_set_snapshot_bytes(&mut self, name: &str, version: u32, bytes: u64) -> Result<()> {
        self.conn.execute(
            "UPDATE rs_versions SET snapshot_bytes = ?3 WHERE name = ?1 AND version = ?2",
            params![name, version, bytes as i64],
        )?;
        Ok(())
    }

    /// Marks a version's files as pruned (its snapshot image gone).
    pub fn rs_mark_pruned(&mut self, name: &str, version: u32) -> Result<()> {
        self.conn.execute(
            "UPDATE rs_versions SET pruned = 1, snapshot_id = NULL WHERE name = ?1 AND version = ?2",
            params![name, version],
        )?;
        Ok(())
    }

    /// Forgets a replicaSet and everything it holds (its history goes with it).
    pub fn rs_delete(&mut self, name: &str) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM rs_versions WHERE name = ?1", [name])?;
        tx.execute("DELETE FROM rs_commits WHERE name = ?1", [name])?;
        tx.execute("DELETE FROM replicasets WHERE name = ?1", [name])?;
        tx.execute("DELETE FROM gpu_claims WHERE owner = ?1", [name])?;
        tx.execute("DELETE FROM port_claims WHERE owner = ?1", [name])?;
        tx.commit()?;
        Ok(())
    }
}
