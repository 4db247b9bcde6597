//! The gateway's clients: API keys the operator issues (only their BLAKE3
//! hashes are stored) or sr25519 hotkeys, each with a rate limit and a daily
//! quota of jobs.
//!
//! ```
//! use akihabara::gateway::keys::{ClientLimits, Clients};
//! let dir = tempfile::tempdir()?;
//! let clients = Clients::new(dir.path().join("clients.json"));
//! let (client, key) = clients.add_key("acme", &ClientLimits::default(), 0)?;
//! assert!(key.starts_with("akh_"));
//! assert_eq!(clients.by_key(&key)?.map(|c| c.id), Some(client.id.clone()));
//! clients.revoke(&client.id)?;
//! assert_eq!(clients.by_key(&key)?, None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use crate::AccountId;

use super::GatewayError;

/// How an API key starts: the prefix makes a leaked key easy to search for.
pub const KEY_PREFIX: &str = "akh_";

/// One client of the gateway, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    /// Its id (`c-` and 12 hex digits): jobs are owned by it.
    pub id: String,
    /// A name for people (`acme-ci`).
    pub name: String,
    /// BLAKE3 of the API key, hex; `None` for a hotkey client.
    #[serde(default)]
    pub key_blake3: Option<String>,
    /// The hotkey that signs its requests; `None` for an API-key client.
    #[serde(default)]
    pub hotkey: Option<AccountId>,
    /// Sustained requests per second.
    pub rate_per_s: f64,
    /// Requests at once after a quiet spell.
    pub burst: u32,
    /// Jobs it may submit per UTC day.
    pub jobs_per_day: u32,
    /// When it was issued, ms since the Unix epoch.
    pub created_ms: u64,
    /// Revoked clients are refused (kept so their jobs keep an owner).
    #[serde(default)]
    pub revoked: bool,
}

/// What a new client gets.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientLimits {
    /// Sustained requests per second (> 0, at most 10,000).
    pub rate_per_s: f64,
    /// Requests at once (1 to 10,000).
    pub burst: u32,
    /// Jobs per UTC day (at least 1).
    pub jobs_per_day: u32,
}

impl Default for ClientLimits {
    fn default() -> ClientLimits {
        ClientLimits {
            rate_per_s: 5.0,
            burst: 20,
            jobs_per_day: 1000,
        }
    }
}

impl ClientLimits {
    fn check(&self) -> Result<(), GatewayError> {
        if !(self.rate_per_s.is_finite() && self.rate_per_s > 0.0 && self.rate_per_s <= 10_000.0) {
            return Err(GatewayError::Setting(format!(
                "rate {} requests/s is not in (0, 10000]",
                self.rate_per_s
            )));
        }
        if self.burst == 0 || self.burst > 10_000 {
            return Err(GatewayError::Setting(format!(
                "burst {} is not in 1..=10000",
                self.burst
            )));
        }
        if self.jobs_per_day == 0 {
            return Err(GatewayError::Setting(
                "a quota of 0 jobs a day admits nothing".into(),
            ));
        }
        Ok(())
    }
}

/// BLAKE3 of an API key, hex.
pub fn key_hash(key: &str) -> String {
    blake3::hash(key.as_bytes()).to_hex().to_string()
}

pub(super) fn random_hex(bytes: usize) -> Result<String, GatewayError> {
    let mut out = String::new();
    // The OS generator, through the pow crate's seeds.
    while out.len() < bytes * 2 {
        let seed = crate::gpu::Seed::random().map_err(GatewayError::Randomness)?;
        out.push_str(&hex::encode(seed.0));
    }
    out.truncate(bytes * 2);
    Ok(out)
}

/// The most clients a gateway keeps.
pub const MAX_CLIENTS: usize = 10_000;

/// The clients file: `{"version": 1, "clients": [...]}`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    version: u32,
    clients: Vec<Client>,
}

