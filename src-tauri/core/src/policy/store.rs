//! The policy domain's SQL: per-user limits, volume owners and the audit of who did what.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use ts_rs::TS;

use super::PolicyRow;
use crate::store::Store;
use crate::Result;

/// One audited request: who, what, on what, and how it ended (`ok` or an error code).
#[derive(Debug, Clone, Serialize, serde::Deserialize, TS, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    #[ts(type = "number")]
    pub at: i64,
    pub uid: u32,
    pub user: String,
    pub action: String,
    pub subject: String,
    pub outcome: String,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PolicyRow> {
    let roots: Option<String> = r.get(2)?;
    Ok(PolicyRow {
        user: r.get(0)?,
        max_gpus: r.get(1)?,
        bind_roots: roots.and_then(|s| serde_json::from_str(&s).ok()),
        root_in_container: r.get::<_, Option<i64>>(3)?.map(|v| v != 0),
        max_volume_bytes: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
        memory_bytes: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
        cpus_milli: r.get(6)?,
    })
}

impl Store {
    pub fn policy_rows(&self) -> Result<Vec<PolicyRow>> {
        let mut q = self.conn.prepare(
            "SELECT user, max_gpus, bind_roots, root_in_container, max_volume_bytes, memory_bytes, cpus_milli FROM policy ORDER BY user = '*' DESC, user",
        )?;
        let v = q.query_map([], row)?.collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }

    pub fn policy_row(&self, user: &str) -> Result<Option<PolicyRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT user, max_gpus, bind_roots, root_in_container, max_volume_bytes, memory_bytes, cpus_milli FROM policy WHERE user = ?1",
                [user],
                row,
            )
            .optional()?)
    }

    /// Replaces the row of `r.user` (validated by the caller).
    pub fn policy_put(&mut self, r: &PolicyRow) -> Result<()> {
        self.conn.execute(
            "INSERT INTO policy (user, max_gpus, bind_roots, root_in_container, max_volume_bytes, memory_bytes, cpus_milli)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(user) DO UPDATE SET max_gpus = excluded.max_gpus,
               bind_roots = excluded.bind_roots, root_in_container = excluded.root_in_container,
               max_volume_bytes = excluded.max_volume_bytes, memory_bytes = excluded.memory_bytes,
               cpus_milli = excluded.cpus_milli",
            params![
                r.user,
                r.max_gpus,
                r.bind_roots
                    .as_ref()
                    .map(|b| serde_json::Value::from(b.clone()).to_string()),
                r.root_in_container.map(i64::from),
                r.max_volume_bytes.map(|v| v as i64),
                r.memory_bytes.map(|v| v as i64),
                r.cpus_milli
            ],
        )?;
        Ok(())
    }

    pub fn audit_add(
        &mut self,
        uid: u32,
        user: &str,
        action: &str,
        subject: &str,
        outcome: &str,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO audit (at, uid, user, action, subject, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![crate::gpu::now_ms() as i64 / 1000, uid, user, action, subject, outcome],
        )?;
        Ok(())
    }

    /// The newest `limit` entries, newest first.
    pub fn audit_recent(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        let mut q = self.conn.prepare(
            "SELECT at, uid, user, action, subject, outcome FROM audit ORDER BY id DESC LIMIT ?1",
        )?;
        let v = q
            .query_map([limit], |r| {
                Ok(AuditEntry {
                    at: r.get(0)?,
                    uid: r.get(1)?,
                    user: r.get(2)?,
                    action: r.get(3)?,
                    subject: r.get(4)?,
                    outcome: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }

    /// A volume's owner: `None` when there is no such volume, `Some(None)` when it has none (made
    /// before owners were kept: an admin's).
    pub fn vol_owner(&self, name: &str) -> Result<Option<Option<String>>> {
        Ok(self
            .conn
            .query_row(
                "SELECT owner FROM volumes WHERE name = ?1 AND deleted_at IS NULL",
                [name],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn vol_set_owner(&mut self, name: &str, owner: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE volumes SET owner = ?2 WHERE name = ?1",
            params![name, owner],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_the_default_comes_first() -> Result<()> {
        let mut s = Store::open_in_memory()?;
        s.policy_put(&PolicyRow {
            user: "alice".into(),
            max_gpus: Some(1),
            bind_roots: Some(vec!["/data".into()]),
            root_in_container: Some(false),
            max_volume_bytes: Some(50_000_000_000),
            memory_bytes: Some(1 << 30),
            cpus_milli: Some(2500),
        })?;
        s.policy_put(&PolicyRow {
            user: "*".into(),
            max_gpus: Some(4),
            ..Default::default()
        })?;
        let rows = s.policy_rows()?;
        assert_eq!(rows[0].user, "*");
        assert_eq!(
            s.policy_row("alice")?.and_then(|r| r.bind_roots),
            Some(vec!["/data".to_string()])
        );
        let a = s.policy_row("alice")?.unwrap_or_default();
        assert_eq!(
            (a.max_volume_bytes, a.memory_bytes, a.cpus_milli),
            (Some(50_000_000_000), Some(1 << 30), Some(2500))
        );
        s.audit_add(1001, "alice", "rs.run", "foo", "ok")?;
        assert_eq!(s.audit_recent(10)?[0].action, "rs.run");
        Ok(())
    }
}
