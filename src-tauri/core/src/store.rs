//! The embedded SQLite store: WAL, forward-only migrations, and a refusal to open a database
//! written by a newer GPU Deck. The Docker engine stays the source of truth for what runs; this
//! keeps history, catalog and the journal of multi-step operations.

use std::path::Path;

use std::collections::HashSet;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::alloc::{choose_gpus, choose_ports, GpuCandidate};
use crate::settings::PortRange;
use crate::{CoreError, Result};

/// Seconds since the epoch (0 if the clock is before it): every stored time.
pub(crate) fn now_s() -> i64 {
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
    // 3: replicaSets and every version's full spec, what it got, and why it was made. History is
    // read from here, never from anything that can be compacted away.
    "CREATE TABLE replicasets (
        name       TEXT PRIMARY KEY,
        current    INTEGER NOT NULL,
        stopped    INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE rs_versions (
        name       TEXT NOT NULL,
        version    INTEGER NOT NULL,
        spec       TEXT NOT NULL,
        gpus       TEXT NOT NULL,
        ports      TEXT NOT NULL,
        op         TEXT NOT NULL,
        changes    TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (name, version)
    );",
    // 4: volumes and every version (size, backend, why); history stays after a delete.
    "CREATE TABLE volumes (
        name       TEXT PRIMARY KEY,
        current    INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        deleted_at INTEGER
    );
    CREATE TABLE vol_versions (
        name       TEXT NOT NULL,
        version    INTEGER NOT NULL,
        size_bytes INTEGER NOT NULL,
        backend    TEXT NOT NULL,
        op         TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        retired_at INTEGER,
        PRIMARY KEY (name, version)
    );",
    // 5: named counters that only go up (XFS project IDs for volume versions: never reused, so a
    // stale quota record can never limit a new folder).
    "CREATE TABLE counters (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );",
    // 6: version files as images: the image id a version was created on (recorded at run, so a
    // re-pulled tag never changes it), and, once the version is replaced, the snapshot image
    // holding its files, the bytes of the layer it added, and whether they were pruned.
    "ALTER TABLE rs_versions ADD COLUMN image_id TEXT;
    ALTER TABLE rs_versions ADD COLUMN snapshot_id TEXT;
    ALTER TABLE rs_versions ADD COLUMN snapshot_bytes INTEGER;
    ALTER TABLE rs_versions ADD COLUMN pruned INTEGER NOT NULL DEFAULT 0;",
    // 7: commits to images, at the version they came from (the timeline shows them there).
    "CREATE TABLE rs_commits (
        name       TEXT NOT NULL,
        version    INTEGER NOT NULL,
        image      TEXT NOT NULL,
        image_id   TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX rs_commits_by_name ON rs_commits(name, version);",
    // 8: lab members as themselves: who owns each volume (a replicaSet's owner is in its spec),
    // the admin's per-user limits ('*' is the default row) and an audit of who did what.
    "ALTER TABLE volumes ADD COLUMN owner TEXT;
    CREATE TABLE policy (
        user              TEXT PRIMARY KEY,
        max_gpus          INTEGER,
        bind_roots        TEXT,
        root_in_container INTEGER
    );
    CREATE TABLE audit (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        at      INTEGER NOT NULL,
        uid     INTEGER NOT NULL,
        user    TEXT NOT NULL,
        action  TEXT NOT NULL,
        subject TEXT NOT NULL,
        outcome TEXT NOT NULL
    );",
    // 9: registries the lab pushes to and pulls from (their passwords are sealed apart, never here).
    "CREATE TABLE registries (
        name       TEXT PRIMARY KEY,
        url        TEXT NOT NULL,
        host       TEXT NOT NULL,
        username   TEXT,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );",
    // 10: bearer tokens for the gpu-docker-api REST API over TCP (no peer credentials there):
    // each maps to a Linux user; only its SHA-256 is kept.
    "CREATE TABLE tokens (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        hash       TEXT NOT NULL UNIQUE,
        user       TEXT NOT NULL,
        name       TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_used  INTEGER
    );",
    // 11: the catalog: every revision of every entry (GPU Deck's file format, as JSON), soft
    // deletes, and which replicaSet was launched from which entry, revision and image.
    "CREATE TABLE catalog_entries (
        name       TEXT NOT NULL,
        revision   INTEGER NOT NULL,
        doc        TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL,
        deleted_at INTEGER,
        PRIMARY KEY (name, revision)
    );
    CREATE TABLE catalog_launches (
        replicaset TEXT PRIMARY KEY,
        entry      TEXT NOT NULL,
        revision   INTEGER NOT NULL,
        image_id   TEXT,
        at         INTEGER NOT NULL
    );",
    // 12: which user each GPU claim is for, so that a user's limit is counted and claimed in
    // one transaction (parallel runs of one member cannot pass it together). Claims made before
    // are given their replicaSet's owner.
    "ALTER TABLE gpu_claims ADD COLUMN user TEXT;
    UPDATE gpu_claims SET user = (
        SELECT json_extract(v.spec, '$.owner') FROM replicasets r
        JOIN rs_versions v ON v.name = r.name AND v.version = r.current
        WHERE r.name = gpu_claims.owner);",
    // 13: per-user volume quota and default memory and CPU limits of members' containers.
    "ALTER TABLE policy ADD COLUMN max_volume_bytes INTEGER;
    ALTER TABLE policy ADD COLUMN memory_bytes INTEGER;
    ALTER TABLE policy ADD COLUMN cpus_milli INTEGER;",
    // 14: catalog entries are keyed by name and version (as UFDL keys an image), each version
    // with its own revisions; the version is read out of each stored revision.
    "ALTER TABLE catalog_entries ADD COLUMN version TEXT NOT NULL DEFAULT '';
    UPDATE catalog_entries SET version = COALESCE(json_extract(doc, '$.version'), '');
    CREATE INDEX catalog_by_version ON catalog_entries(name, version, revision);",
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub struct Store {
    /// Each domain keeps its own SQL in an `impl Store` of its own folder (`policy/store.rs`).
    pub(crate) conn: Connection,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
        }
        let conn = Connection::open(path)?;
        // First, before any pragma (which may need a lock another process holds: without a busy
        // timeout that is "database is locked" at once). Generous: with synchronous=FULL every
        // commit waits for the disk, and the app and many CLI commands may write at once.
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        // Turning a new database to WAL takes a lock the busy handler does not wait for: many
        // processes opening it at once (fifty `gpudeck rs run`s) get "database is locked" at once.
        let mut tries = 0;
        loop {
            match conn.pragma_update(None, "journal_mode", "WAL") {
                Ok(()) => break,
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy && tries < 600 =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(e.into()),
            }
        }
        // FULL: every commit is on disk before the irreversible step after it (removing a container).
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
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

    /// Applies the missing migrations in one write transaction: two processes opening a new
    /// database at once (the app and the CLI) never both run the same migration.
    fn migrate(&mut self, label: &str) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(CoreError::DatabaseTooNew {
                path: label.to_string(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        for sql in MIGRATIONS.iter().skip(found as usize) {
            tx.execute_batch(sql)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
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

/// Whose GPUs a claim is, and the most they may hold at once (`None`: no limit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserLimit {
    pub user: Option<String>,
    pub max: Option<u32>,
}

/// Refuses, inside the claim's transaction, `n` more GPUs for `limit.user` beside what their
/// replicaSets other than `owner` hold.
fn check_limit(
    tx: &rusqlite::Transaction<'_>,
    owner: &str,
    n: u32,
    limit: &UserLimit,
) -> Result<()> {
    let (Some(user), Some(max)) = (&limit.user, limit.max) else {
        return Ok(());
    };
    if n == 0 {
        return Ok(());
    }
    let held: u32 = tx.query_row(
        "SELECT COUNT(*) FROM gpu_claims WHERE user = ?1 AND owner <> ?2",
        params![user, owner],
        |r| r.get(0),
    )?;
    if held + n > max {
        return Err(CoreError::GpuLimit {
            user: user.clone(),
            limit: max,
            held,
            requested: n,
        });
    }
    Ok(())
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
        self.claim_gpus_within(owner, candidates, held_elsewhere, n, &UserLimit::default())
    }

    /// `claim_gpus`, for `limit.user`: when they have a limit, what their other replicaSets hold
    /// is counted in the same write transaction as the claim, so no two claims pass it together.
    pub fn claim_gpus_within(
        &mut self,
        owner: &str,
        candidates: &[GpuCandidate],
        held_elsewhere: &HashSet<String>,
        n: u32,
        limit: &UserLimit,
    ) -> Result<Vec<String>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        check_limit(&tx, owner, n, limit)?;
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
                "INSERT INTO gpu_claims (uuid, owner, claimed_at, user) VALUES (?1, ?2, ?3, ?4)",
                params![uuid, owner, now_s(), limit.user],
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

/// A process's start time (clock ticks since boot, `/proc/PID/stat` field 22), which tells a
/// live process from a later one that got the same pid; `None` when there is no such process.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process that began an operation still runs.
fn owner_alive(payload: &serde_json::Value) -> bool {
    let o = &payload["_owner"];
    match (o["pid"].as_u64(), o["start"].as_u64()) {
        (Some(pid), Some(start)) => process_start(pid as u32) == Some(start),
        _ => false,
    }
}

/// One step of a journaled operation as it happens: the service streams these as `progress`
/// events, so that a long patch or resize says where it is.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, ts_rs::TS, schemars::JsonSchema)]
pub struct Progress {
    /// "patch", "rollback", "restart", "run", "vol-create", "vol-resize", …
    pub kind: String,
    /// The replicaSet or volume.
    pub subject: String,
    /// The step just written ("stopped_old", "committed", …; "done" or "undone" at the end).
    pub step: String,
}

fn progress_channel() -> &'static tokio::sync::broadcast::Sender<Progress> {
    static TX: std::sync::OnceLock<tokio::sync::broadcast::Sender<Progress>> =
        std::sync::OnceLock::new();
    TX.get_or_init(|| tokio::sync::broadcast::channel(256).0)
}

/// Every journaled step from now on (a slow receiver misses old ones, never blocks the writer).
pub fn progress() -> tokio::sync::broadcast::Receiver<Progress> {
    progress_channel().subscribe()
}

fn emit(kind: String, subject: String, step: &str) {
    // With timestamps in the service's log (RUST_LOG=gpudeck_core=debug): where an operation's
    // time goes.
    tracing::debug!(%kind, %subject, step, "journal step");
    let _ = progress_channel().send(Progress {
        kind,
        subject,
        step: step.to_string(),
    });
}

/// An operation begun and not finished (the app died in the middle).
#[derive(Debug, Clone)]
pub struct OpenOperation {
    pub id: i64,
    pub kind: String,
    pub subject: String,
    pub step: String,
    pub payload: serde_json::Value,
}

impl Store {
    pub fn journal_begin(
        &mut self,
        kind: &str,
        subject: &str,
        payload: &serde_json::Value,
    ) -> Result<i64> {
        let t = now_s();
        // Who runs it: recovery leaves alone an operation whose process still runs (the app
        // and a CLI command, or two CLI commands, at work at once).
        let mut payload = payload.clone();
        if let Some(o) = payload.as_object_mut() {
            let pid = std::process::id();
            o.insert(
                "_owner".into(),
                serde_json::json!({ "pid": pid, "start": process_start(pid) }),
            );
        }
        self.conn.execute(
            "INSERT INTO journal (kind, subject, step, payload, started_at, updated_at) VALUES (?1, ?2, 'begun', ?3, ?4, ?4)",
            params![kind, subject, payload.to_string(), t],
        )?;
        emit(kind.into(), subject.into(), "begun");
        Ok(self.conn.last_insert_rowid())
    }

    pub fn journal_step(&mut self, id: i64, step: &str) -> Result<()> {
        self.journal_update(id, step, false)
    }

    /// Sets an unfinished row's step (and finishes it), and says so on the progress channel.
    fn journal_update(&mut self, id: i64, step: &str, finish: bool) -> Result<()> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "UPDATE journal SET step = ?2, updated_at = ?3,
                   finished_at = CASE WHEN ?4 THEN ?3 ELSE finished_at END
                 WHERE id = ?1 AND finished_at IS NULL RETURNING kind, subject",
                params![id, step, now_s(), finish],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((kind, subject)) = row {
            emit(kind, subject, step);
        }
        Ok(())
    }

    /// Adds `key` = `value` to an unfinished operation's payload (the id of a container it made,
    /// so that an undo removes that one by id).
    pub fn journal_set(&mut self, id: i64, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE journal SET payload = json_set(payload, '$.' || ?2, ?3), updated_at = ?4 WHERE id = ?1 AND finished_at IS NULL",
            params![id, key, value, now_s()],
        )?;
        Ok(())
    }

    pub fn journal_finish(&mut self, id: i64, outcome: &str) -> Result<()> {
        self.journal_update(id, outcome, true)
    }

    /// Every unfinished row, whoever runs it.
    fn journal_unfinished(&self) -> Result<Vec<OpenOperation>> {
        let mut q = self.conn.prepare("SELECT id, kind, subject, step, payload FROM journal WHERE finished_at IS NULL ORDER BY id")?;
        let v = q
            .query_map([], |r| {
                Ok(OpenOperation {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    subject: r.get(2)?,
                    step: r.get(3)?,
                    payload: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
                })
            })?
            .collect::<rusqlite::Result<Vec<OpenOperation>>>()?;
        Ok(v)
    }

    pub fn journal_open(&self) -> Result<Vec<OpenOperation>> {
        // Another process at work on it right now is not a crash.
        Ok(self
            .journal_unfinished()?
            .into_iter()
            .filter(|o| !owner_alive(&o.payload))
            .collect())
    }

    /// `journal_open`, with this process's own unfinished rows too (the service settling, while
    /// it runs, what one of its operations left: the caller makes sure none is under way).
    pub fn journal_open_ours_too(&self) -> Result<Vec<OpenOperation>> {
        let me = u64::from(std::process::id());
        Ok(self
            .journal_unfinished()?
            .into_iter()
            .filter(|o| o.payload["_owner"]["pid"].as_u64() == Some(me) || !owner_alive(&o.payload))
            .collect())
    }
}

