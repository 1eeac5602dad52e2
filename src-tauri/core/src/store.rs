//! The embedded SQLite store: WAL, forward-only migrations, and a refusal to open a database
//! written by a newer GPU Deck. The Docker engine stays the source of truth for what runs; this
//! keeps history, catalog and the journal of multi-step operations.

use std::path::Path;

use std::collections::HashSet;

use rusqlite::{params, Connection, TransactionBehavior};

use crate::alloc::{choose_gpus, choose_ports, GpuCandidate};
use crate::settings::PortRange;
use crate::{CoreError, Result};

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

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
    // 2: who holds which GPU and host port. The primary keys make a double booking impossible;
    // claims are made inside one write transaction, so separate processes never collide.
    "CREATE TABLE gpu_claims (
        uuid       TEXT PRIMARY KEY,
        owner      TEXT NOT NULL,
        claimed_at INTEGER NOT NULL
    );
    CREATE TABLE port_claims (
        port       INTEGER PRIMARY KEY,
        owner      TEXT NOT NULL,
        claimed_at INTEGER NOT NULL
    );",
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

impl Store {
    /// Claims `n` GPUs for `owner`, atomically across processes: what other owners claimed and
    /// what `held_elsewhere` (containers the engine runs outside GPU Deck) hold is never chosen.
    /// GPUs `owner` already holds are released first (a new version re-chooses). On a shortage
    /// nothing changes.
    pub fn claim_gpus(
        &mut self,
        owner: &str,
        candidates: &[GpuCandidate],
        held_elsewhere: &HashSet<String>,
        n: u32,
    ) -> Result<Vec<String>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut taken = held_elsewhere.clone();
        {
            let mut q = tx.prepare("SELECT uuid FROM gpu_claims WHERE owner <> ?1")?;
            for uuid in q.query_map([owner], |r| r.get::<_, String>(0))? {
                taken.insert(uuid?);
            }
        }
        let chosen = choose_gpus(candidates, &taken, n)?;
        tx.execute("DELETE FROM gpu_claims WHERE owner = ?1", [owner])?;
        for uuid in &chosen {
            tx.execute(
                "INSERT INTO gpu_claims (uuid, owner, claimed_at) VALUES (?1, ?2, ?3)",
                params![uuid, owner, now_s()],
            )?;
        }
        tx.commit()?;
        Ok(chosen)
    }

    /// Claims `n` host ports for `owner` in `range`, keeping those in `keep` that are still free.
    /// `busy` are ports in use on the host by anything. Ports `owner` held before are released
    /// first, then re-chosen.
    pub fn claim_ports(
        &mut self,
        owner: &str,
        range: PortRange,
        busy: &HashSet<u16>,
        keep: &[u16],
        n: usize,
    ) -> Result<Vec<u16>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut unavailable = busy.clone();
        {
            let mut q = tx.prepare("SELECT port FROM port_claims WHERE owner <> ?1")?;
            for p in q.query_map([owner], |r| r.get::<_, u16>(0))? {
                unavailable.insert(p?);
            }
        }
        // A port this owner holds shows as busy on the host while its container runs; it stays its own.
        let own: Vec<u16> = {
            let mut q = tx.prepare("SELECT port FROM port_claims WHERE owner = ?1")?;
            let v = q
                .query_map([owner], |r| r.get::<_, u16>(0))?
                .collect::<rusqlite::Result<_>>()?;
            v
        };
        for p in &own {
            unavailable.remove(p);
        }
        let chosen = choose_ports(range, &unavailable, keep, n)?;
        tx.execute("DELETE FROM port_claims WHERE owner = ?1", [owner])?;
        for p in &chosen {
            tx.execute(
                "INSERT INTO port_claims (port, owner, claimed_at) VALUES (?1, ?2, ?3)",
                params![p, owner, now_s()],
            )?;
        }
        tx.commit()?;
        Ok(chosen)
    }

    /// Releases everything `owner` holds; returns what was released (nothing the second time).
    pub fn release(&mut self, owner: &str) -> Result<(Vec<String>, Vec<u16>)> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let gpus = {
            let mut q = tx.prepare("DELETE FROM gpu_claims WHERE owner = ?1 RETURNING uuid")?;
            let v = q
                .query_map([owner], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            v
        };
        let ports = {
            let mut q = tx.prepare("DELETE FROM port_claims WHERE owner = ?1 RETURNING port")?;
            let v = q
                .query_map([owner], |r| r.get::<_, u16>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            v
        };
        tx.commit()?;
        Ok((gpus, ports))
    }

    /// Every claim, as (uuid or port, owner), for the GPU and port pages.
    pub fn gpu_claims(&self) -> Result<Vec<(String, String)>> {
        let mut q = self
            .conn
            .prepare("SELECT uuid, owner FROM gpu_claims ORDER BY uuid")?;
        let v = q
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(v)
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

#[cfg(test)]
mod claim_tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn candidates(n: u32) -> Vec<GpuCandidate> {
        (0..n)
            .map(|i| GpuCandidate {
                index: i,
                uuid: format!("GPU-{i}"),
                memory_used_bytes: Some(0),
            })
            .collect()
    }

    /// 50 separate connections (as separate processes would have) ask for 1 GPU each of 8 at
    /// once: exactly 8 succeed, each with its own GPU; the rest get "1 requested, 0 free".
    #[test]
    fn fifty_concurrent_claims_on_eight_gpus() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gpudeck.db");
        drop(Store::open(&path).unwrap());
        let barrier = Arc::new(Barrier::new(50));
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut s = Store::open(&path).unwrap();
                    barrier.wait();
                    s.claim_gpus(&format!("rs{i}"), &candidates(8), &HashSet::new(), 1)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let won: Vec<String> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .flatten()
            .cloned()
            .collect();
        assert_eq!(won.len(), 8);
        assert_eq!(
            won.iter().collect::<HashSet<_>>().len(),
            8,
            "a GPU was handed out twice"
        );
        for r in results.iter().filter(|r| r.is_err()) {
            assert!(
                matches!(
                    r,
                    Err(CoreError::NotEnoughGpus {
                        requested: 1,
                        free: 0
                    })
                ),
                "{r:?}"
            );
        }
        assert_eq!(Store::open(&path).unwrap().gpu_claims().unwrap().len(), 8);
    }

    #[test]
    fn external_holders_shortage_and_release_once() {
        let mut s = Store::open_in_memory().unwrap();
        let outside: HashSet<String> = ["GPU-0".to_string()].into();
        let got = s.claim_gpus("foo", &candidates(4), &outside, 2).unwrap();
        assert_eq!(got, vec!["GPU-1", "GPU-2"]);
        let err = s
            .claim_gpus("bar", &candidates(4), &outside, 2)
            .unwrap_err();
        assert!(matches!(
            err,
            CoreError::NotEnoughGpus {
                requested: 2,
                free: 1
            }
        ));
        assert!(
            s.gpu_claims().unwrap().iter().all(|(_, o)| o == "foo"),
            "the failed claim leaked"
        );
        // A new version of foo re-chooses among its own and the free ones.
        assert_eq!(
            s.claim_gpus("foo", &candidates(4), &outside, 3)
                .unwrap()
                .len(),
            3
        );
        let (g, p) = s.release("foo").unwrap();
        assert_eq!((g.len(), p.len()), (3, 0));
        assert_eq!(
            s.release("foo").unwrap(),
            (vec![], vec![]),
            "released twice"
        );
    }

    #[test]
    fn ports_are_kept_and_never_shared() {
        let mut s = Store::open_in_memory().unwrap();
        let r = PortRange {
            start: 40000,
            end: 40009,
        };
        let busy: HashSet<u16> = [40000].into();
        let a = s.claim_ports("a", r, &busy, &[], 2).unwrap();
        assert_eq!(a, vec![40001, 40002]);
        let b = s.claim_ports("b", r, &busy, &[40001], 1).unwrap();
        assert_eq!(b, vec![40003], "a's port is not b's to keep");
        // a's next version keeps its ports even though its running container makes them busy.
        let mut busy2 = busy.clone();
        busy2.extend(&a);
        assert_eq!(s.claim_ports("a", r, &busy2, &a, 2).unwrap(), a);
    }
}
