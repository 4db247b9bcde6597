//! `akihabara allocate`, `deallocate`, `allocations`: a validator rents an
//! executor from a miner with its SSH key, ends the rental, and lists what
//! it holds.
//!
//! The login details come sealed to an X25519 key made for the one call and
//! dropped after it: no secret is written or printed. The miner is the only
//! other party that knows an allocation, so each is recorded in
//! `STATE/allocations.json` (rewritten atomically) with the miner's address,
//! which `deallocate` calls.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use akihabara_core::AccountId;
use akihabara_core::dendrite::AxonTarget;
use akihabara_core::executor::access::{LoginDetails, SshPublicKey, new_sealing_key};
use akihabara_core::fs::{Access, write_atomic};
use akihabara_core::market::client::{AllocateOutcome, allocate, deallocate};
use akihabara_core::market::server::unix_millis;
use akihabara_core::market::wire::{Allocate, DeallocateReply};
use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};

use super::jobs::reason_name;
use super::miner_target::{
    MinerArgs, RequirementsArgs, ValidatorArgs, client_error, dendrite, public_state_dir, utc,
};
use crate::args::{OutputArgs, WalletArgs};
use crate::exit::{self, bad_input, coded};
use crate::{out, render};

/// `akihabara allocate`.
#[derive(Debug, Args)]
pub struct AllocateArgs {
    #[command(flatten)]
    pub miner: MinerArgs,
    #[command(flatten)]
    pub validator: ValidatorArgs,
    /// The OpenSSH public key let in (a .pub file's content)
    #[arg(long, value_name = "FILE", default_value = "~/.ssh/id_ed25519.pub")]
    pub ssh_key: PathBuf,
    /// How long the allocation lasts, seconds (the miner grants at most 30 days)
    #[arg(long, value_name = "S", default_value_t = 3600)]
    pub duration: u64,
    /// Hardware class wanted [default: any]
    #[arg(long, value_name = "NAME")]
    pub class: Option<String>,
    #[command(flatten)]
    pub requirements: RequirementsArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `akihabara deallocate`.
#[derive(Debug, Args)]
pub struct DeallocateArgs {
    /// The allocation (as `allocate` and `allocations` print it)
    #[arg(value_name = "ALLOCATION_ID")]
    pub allocation_id: String,
    #[command(flatten)]
    pub validator: ValidatorArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `akihabara allocations`.
#[derive(Debug, Args)]
pub struct AllocationsArgs {
    #[command(flatten)]
    pub wallet: WalletArgs,
    /// The validator's state directory [default: ~/.akihabara/validator/<hotkey SS58>]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// One allocation this validator holds, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    allocation_id: String,
    /// The miner's hotkey.
    miner: AccountId,
    /// The miner's axon.
    axon: SocketAddr,
    executor: String,
    created_at_ms: u64,
    expires_at_ms: u64,
    login: LoginDetails,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Book {
    version: u32,
    allocations: Vec<Record>,
}

fn book_path(dir: &Path) -> PathBuf {
    dir.join("allocations.json")
}

/// The largest allocations record read, bytes (an allocation is a few
/// hundred bytes).
const MAX_BOOK_BYTES: u64 = 16 << 20;

fn read_book(path: &Path) -> anyhow::Result<Book> {
    match akihabara_core::fs::read_limited(path, MAX_BOOK_BYTES) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            bad_input(anyhow::anyhow!(
                "{}: not an allocations record ({e})",
                path.display()
            ))
        }),
        Err(akihabara_core::fs::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(Book {
                version: 1,
                allocations: Vec::new(),
            })
        }
        // Too large or not text: the operator's file, exit 2.
        Err(
            e @ (akihabara_core::fs::ReadError::TooLarge { .. }
            | akihabara_core::fs::ReadError::NotText { .. }),
        ) => Err(bad_input(
            anyhow::Error::new(e).context(format!("reading {}", path.display())),
        )),
        Err(e) => Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
    }
}