pub use crate::replicaset::store::VersionRecord;
pub use crate::volume::store::VolumeVersion;

impl Store {
    /// Every port claim, as (port, owner).
    pub fn port_claims(&self) -> Result<Vec<(u16, String)>> {
        let mut q = self
            .conn
            .prepare("SELECT port, owner FROM port_claims ORDER BY port")?;
        let v = q
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }

    /// The GPUs `owner` holds now.
    pub fn gpus_of(&self, owner: &str) -> Result<Vec<String>> {
        let mut q = self
            .conn
            .prepare("SELECT uuid FROM gpu_claims WHERE owner = ?1 ORDER BY uuid")?;
        let v = q
            .query_map([owner], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }

    /// Gives `owner` back exactly these claims (undoing a failed new version). A GPU or port that
    /// another owner took meanwhile stays theirs.
    pub fn restore_claims(&mut self, owner: &str, gpus: &[String], ports: &[u16]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM gpu_claims WHERE owner = ?1", [owner])?;
        tx.execute("DELETE FROM port_claims WHERE owner = ?1", [owner])?;
        for u in gpus {
            tx.execute(
                "INSERT OR IGNORE INTO gpu_claims (uuid, owner, claimed_at) VALUES (?1, ?2, ?3)",
                params![u, owner, now_s()],
            )?;
        }
        for p in ports {
            tx.execute(
                "INSERT OR IGNORE INTO port_claims (port, owner, claimed_at) VALUES (?1, ?2, ?3)",
                params![p, owner, now_s()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Claims exactly these GPUs for `owner` (continue after stop): fails, changing nothing, when
    /// another owner or `held_elsewhere` has any of them.
    pub fn claim_exact_gpus(
        &mut self,
        owner: &str,
        uuids: &[String],
        held_elsewhere: &HashSet<String>,
        limit: &UserLimit,
    ) -> Result<std::result::Result<(), Vec<String>>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        check_limit(&tx, owner, uuids.len() as u32, limit)?;
        let mut taken = Vec::new();
        for u in uuids {
            let other: Option<String> = {
                use rusqlite::OptionalExtension;
                tx.query_row(
                    "SELECT owner FROM gpu_claims WHERE uuid = ?1 AND owner <> ?2",
                    params![u, owner],
                    |r| r.get(0),
                )
                .optional()?
            };
            if other.is_some() || held_elsewhere.contains(u) {
                taken.push(u.clone());
            }
        }
        if !taken.is_empty() {
            return Ok(Err(taken));
        }
        tx.execute("DELETE FROM gpu_claims WHERE owner = ?1", [owner])?;
        for u in uuids {
            tx.execute(
                "INSERT INTO gpu_claims (uuid, owner, claimed_at, user) VALUES (?1, ?2, ?3, ?4)",
                params![u, owner, now_s(), limit.user],
            )?;
        }
        tx.commit()?;
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A finished operation's row never changes again; an unfinished one records the container
    /// it made, for an undo by id. Each step goes out on the progress channel, once.
    #[test]
    fn journal_rows_change_only_while_unfinished() -> Result<()> {
        let mut progress = progress();
        let mut s = Store::open_in_memory()?;
        let id = s.journal_begin("patch", "jrnl", &serde_json::json!({ "old": 1, "new": 2 }))?;
        s.journal_set(id, "new_id", "abc123")?;
        let payload = |s: &Store| -> Result<(String, serde_json::Value)> {
            Ok(s.conn.query_row(
                "SELECT step, payload FROM journal WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or_default(),
                    ))
                },
            )?)
        };
        assert_eq!(payload(&s)?.1["new_id"], "abc123");
        assert_eq!(payload(&s)?.1["new"], 2);
        s.journal_finish(id, "done")?;
        s.journal_step(id, "claimed")?;
        s.journal_set(id, "new_id", "other")?;
        s.journal_finish(id, "undone")?;
        let (step, p) = payload(&s)?;
        assert_eq!(step, "done");
        assert_eq!(p["new_id"], "abc123");
        let mut seen = vec![];
        while let Ok(p) = progress.try_recv() {
            if p.subject == "jrnl" && p.kind == "patch" {
                seen.push(p.step);
            }
        }
        assert_eq!(seen, ["begun", "done"]);
        Ok(())
    }

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

    #[test]
    fn open_operations_of_a_live_process_are_not_recovered() -> Result<()> {
        let mut s = Store::open_in_memory()?;
        s.journal_begin("patch", "mine", &serde_json::json!({}))?;
        assert!(s.journal_open()?.is_empty(), "this process is alive");
        s.conn.execute(
            "UPDATE journal SET payload = json_set(payload, '$._owner.start', 1)",
            [],
        )?;
        assert_eq!(
            s.journal_open()?.len(),
            1,
            "a pid reused by another process"
        );
        Ok(())
    }

    #[test]
    fn counters_only_go_up() {
        let mut s = Store::open_in_memory().unwrap();
        assert_eq!(s.next_counter("q", 100).unwrap(), 101);
        assert_eq!(s.next_counter("q", 100).unwrap(), 102);
        assert_eq!(
            s.next_counter("q", 500).unwrap(),
            501,
            "a higher floor lifts it"
        );
        assert_eq!(
            s.next_counter("q", 100).unwrap(),
            502,
            "a lower floor never lowers it"
        );
        assert_eq!(s.next_counter("other", 0).unwrap(), 1);
    }
}
