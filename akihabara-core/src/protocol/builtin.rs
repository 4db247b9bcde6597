//! The two synapses every akihabara axon serves, and the host facts behind
//! `SpecsQuery`.
//!
//! Their Python twins (what a Python peer declares to talk to us):
//!
//! ```python
//! class Ping(bt.Synapse):
//!     message: str
//!     count: int = 0
//!     echo: Optional[str] = None
//!     count_plus_one: Optional[int] = None
//!     served_by: Optional[str] = None
//!     required_hash_fields: ClassVar[tuple[str, ...]] = ("message", "count")
//!
//! class SpecsQuery(bt.Synapse):
//!     include_gpus: bool = True
//!     hostname: Optional[str] = None
//!     cpu_count: Optional[int] = None
//!     memory_gb: Optional[float] = None
//!     gpus: Optional[list[dict]] = None
//! ```

use serde::{Deserialize, Serialize};

use super::{FieldKind, Synapse};

/// Liveness and identity check: the axon echoes `message`, returns
/// `count + 1` and names its hotkey.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Any text (required).
    pub message: String,
    /// Any integer.
    #[serde(default)]
    pub count: i64,
    /// Response: `message`.
    #[serde(default)]
    pub echo: Option<String>,
    /// Response: `count + 1`.
    #[serde(default)]
    pub count_plus_one: Option<i64>,
    /// Response: the axon's hotkey (SS58).
    #[serde(default)]
    pub served_by: Option<String>,
}

impl Synapse for Ping {
    const NAME: &'static str = "Ping";
    const MAX_ANSWER_BYTES: usize = 64 << 10;
    const HASH_FIELDS: &'static [&'static str] = &["message", "count"];
    const REQUIRED_FIELDS: &'static [(&'static str, FieldKind)] = &[("message", FieldKind::Str)];
}

impl Ping {
    /// A request.
    pub fn new(message: impl Into<String>, count: i64) -> Ping {
        Ping {
            message: message.into(),
            count,
            ..Ping::default()
        }
    }

    /// The answer of the axon whose hotkey (SS58) is `served_by`; `None`
    /// when `count + 1` overflows 64 bits.
    pub fn answer(mut self, served_by: &str) -> Option<Ping> {
        self.count_plus_one = Some(self.count.checked_add(1)?);
        self.echo = Some(self.message.clone());
        self.served_by = Some(served_by.to_owned());
        Some(self)
    }
}

/// One GPU as `SpecsQuery` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuInfo {
    /// Marketing name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Total memory in MiB.
    pub memory_mb: u64,
    /// `GPU-…` UUID.
    pub uuid: String,
}

/// The machine's hardware as the axon sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpecsQuery {
    /// Request: include GPUs (true).
    #[serde(default = "yes")]
    pub include_gpus: bool,
    /// Response: host name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Response: logical CPUs available to the process.
    #[serde(default)]
    pub cpu_count: Option<i64>,
    /// Response: total memory in GiB (2³⁰ bytes), two decimals.
    #[serde(default)]
    pub memory_gb: Option<f64>,
    /// Response: NVIDIA GPUs (`[]` when none, or when not asked).
    #[serde(default)]
    pub gpus: Option<Vec<GpuInfo>>,
}

fn yes() -> bool {
    true
}

impl Default for SpecsQuery {
    fn default() -> SpecsQuery {
        SpecsQuery {
            include_gpus: true,
            hostname: None,
            cpu_count: None,
            memory_gb: None,
            gpus: None,
        }
    }
}

impl Synapse for SpecsQuery {
    const NAME: &'static str = "SpecsQuery";
    const MAX_ANSWER_BYTES: usize = 256 << 10;
}

/// Fills a `SpecsQuery` answer from this machine; `gpus` is called only when
/// the request wants GPUs.
pub fn host_specs(request: SpecsQuery, gpus: impl FnOnce() -> Vec<GpuInfo>) -> SpecsQuery {
    SpecsQuery {
        hostname: Some(hostname()),
        cpu_count: std::thread::available_parallelism()
            .ok()
            .map(|n| n.get() as i64),
        memory_gb: mem_total_gib(),
        gpus: Some(if request.include_gpus {
            gpus()
        } else {
            Vec::new()
        }),
        ..request
    }
}

fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn mem_total_gib() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: f64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((kib / 1_048_576.0 * 100.0).round() / 100.0)
}

/// NVIDIA GPUs listed by `nvidia-smi`; empty when it is absent or fails.
/// (`akihabara-gpu` reads the same facts through the CUDA driver.)
pub fn nvidia_smi_gpus() -> Vec<GpuInfo> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total,uuid",
            "--format=csv,noheader,nounits",
        ])
        .stderr(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => parse_nvidia_smi(&String::from_utf8_lossy(&o.stdout)),
        _ => Vec::new(),
    }
}

fn parse_nvidia_smi(text: &str) -> Vec<GpuInfo> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split(',').map(str::trim);
            let name = parts.next()?.to_owned();
            let memory_mb = parts.next()?.parse().ok()?;
            let uuid = parts.next()?.to_owned();
            Some(GpuInfo {
                name,
                memory_mb,
                uuid,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvidia_smi_lines_parse_and_junk_is_skipped() {
        let gpus =
            parse_nvidia_smi("NVIDIA H100 80GB HBM3, 81559, GPU-1234\nNo devices were found\n");
        assert_eq!(
            gpus,
            vec![GpuInfo {
                name: "NVIDIA H100 80GB HBM3".into(),
                memory_mb: 81559,
                uuid: "GPU-1234".into()
            }]
        );
    }

    #[test]
    fn specs_come_from_this_machine() {
        let s = host_specs(SpecsQuery::default(), Vec::new);
        assert!(s.cpu_count.is_some_and(|n| n >= 1));
        assert!(!s.hostname.unwrap_or_default().is_empty());
        assert_eq!(s.gpus, Some(vec![]));
        let no_gpus = host_specs(
            SpecsQuery {
                include_gpus: false,
                ..SpecsQuery::default()
            },
            || panic!("GPUs were not asked for"),
        );
        assert_eq!(no_gpus.gpus, Some(vec![]));
    }

    #[test]
    fn ping_answers_and_refuses_overflow() {
        let me = crate::wallet::Keypair::from_uri("//Alice")
            .unwrap()
            .account()
            .to_ss58();
        let a = Ping::new("hi", 41).answer(&me).unwrap();
        assert_eq!(
            (a.echo.as_deref(), a.count_plus_one),
            (Some("hi"), Some(42))
        );
        assert!(Ping::new("x", i64::MAX).answer(&me).is_none());
    }
}