/// Changes the record under an exclusive lock on `allocations.lock` beside
/// it, so that two commands running at once cannot lose each other's entry.
fn update_book(path: &Path, change: impl FnOnce(&mut Book)) -> anyhow::Result<()> {
    let lock_path = path.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", lock_path.display()))?;
    let mut book = read_book(path)?;
    book.version = 1;
    change(&mut book);
    write_book(path, &book)
    // The lock is released when `lock` is dropped.
}

fn write_book(path: &Path, book: &Book) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec_pretty(book)?;
    write_atomic(path, &bytes, Access::Private)
        .with_context(|| format!("writing {}", path.display()))
}

fn record_json(r: &Record, now_ms: u64) -> serde_json::Value {
    serde_json::json!({
        "allocation_id": r.allocation_id,
        "miner": r.miner.to_ss58(),
        "axon": r.axon.to_string(),
        "executor": r.executor,
        "created_at_ms": r.created_at_ms,
        "expires_at_ms": r.expires_at_ms,
        "expired": r.expires_at_ms <= now_ms,
        "host": r.login.host,
        "port": r.login.port,
        "user": r.login.user,
    })
}

/// `akihabara allocate`.
pub fn run_allocate(a: AllocateArgs) -> anyhow::Result<()> {
    let timeout = a.validator.timeout()?;
    if a.duration == 0 {
        return Err(bad_input(anyhow::anyhow!(
            "--duration must be at least 1 second"
        )));
    }
    let key_path = akihabara_core::fs::expand_tilde(&a.ssh_key);
    // An OpenSSH public key is one line of at most a few KiB.
    let key_text = akihabara_core::fs::read_text_limited(&key_path, 16 << 10).map_err(|e| {
        let hint = match &e {
            akihabara_core::fs::ReadError::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
                " (create one with ssh-keygen -t ed25519)"
            }
            _ => "",
        };
        bad_input(anyhow::anyhow!(
            "--ssh-key {}: {e}{hint}",
            key_path.display()
        ))
    })?;
    let key = SshPublicKey::parse(&key_text)
        .map_err(|e| bad_input(anyhow::anyhow!("--ssh-key {}: {e}", key_path.display())))?;
    let rt = super::runtime()?;
    let target = rt.block_on(a.miner.target())?;
    let keypair = a.validator.keypair()?;
    let dir = a.validator.state_dir(&keypair.account())?;
    let path = book_path(&dir);
    // Refuse an unreadable record before renting anything.
    read_book(&path)?;
    let d = dendrite(keypair, &target)?;
    let request = Allocate {
        ssh_public_key: String::from(key),
        duration_s: a.duration,
        hardware_class: a.class.clone(),
        requirements: a.requirements.requirements(),
        ..Allocate::default()
    };
    // A key pair for this call only: the details open here, then it is dropped.
    let secret = new_sealing_key();
    let outcome = rt
        .block_on(allocate(&d, &target, request, &secret, timeout))
        .map_err(|e| client_error(e, &target))?;
    drop(secret);
    let got = match outcome {
        AllocateOutcome::Allocated(got) => got,
        AllocateOutcome::Declined { reason, detail } => {
            if a.output.json {
                out::println(
                    serde_json::json!({
                        "state": "declined",
                        "reason": reason_name(&reason),
                        "detail": detail,
                        "miner": target.hotkey.to_ss58(),
                    })
                    .to_string(),
                )?;
            }
            return Err(coded(
                exit::DECLINED,
                anyhow::anyhow!(
                    "the miner declined the allocation: {}: {detail}",
                    reason_name(&reason)
                ),
            ));
        }
    };
    let record = Record {
        allocation_id: got.allocation_id,
        miner: target.hotkey,
        axon: SocketAddr::new(target.ip, target.port),
        executor: got.executor,
        created_at_ms: unix_millis(),
        expires_at_ms: got.expires_at_ms,
        login: got.login,
    };
    update_book(&path, |book| book.allocations.push(record.clone())).with_context(|| {
        format!(
            "allocation {} was granted but not recorded; end it with the miner before {}",
            record.allocation_id,
            utc(record.expires_at_ms)
        )
    })?;
    if a.output.json {
        let mut v = record_json(&record, unix_millis());
        if let Some(o) = v.as_object_mut() {
            o.insert("state".into(), "allocated".into());
            o.remove("expired");
        }
        out::println(v.to_string())?;
    } else {
        out::println(format!(
            "allocation {} on executor {} until {}\nlogin: ssh -i {} -p {} {}@{}",
            record.allocation_id,
            record.executor,
            utc(record.expires_at_ms),
            private_key_hint(&key_path),
            record.login.port,
            record.login.user,
            record.login.host,
        ))?;
    }
    Ok(())
}