/// The clients as loaded, indexed.
#[derive(Debug, Default)]
struct Loaded {
    /// The file's (modified time, length) when it was read.
    stamp: Option<(std::time::SystemTime, u64)>,
    clients: Vec<Client>,
    by_hash: HashMap<String, usize>,
    by_hotkey: HashMap<AccountId, usize>,
}

/// The clients: kept in a JSON file (`clients.json`, mode 0600) that the
/// `gateway keys` commands edit while the gateway runs (it reads the file
/// again when it changes), with their rate limiters in memory. Daily job
/// counts are the gateway's, in its store.
pub struct Clients {
    path: PathBuf,
    loaded: Mutex<Loaded>,
    limiters: Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What [`Gateway::admit_job`](super::Gateway::admit_job) says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaCheck {
    /// Counted; `left` more jobs today.
    Admitted {
        /// Jobs left today after this one.
        left: u32,
    },
    /// The day's quota is used up.
    Exhausted {
        /// The client's daily quota.
        limit: u32,
    },
}

fn file_error(path: &std::path::Path, e: impl std::fmt::Display) -> GatewayError {
    GatewayError::Setting(format!("{}: {e}", path.display()))
}

impl Clients {
    /// The clients in `path` (none while it does not exist).
    pub fn new(path: impl Into<PathBuf>) -> Clients {
        Clients {
            path: path.into(),
            loaded: Mutex::new(Loaded::default()),
            limiters: Mutex::new(HashMap::new()),
        }
    }

