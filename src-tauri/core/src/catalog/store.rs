//! The catalog's SQL: revisions of entries (an edit makes a new one), soft deletes, launches.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::compat::Version;
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

/// Versions compared as numbers where both are (so 0.25.0 is newer than 0.9); one that is not a
/// number comes before every one that is; else as text.
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    match (Version::parse(a), Version::parse(b)) {
        (Some(x), Some(y)) => x.cmp_num(&y),
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

fn parse(doc: &str) -> Result<Entry> {
    serde_json::from_str(doc).map_err(|e| CoreError::Io {
        path: "the catalog in the database".into(),
        reason: e.to_string(),
    })
}

/// The version part of a key (`NAME@VERSION`), when `key` names no entry itself.
fn split_key(key: &str) -> Option<(&str, &str)> {
    key.rsplit_once('@').filter(|(n, _)| !n.is_empty())
}

impl Store {
    /// Saves an entry, keyed by its name **and** version (as UFDL keys an image): a new revision
    /// when it differs from the latest of that version (or that was deleted). Revisions are
    /// numbered per name, across its versions. Returns the revision it has now.
    pub fn catalog_save(&mut self, e: &Entry, by: &str) -> Result<u32> {
        let doc = serde_json::to_string(e).unwrap_or_default();
        let latest: Option<(u32, String, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT revision, doc, deleted_at FROM catalog_entries WHERE name = ?1 AND version = ?2 ORDER BY revision DESC LIMIT 1",
                params![e.name, e.version],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        if let Some((rev, old, None)) = &latest {
            if *old == doc {
                return Ok(*rev);
            }
        }
        let top: Option<u32> = self.conn.query_row(
            "SELECT MAX(revision) FROM catalog_entries WHERE name = ?1",
            [&e.name],
            |r| r.get(0),
        )?;
        let rev = top.map(|t| t + 1).unwrap_or(1);
        self.conn.execute(
            "INSERT INTO catalog_entries (name, revision, doc, created_at, created_by, version) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![e.name, rev, doc, now_s(), by, e.version],
        )?;
        Ok(rev)
    }

    /// The latest revision of every (name, version), or of `name`'s versions.
    fn catalog_rows(&self, name: Option<&str>) -> Result<Vec<EntryRecord>> {
        let mut q = self.conn.prepare(
            "SELECT e.name, e.revision, e.doc, e.created_at, e.created_by, e.deleted_at,
                    f.created_at, f.created_by
             FROM catalog_entries e
             JOIN (SELECT name, version, MAX(revision) AS rev, MIN(revision) AS first
                   FROM catalog_entries GROUP BY name, version) m
               ON m.name = e.name AND m.rev = e.revision
             JOIN catalog_entries f ON f.name = e.name AND f.revision = m.first
             WHERE ?1 IS NULL OR e.name = ?1
             ORDER BY e.name, e.version",
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

    /// Every entry's latest revision, each version apart (deleted ones too; the caller filters).
    pub fn catalog_all(&self) -> Result<Vec<EntryRecord>> {
        self.catalog_rows(None)
    }

    /// The entry `key` names: `NAME` (its newest live version, compared as numbers; of several
    /// all deleted, the newest) or `NAME@VERSION`.
    pub fn catalog_get(&self, key: &str) -> Result<Option<EntryRecord>> {
        let mut all = self.catalog_rows(Some(key))?;
        if all.is_empty() {
            if let Some((name, version)) = split_key(key) {
                return Ok(self
                    .catalog_rows(Some(name))?
                    .into_iter()
                    .find(|r| r.entry.version == version));
            }
            return Ok(None);
        }
        all.sort_by(|a, b| {
            (a.deleted_at.is_none())
                .cmp(&b.deleted_at.is_none())
                .then_with(|| version_cmp(&a.entry.version, &b.entry.version))
        });
        Ok(all.pop())
    }

    /// The live versions of `name`, oldest first (a key naming one of several says which).
    pub fn catalog_versions(&self, name: &str) -> Result<Vec<String>> {
        let mut v: Vec<String> = self
            .catalog_rows(Some(name))?
            .into_iter()
            .filter(|r| r.deleted_at.is_none())
            .map(|r| r.entry.version)
            .collect();
        v.sort_by(|a, b| version_cmp(a, b));
        Ok(v)
    }

    /// A soft delete of the latest revision of (name, version).
    pub fn catalog_delete(&mut self, name: &str, version: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE catalog_entries SET deleted_at = ?3 WHERE name = ?1 AND version = ?2 AND deleted_at IS NULL
               AND revision = (SELECT MAX(revision) FROM catalog_entries WHERE name = ?1 AND version = ?2)",
            params![name, version, now_s()],
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

    /// The replicaSets launched from a revision of `entry`'s `version` (whether they still
    /// exist is the caller's to ask).
    pub fn catalog_launches_of(&self, entry: &str, version: &str) -> Result<Vec<String>> {
        let mut q = self.conn.prepare(
            "SELECT l.replicaset FROM catalog_launches l
             JOIN catalog_entries e ON e.name = l.entry AND e.revision = l.revision
             WHERE l.entry = ?1 AND e.version = ?2 ORDER BY l.at",
        )?;
        let v = q
            .query_map(params![entry, version], |r| r.get(0))?
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
        assert!(s.catalog_delete("a", "")?);
        assert!(s.catalog_get("a")?.unwrap().deleted_at.is_some());
        assert_eq!(
            s.catalog_save(&entry("a", "x:2"), "root")?,
            3,
            "saved again after a delete"
        );
        s.catalog_launch_add("rs1", "a", 3, Some("sha256:x"))?;
        assert_eq!(s.catalog_launches_of("a", "")?, vec!["rs1".to_string()]);
        Ok(())
    }

    /// UFDL keys an image by name and version: three versions of one name are three entries,
    /// each with its own revisions; a bare name is its newest version.
    #[test]
    fn versions_of_one_name_are_entries_of_their_own() -> Result<()> {
        let mut s = Store::open_in_memory()?;
        for v in ["0.23.1", "0.25.0", "0.9"] {
            let mut e = entry("mm", "x:1");
            e.version = v.into();
            s.catalog_save(&e, "root")?;
        }
        let all = s.catalog_all()?;
        assert_eq!(all.len(), 3);
        assert_eq!(s.catalog_get("mm")?.unwrap().entry.version, "0.25.0");
        assert_eq!(s.catalog_get("mm@0.9")?.unwrap().entry.version, "0.9");
        assert!(s.catalog_get("mm@7")?.is_none());
        assert_eq!(s.catalog_versions("mm")?, vec!["0.9", "0.23.1", "0.25.0"]);
        let mut e = entry("mm", "x:2");
        e.version = "0.9".into();
        assert_eq!(s.catalog_save(&e, "root")?, 4, "an edit of one version");
        assert_eq!(s.catalog_all()?.len(), 3);
        assert!(s.catalog_delete("mm", "0.25.0")?);
        assert_eq!(s.catalog_get("mm")?.unwrap().entry.version, "0.23.1");
        s.catalog_launch_add("r", "mm", 4, None)?;
        assert_eq!(s.catalog_launches_of("mm", "0.9")?, vec!["r".to_string()]);
        assert!(s.catalog_launches_of("mm", "0.23.1")?.is_empty());
        Ok(())
    }
}
