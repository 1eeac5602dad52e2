//! Bearer tokens for the gpu-docker-api REST API, which is served over TCP where no peer
//! credentials exist: each token stands for a Linux user (their rights and limits). A token is
//! shown once, when made; only its SHA-256 is kept.

use base64::Engine as _;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{now_s, Store};
use crate::{CoreError, Result};

/// What `token ls` shows (never the token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    #[ts(type = "number")]
    pub id: i64,
    pub user: String,
    pub name: String,
    pub created_by: String,
    #[ts(type = "number")]
    pub created_at: i64,
    #[ts(type = "number | null")]
    pub last_used: Option<i64>,
}

/// A new token: the secret (shown once) and its record.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct NewToken {
    pub token: String,
    pub info: TokenInfo,
}

pub const PREFIX: &str = "gdk_";

pub fn hash(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// 32 random bytes, URL-safe base64, with a prefix that says what it is.
pub fn generate() -> Result<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| CoreError::Io {
        path: "the system's random source".into(),
        reason: e.to_string(),
    })?;
    Ok(format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    ))
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenInfo> {
    Ok(TokenInfo {
        id: r.get(0)?,
        user: r.get(1)?,
        name: r.get(2)?,
        created_by: r.get(3)?,
        created_at: r.get(4)?,
        last_used: r.get(5)?,
    })
}

impl Store {
    pub fn token_create(&mut self, user: &str, name: &str, by: &str) -> Result<NewToken> {
        let token = generate()?;
        self.conn.execute(
            "INSERT INTO tokens (hash, user, name, created_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![hash(&token), user, name, by, now_s()],
        )?;
        let id = self.conn.last_insert_rowid();
        let info = self
            .token_list(None)?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| CoreError::Database(rusqlite::Error::QueryReturnedNoRows))?;
        Ok(NewToken { token, info })
    }

    /// Every token (`user`: only theirs), newest first.
    pub fn token_list(&self, user: Option<&str>) -> Result<Vec<TokenInfo>> {
        let mut q = self.conn.prepare(
            "SELECT id, user, name, created_by, created_at, last_used FROM tokens
             WHERE ?1 IS NULL OR user = ?1 ORDER BY id DESC",
        )?;
        let v = q.query_map([user], row)?.collect::<rusqlite::Result<_>>()?;
        Ok(v)
    }

    pub fn token_remove(&mut self, id: i64) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM tokens WHERE id = ?1", [id])?
            > 0)
    }

    /// The user a presented token stands for (and notes its use); None for an unknown token.
    pub fn token_user(&mut self, token: &str) -> Result<Option<String>> {
        let h = hash(token);
        let user: Option<String> = self
            .conn
            .query_row("SELECT user FROM tokens WHERE hash = ?1", [&h], |r| {
                r.get(0)
            })
            .optional()?;
        if user.is_some() {
            self.conn.execute(
                "UPDATE tokens SET last_used = ?2 WHERE hash = ?1",
                params![h, now_s()],
            )?;
        }
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_kept_only_as_its_hash() -> Result<()> {
        let mut s = Store::open_in_memory()?;
        let t = s.token_create("alice", "script", "root")?;
        assert!(t.token.starts_with(PREFIX));
        assert!(t.token.len() > 40);
        let stored: String = s
            .conn
            .query_row("SELECT hash FROM tokens", [], |r| r.get(0))?;
        assert_ne!(stored, t.token);
        assert!(!stored.contains(&t.token[4..]));
        assert_eq!(s.token_user(&t.token)?.as_deref(), Some("alice"));
        assert_eq!(s.token_user("gdk_wrong")?, None);
        assert_eq!(s.token_list(Some("bob"))?.len(), 0);
        assert!(s.token_list(Some("alice"))?[0].last_used.is_some());
        assert!(s.token_remove(t.info.id)?);
        assert_eq!(s.token_user(&t.token)?, None);
        Ok(())
    }
}