    /// The file the clients are kept in.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn read_file(&self) -> Result<ClientFile, GatewayError> {
        match crate::fs::read_limited(&self.path, 16 << 20) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| file_error(&self.path, format!("not a clients file ({e})"))),
            Err(crate::fs::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(ClientFile {
                    version: 1,
                    clients: Vec::new(),
                })
            }
            Err(e) => Err(file_error(&self.path, e)),
        }
    }

    /// Reads the file again when it changed since it was last read.
    fn refresh(&self) -> Result<std::sync::MutexGuard<'_, Loaded>, GatewayError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.modified().unwrap_or(std::time::UNIX_EPOCH), m.len()));
        if stamp.is_some() && stamp == loaded.stamp {
            return Ok(loaded);
        }
        let file = self.read_file()?;
        let mut fresh = Loaded {
            stamp,
            ..Loaded::default()
        };
        for (i, c) in file.clients.iter().enumerate() {
            if let Some(h) = &c.key_blake3 {
                fresh.by_hash.insert(h.clone(), i);
            }
            if let Some(hk) = c.hotkey
                && !c.revoked
            {
                fresh.by_hotkey.insert(hk, i);
            }
        }
        fresh.clients = file.clients;
        *loaded = fresh;
        Ok(loaded)
    }

    /// Edits the file under an exclusive lock (one `keys` command at a time).
    fn edit<T>(
        &self,
        change: impl FnOnce(&mut Vec<Client>) -> Result<T, GatewayError>,
    ) -> Result<T, GatewayError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
        }
        let lock_path = self.path.with_extension("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| file_error(&lock_path, e))?;
        lock.lock().map_err(|e| file_error(&lock_path, e))?;
        let mut file = self.read_file()?;
        let out = change(&mut file.clients)?;
        file.version = 1;
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| file_error(&self.path, e))?;
        crate::fs::write_atomic(&self.path, &bytes, crate::fs::Access::Private)
            .map_err(|e| file_error(&self.path, e))?;
        Ok(out)
    }

    /// Every client, revoked ones too, oldest first.
    pub fn list(&self) -> Result<Vec<Client>, GatewayError> {
        Ok(self.refresh()?.clients.clone())
    }

    /// One client by id.
    pub fn get(&self, id: &str) -> Result<Option<Client>, GatewayError> {
        Ok(self.refresh()?.clients.iter().find(|c| c.id == id).cloned())
    }

    /// Issues an API key: the client is stored with the key's hash, and the
    /// key itself is returned, to be shown once.
    pub fn add_key(
        &self,
        name: &str,
        limits: &ClientLimits,
        now_ms: u64,
    ) -> Result<(Client, String), GatewayError> {
        let key = format!("{KEY_PREFIX}{}", random_hex(32)?);
        let client = self.add(name, limits, now_ms, Some(key_hash(&key)), None)?;
        Ok((client, key))
    }

    /// Admits requests signed by `hotkey`.
    pub fn add_hotkey(
        &self,
        name: &str,
        hotkey: AccountId,
        limits: &ClientLimits,
        now_ms: u64,
    ) -> Result<Client, GatewayError> {
        self.add(name, limits, now_ms, None, Some(hotkey))
    }

    fn add(
        &self,
        name: &str,
        limits: &ClientLimits,
        now_ms: u64,
        key_blake3: Option<String>,
        hotkey: Option<AccountId>,
    ) -> Result<Client, GatewayError> {
        limits.check()?;
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(GatewayError::Setting(
                "a client name is 1 to 64 printable characters".into(),
            ));
        }
        let client = Client {
            id: format!("c-{}", random_hex(6)?),
            name: name.to_owned(),
            key_blake3,
            hotkey,
            rate_per_s: limits.rate_per_s,
            burst: limits.burst,
            jobs_per_day: limits.jobs_per_day,
            created_ms: now_ms,
            revoked: false,
        };
        self.edit(|clients| {
            if clients.len() >= MAX_CLIENTS {
                return Err(GatewayError::Setting(format!(
                    "{MAX_CLIENTS} clients already; revoke or remove some first"
                )));
            }
            if let Some(hk) = hotkey
                && let Some(other) = clients.iter().find(|c| c.hotkey == Some(hk) && !c.revoked)
            {
                return Err(GatewayError::Setting(format!(
                    "hotkey {hk} is already client {}",
                    other.id
                )));
            }
            clients.push(client.clone());
            Ok(())
        })?;
        Ok(client)
    }

    /// Revokes a client: its key or hotkey is refused from now on (the
    /// record stays, so its jobs keep an owner).
    pub fn revoke(&self, id: &str) -> Result<Client, GatewayError> {
        let revoked = self.edit(|clients| {
            let c = clients
                .iter_mut()
                .find(|c| c.id == id)
                .ok_or_else(|| GatewayError::Setting(format!("no client {id}")))?;
            c.revoked = true;
            Ok(c.clone())
        })?;
        if let Ok(mut l) = self.limiters.lock() {
            l.remove(id);
        }
        Ok(revoked)
    }

    /// The live client holding API key `key`.
    pub fn by_key(&self, key: &str) -> Result<Option<Client>, GatewayError> {
        if !key.starts_with(KEY_PREFIX) || key.len() > 128 {
            return Ok(None);
        }
        let loaded = self.refresh()?;
        Ok(loaded
            .by_hash
            .get(&key_hash(key))
            .map(|&i| loaded.clients[i].clone())
            .filter(|c| !c.revoked))
    }

    /// The live client for `hotkey`.
    pub fn by_hotkey(&self, hotkey: &AccountId) -> Result<Option<Client>, GatewayError> {
        let loaded = self.refresh()?;
        Ok(loaded
            .by_hotkey
            .get(hotkey)
            .map(|&i| loaded.clients[i].clone())
            .filter(|c| !c.revoked))
    }

    /// Whether `client` may make a request now (its token bucket).
    pub fn allow_request(&self, client: &Client) -> bool {
        let limiter = {
            let mut all = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
            all.entry(client.id.clone())
                .or_insert_with(|| Arc::new(RateLimiter::direct(quota_of(client))))
                .clone()
        };
        limiter.check().is_ok()
    }
}

fn quota_of(c: &Client) -> Quota {
    let burst = NonZeroU32::new(c.burst.max(1)).unwrap_or(NonZeroU32::MIN);
    // Checked on creation: (0, 10000] requests/s is a period of 100 µs to
    // 1e11 ns (clamped), never zero.
    let period = std::time::Duration::from_nanos((1e9 / c.rate_per_s).clamp(1e5, 1e15) as u64);
    Quota::with_period(period)
        .map(|q| q.allow_burst(burst))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
}
