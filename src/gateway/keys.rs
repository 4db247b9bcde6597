//! The gateway's clients: API keys the operator issues (only their BLAKE3
//! hashes are stored) or sr25519 hotkeys, each with a rate limit and a daily
//! quota of jobs.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use crate::AccountId;
use crate::store::{Put, Store, StoreError, get_json};

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

const CLIENTS: &str = "akihabara:gateway:clients";

fn client_key(id: &str) -> String {
    format!("akihabara:gateway:client:{id}")
}

fn hash_key(hash: &str) -> String {
    format!("akihabara:gateway:key:{hash}")
}

fn hotkey_key(hotkey: &AccountId) -> String {
    format!("akihabara:gateway:hotkey:{hotkey}")
}

fn quota_key(id: &str, day: u64) -> String {
    format!("akihabara:gateway:quota:{id}:{day}")
}

/// BLAKE3 of an API key, hex.
pub fn key_hash(key: &str) -> String {
    blake3::hash(key.as_bytes()).to_hex().to_string()
}

fn random_hex(bytes: usize) -> Result<String, GatewayError> {
    let mut b = vec![0u8; bytes];
    getrandom_fill(&mut b)?;
    Ok(hex::encode(b))
}

fn getrandom_fill(b: &mut [u8]) -> Result<(), GatewayError> {
    // The OS generator through the pow crate's seed (one source of randomness).
    for chunk in b.chunks_mut(32) {
        let seed = crate::gpu::Seed::random().map_err(GatewayError::Randomness)?;
        chunk.copy_from_slice(&seed.0[..chunk.len()]);
    }
    Ok(())
}

/// The clients, kept in a [`Store`], with their rate limiters in memory.
pub struct Clients {
    store: Arc<dyn Store>,
    limiters: Mutex<HashMap<String, Arc<DefaultDirectRateLimiter>>>,
    quota: Mutex<()>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients")
            .field("store", &self.store.describe())
            .finish_non_exhaustive()
    }
}

/// What [`Clients::admit_job`] says.
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

impl Clients {
    /// The clients in `store`.
    pub fn new(store: Arc<dyn Store>) -> Clients {
        Clients {
            store,
            limiters: Mutex::new(HashMap::new()),
            quota: Mutex::new(()),
        }
    }

    fn ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(get_json::<Vec<String>>(&*self.store, CLIENTS)?.unwrap_or_default())
    }

    /// Every client, revoked ones too, oldest first.
    pub fn list(&self) -> Result<Vec<Client>, GatewayError> {
        let mut out = Vec::new();
        for id in self.ids()? {
            if let Some(c) = get_json::<Client>(&*self.store, &client_key(&id))? {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// One client by id.
    pub fn get(&self, id: &str) -> Result<Option<Client>, GatewayError> {
        Ok(get_json(&*self.store, &client_key(id))?)
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
        let hash = key_hash(&key);
        let client = self.add(name, limits, now_ms, Some(hash.clone()), None)?;
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
        if let Some(id) = get_json::<String>(&*self.store, &hotkey_key(&hotkey))?
            && self.get(&id)?.is_some_and(|c| !c.revoked)
        {
            return Err(GatewayError::Setting(format!(
                "hotkey {hotkey} is already client {id}"
            )));
        }
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
        let mut ids = self.ids()?;
        ids.push(client.id.clone());
        let mut writes = vec![
            (CLIENTS.to_owned(), json(&ids)?),
            (client_key(&client.id), json(&client)?),
        ];
        match (&client.key_blake3, &client.hotkey) {
            (Some(h), _) => writes.push((hash_key(h), json(&client.id)?)),
            (None, Some(hk)) => writes.push((hotkey_key(hk), json(&client.id)?)),
            (None, None) => {}
        }
        let puts: Vec<Put<'_>> = writes.iter().map(|(k, v)| Put::new(k, v)).collect();
        self.store.put(&puts)?;
        Ok(client)
    }

    /// Revokes a client: its key or hotkey is refused from now on.
    pub fn revoke(&self, id: &str) -> Result<Client, GatewayError> {
        let mut c = self
            .get(id)?
            .ok_or_else(|| GatewayError::Setting(format!("no client {id}")))?;
        c.revoked = true;
        let record = json(&c)?;
        let mut keys = vec![client_key(id)];
        self.store.put(&[Put::new(&keys[0], &record)])?;
        if let Some(h) = &c.key_blake3 {
            keys.push(hash_key(h));
            self.store.delete(&keys[1])?;
        }
        if let Ok(mut l) = self.limiters.lock() {
            l.remove(id);
        }
        Ok(c)
    }

    /// The live client holding API key `key`.
    pub fn by_key(&self, key: &str) -> Result<Option<Client>, GatewayError> {
        if !key.starts_with(KEY_PREFIX) || key.len() > 128 {
            return Ok(None);
        }
        let Some(id) = get_json::<String>(&*self.store, &hash_key(&key_hash(key)))? else {
            return Ok(None);
        };
        Ok(self.get(&id)?.filter(|c| !c.revoked))
    }

    /// The live client for `hotkey`.
    pub fn by_hotkey(&self, hotkey: &AccountId) -> Result<Option<Client>, GatewayError> {
        let Some(id) = get_json::<String>(&*self.store, &hotkey_key(hotkey))? else {
            return Ok(None);
        };
        Ok(self.get(&id)?.filter(|c| !c.revoked))
    }

    /// Whether `client` may make a request now (its token bucket).
    pub fn allow_request(&self, client: &Client) -> bool {
        let limiter = {
            let Ok(mut all) = self.limiters.lock() else {
                return false;
            };
            all.entry(client.id.clone())
                .or_insert_with(|| Arc::new(RateLimiter::direct(quota_of(client))))
                .clone()
        };
        limiter.check().is_ok()
    }

    /// Counts one job against `client`'s quota for the UTC day of `now_ms`,
    /// unless the quota is used up. The count is stored, so a restart does
    /// not reset it.
    pub fn admit_job(&self, client: &Client, now_ms: u64) -> Result<QuotaCheck, GatewayError> {
        let _one_at_a_time = self.quota.lock().unwrap_or_else(|p| p.into_inner());
        let day = now_ms / 86_400_000;
        let key = quota_key(&client.id, day);
        let used = get_json::<u32>(&*self.store, &key)?.unwrap_or(0);
        if used >= client.jobs_per_day {
            return Ok(QuotaCheck::Exhausted {
                limit: client.jobs_per_day,
            });
        }
        let bytes = json(&(used + 1))?;
        self.store
            .put(&[Put::new(&key, &bytes).expiring(std::time::Duration::from_secs(2 * 86_400))])?;
        Ok(QuotaCheck::Admitted {
            left: client.jobs_per_day - used - 1,
        })
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

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>, GatewayError> {
    serde_json::to_vec(v).map_err(|e| GatewayError::Setting(format!("cannot encode: {e}")))
}
