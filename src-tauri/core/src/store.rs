//! The embedded SQLite store: WAL, forward-only migrations, and a refusal to open a database
//! written by a newer GPU Deck. The Docker engine stays the source of truth for what runs; this
//! keeps history, catalog and the journal of multi-step operations.

use std::path::Path;

use rusqlite::Connection;

use crate::{CoreError, Result};

/// Forward-only migrations; entry `i` takes the schema from version `i` to `i + 1`.
/// Never edit a released entry: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the journal of multi-step operations (new version, resize): one row an operation, its
    // current step and what it needs to finish or undo it after a crash.
    "CREATE TABLE journal (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        kind        TEXT NOT NULL,
        subject     TEXT NOT NULL,
        step        TEXT NOT NULL,
        payload     TEXT NOT NULL DEFAULT '{}',
        started_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        finished_at INTEGER
    );
    CREATE INDEX journal_open ON journal(finished_at) WHERE finished_at IS NULL;",
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub struct Store {
    conn: Connection,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut store = Store { conn };
        store.migrate(&path.display().to_string())?;
        Ok(store)
    }

    pub fn open_in_memory() -> Result<Store> {
        let mut store = Store {
            conn: Connection::open_in_memory()?,
        };
        store.migrate(":memory:")?;
        Ok(store)
    }

    fn migrate(&mut self, label: &str) -> Result<()> {
        let found: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(CoreError::DatabaseTooNew {
                path: label.to_string(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    pub fn journal_mode(&self) -> Result<String> {
        Ok(self
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))?)
    }

    /// Operations begun and never finished (a crash in the middle): recovery reads these at start.
    pub fn unfinished_operations(&self) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM journal WHERE finished_at IS NULL",
            [],
            |r| r.get(0),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_to_latest_and_reopens() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| CoreError::io("tmp", e))?;
        let p = dir.path().join("sub/gpudeck.db");
        {
            let s = Store::open(&p)?;
            assert_eq!(s.schema_version()?, SCHEMA_VERSION);
            assert_eq!(s.journal_mode()?, "wal");
            assert_eq!(s.unfinished_operations()?, 0);
        }
        let s = Store::open(&p)?;
        assert_eq!(s.schema_version()?, SCHEMA_VERSION);
        Ok(())
    }

    #[test]
    fn refuses_a_newer_database_and_leaves_it_alone() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| CoreError::io("tmp", e))?;
        let p = dir.path().join("gpudeck.db");
        {
            let c = Connection::open(&p)?;
            c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)?;
        }
        match Store::open(&p) {
            Err(CoreError::DatabaseTooNew { found, .. }) => assert_eq!(found, SCHEMA_VERSION + 1),
            other => panic!("expected DatabaseTooNew, got {:?}", other.map(|_| ())),
        }
        let c = Connection::open(&p)?;
        let v: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
        assert_eq!(v, SCHEMA_VERSION + 1);
        Ok(())
    }
}