/// `~/.ssh/id_ed25519` for `~/.ssh/id_ed25519.pub`.
fn private_key_hint(public: &Path) -> String {
    let s = public.display().to_string();
    s.strip_suffix(".pub").map(str::to_owned).unwrap_or(s)
}

/// `akihabara deallocate`.
pub fn run_deallocate(a: DeallocateArgs) -> anyhow::Result<()> {
    let timeout = a.validator.timeout()?;
    let keypair = a.validator.keypair()?;
    let dir = a.validator.state_dir(&keypair.account())?;
    let path = book_path(&dir);
    let book = read_book(&path)?;
    let record = book
        .allocations
        .iter()
        .find(|r| r.allocation_id == a.allocation_id)
        .cloned()
        .ok_or_else(|| {
            bad_input(anyhow::anyhow!(
                "no allocation {} in {} (see akihabara allocations)",
                a.allocation_id,
                path.display()
            ))
        })?;
    let target = AxonTarget::new(record.axon.ip(), record.axon.port(), record.miner);
    let d = dendrite(keypair, &target)?;
    let reply = super::runtime()?
        .block_on(deallocate(&d, &target, &record.allocation_id, timeout))
        .map_err(|e| client_error(e, &target))?;
    // Ended either way: the miner revoked it now, or holds it no more.
    update_book(&path, |book| {
        book.allocations
            .retain(|r| r.allocation_id != record.allocation_id)
    })?;
    let state = match reply {
        DeallocateReply::Deallocated => "deallocated",
        DeallocateReply::Unknown => "unknown",
    };
    if a.output.json {
        out::println(
            serde_json::json!({
                "allocation_id": record.allocation_id,
                "miner": record.miner.to_ss58(),
                "state": state,
            })
            .to_string(),
        )?;
    } else {
        match reply {
            DeallocateReply::Deallocated => out::println(format!(
                "allocation {} ended: the miner revoked the key",
                record.allocation_id
            ))?,
            DeallocateReply::Unknown => out::println(format!(
                "allocation {}: the miner holds it no more (expired, or ended before); \
                 removed from the record",
                record.allocation_id
            ))?,
        }
    }
    Ok(())
}

/// `akihabara allocations`.
pub fn run_allocations(a: AllocationsArgs) -> anyhow::Result<()> {
    let dir = public_state_dir(a.state_dir.as_ref(), &a.wallet)?;
    let book = read_book(&book_path(&dir))?;
    let now = unix_millis();
    if a.output.json {
        let list: Vec<serde_json::Value> = book
            .allocations
            .iter()
            .map(|r| record_json(r, now))
            .collect();
        out::println(serde_json::json!({ "allocations": list }).to_string())?;
        return Ok(());
    }
    if book.allocations.is_empty() {
        out::println("no allocations")?;
        return Ok(());
    }
    use render::Align::Left;
    let rows: Vec<Vec<String>> = book
        .allocations
        .iter()
        .map(|r| {
            vec![
                r.allocation_id.clone(),
                format!("{} ({})", r.miner, r.axon),
                r.executor.clone(),
                format!("{}@{}:{}", r.login.user, r.login.host, r.login.port),
                if r.expires_at_ms <= now {
                    format!("{} (expired)", utc(r.expires_at_ms))
                } else {
                    utc(r.expires_at_ms)
                },
            ]
        })
        .collect();
    out::print(render::table(
        &[
            ("ID", Left),
            ("MINER", Left),
            ("EXECUTOR", Left),
            ("LOGIN", Left),
            ("EXPIRES", Left),
        ],
        &rows,
    ))?;
    Ok(())
}
