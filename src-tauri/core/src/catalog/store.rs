//! The catalog's SQL: revisions of entries (an edit makes a new one), soft deletes, launches.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::entry::Entry;
use crate::store::{now_s, Store};
use crate::{CoreError, Result};

/// An entry's latest revision, with when and by whom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct EntryRecord {
    pub entry: Entry,
    pub revision: u32,
    #[ts(type = "number")]
    pub created_at: i64,
    #[ts(type = "number")]
    pub updated_at: i64,
    pub created_by: String,
    pub updated_by: String,
    #[ts(type = "number | null")]
    pub deleted_at: Option<i64>,
}

/// revision, doc, updated at, updated by, deleted at, created at, created by.
type Row = (u32, String, i64, String, Option<i64>, i64, String);

fn parse(doc: &str) -> Result<Entry> {
    serde_json::from_str(doc).map_err(|e| CoreError::Io {
        path: "the catalog in the database".into(),
        reason: e.to_string(),
    })
}

impl Store {
    /// Saves an entry: a new revision when it differs from the latest (or that was deleted).
    /// Returns the revision it has now.
    pub fn catalog_save(&mut self, e: &Entry, by: &str) -> Result<u32> {
        let doc = serde_json::to_string(e).unwrap_or_default();
        let latest: Option<(u32, String, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT revision, doc, deleted_at FROM catalog_entries WHERE name = ?1 ORDER BY revision DESC LIMIT 1",
                [&e.name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        if let Some((rev, old, None)) = &latest {
            if *old == doc {
                return Ok(*rev);
            }
        }
        let rev = latest.map(|l| l.0 + 1).unwrap_or(1);
        self.conn.execute(
            "INSERT INTO catalog_entries (name, revision, doc, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![e.name, rev, doc, now_s(), by],
        )?;
        Ok(rev)
    }

    fn catalog_rows(&self, name: Option<&str>) -> Result<Vec<EntryRecord>> {
        let mut q = self.conn.prepare(
            "SELECT e.name, e.revision, e.doc, e.created_at, e.created_by, e.deleted_at,
                    f.created_at, f.created_by
             FROM catalog_entries e
             JOIN (SELECT name, MAX(revision) AS rev FROM catalog_entries GROUP BY name) m
               ON m.name = e.name AND m.rev = e.revision
             JOIN catalog_entries f ON f.name = e.name AND f.revision = 1
             WHERE ?1 IS NULL OR e.name = ?1
             ORDER BY e.name",
        )?;
        let rows: Vec<Row> = q
            .query_map([name], |r| {
                Ok((
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter()
            .map(
                |(revision, doc, updated_at, updated_by, deleted_at, created_at, created_by)| {
                    Ok(EntryRecord {
                        entry: parse(&doc)?,
                        revision,
                        created_at,
                        updated_at,
                        created_by,
                        updated_by,
                        deleted_at,
                    })
                },
            )
            .collect()
    }

    /// Every entry's latest revision (deleted ones too; the caller filters).
    pub fn catalog_all(&self) -> Result<Vec<EntryRecord>> {
        self.catalog_rows(None)
    }

    pub fn catalog_get(&self, name: &str) -> Result<Option<EntryRecord>> {
        Ok(self.catalog_rows(Some(name))?.into_iter().next())
    }

    /// A soft delete of the latest revision.
    pub fn catalog_delete(&mut self, name: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE catalog_entries SET deleted_at = ?2 WHERE name = ?1 AND deleted_at IS NULL
               AND revision = (SELECT MAX(revision) FROM catalog_entries WHERE name = ?1)",
            params![name, now_s()],
        )? > 0)
    }

    pub fn catalog_launch_add(
        &mut self,
        rs: &str,
        entry: &str,
        revision: u32,
        image_id: Option<&str>,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO catalog_launches (replicaset, entry, revision, image_id, at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![rs, entry, revision, image_id, now_s()],
        )?;
        Ok(())
    }

    /// The replicaSets launched from `entry` (whether they still exist is the caller's to ask).
    pub fn catalog_launches_of(&self, entry: &str) -> Result<Vec<String>> {
        let mut q = self
            .conn
            .prepare("SELECT replicaset FROM catalog_launches WHERE entry = ?1 ORDER BY at")?;
        let v = q
            .query_map([entry], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }

    pub fn catalog_launch_of(&self, rs: &str) -> Result<Option<(String, u32, Option<String>)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT entry, revision, image_id FROM catalog_launches WHERE replicaset = ?1",
                [rs],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::entry::{GpuRange, I18n};

    fn entry(name: &str, img: &str) -> Entry {
        Entry {
            name: name.into(),
            version: String::new(),
            image: img.into(),
            registry: None,
            display_name: I18n::default(),
            description: I18n::default(),
            group: String::new(),
            cover: None,
            price: 0.0,
            cuda_version: None,
            framework: None,
            framework_version: None,
            domain: None,
            tasks: vec![],
            min_gpu_generation: None,
            gpu_archs: vec![],
            min_gpu_memory: None,
            cpu_only: false,
            licence: None,
            gpus: GpuRange::default(),
            command: vec!["true".into()],
            params: vec![],
        }
    }

    #[test]
    fn an_edit_makes_a_revision_and_a_delete_is_soft() -> Result<()> {
        let mut s = Store::open_in_memory()?;
        assert_eq!(s.catalog_save(&entry("a", "x:1"), "root")?, 1);
        assert_eq!(
            s.catalog_save(&entry("a", "x:1"), "root")?,
            1,
            "unchanged: no revision"
        );
        assert_eq!(s.catalog_save(&entry("a", "x:2"), "dana")?, 2);
        let r = s.catalog_get("a")?.unwrap();
        assert_eq!(
            (
                r.revision,
                r.entry.image.as_str(),
                r.created_by.as_str(),
                r.updated_by.as_str()
            ),
            (2, "x:2", "root", "dana")
        );
        assert!(s.catalog_delete("a")?);
        assert!(s.catalog_get("a")?.unwrap().deleted_at.is_some());
        assert_eq!(
            s.catalog_save(&entry("a", "x:2"), "root")?,
            3,
            "saved again after a delete"
        );
        s.catalog_launch_add("rs1", "a", 3, Some("sha256:x"))?;
        assert_eq!(s.catalog_launches_of("a")?, vec!["rs1".to_string()]);
        Ok(())
    }
}
