//! The metagraph snapshot file: versioned JSON that every command reading a
//! metagraph accepts, and that the chain client writes.
//!
//! ```json
//! {
//!   "version": 1,
//!   "netuid": 2,
//!   "block": 4200,
//!   "neurons": [
//!     {"uid": 0, "hotkey": "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
//!      "stake_rao": 1000000000000, "validator_permit": true,
//!      "coldkey": "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty",
//!      "axon": "127.0.0.2:8091", "last_update": 4190,
//!      "incentive": 0.0, "dividends": 0.5, "emission": 0.25}
//!   ]
//! }
//! ```
//!
//! Required per neuron: `uid` (0..65535), `hotkey` (SS58, prefix 42), `stake_rao`
//! (a JSON integer; floats and strings are rejected) and `validator_permit`.
//! Optional: `coldkey`, `total_stake_rao`, `axon` (`"ip:port"`), `last_update`,
//! `incentive` and `dividends` (in `[0, 1]`), `emission` (TAO in the last tempo),
//! and `competitor_load` (simulation input for the `emission` strategy).
//! `version` may be omitted (it means 1); unknown fields are errors so typos
//! are caught. Uids and hotkeys must be unique.
//!
//! ```
//! use akihabara_core::metagraph::snapshot;
//! let json = br#"{"netuid": 2, "block": 10, "neurons": [
//!   {"uid": 0, "hotkey": "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
//!    "stake_rao": 5, "validator_permit": true}]}"#;
//! let mg = snapshot::from_slice(json).unwrap();
//! assert_eq!(mg.len(), 1);
//! let err = snapshot::from_slice(br#"{"netuid": 2, "block": 10, "neurons": [
//!   {"uid": 0, "hotkey": "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
//!    "stake_rao": "lots", "validator_permit": true}]}"#).unwrap_err();
//! assert!(err.to_string().contains("neurons[0].stake_rao"));
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Metagraph, MetagraphError, Neuron};
use crate::{Block, Netuid};

/// The newest snapshot format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Where a snapshot came from, for error messages.
fn origin(path: Option<&Path>) -> String {
    match path {
        Some(p) => p.display().to_string(),
        None => "<input>".to_owned(),
    }
}

/// The largest snapshot read, bytes: a neuron is about 400 bytes of JSON,
/// so a subnet of 4,096 uids is under 2 MiB.
pub const MAX_SNAPSHOT_BYTES: u64 = 64 << 20;

/// Why a snapshot could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The file could not be read or written.
    #[error("metagraph snapshot {}: {error}", path.display())]
    Io {
        /// The snapshot file read or written.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The file (or input) holds more than [`MAX_SNAPSHOT_BYTES`].
    #[error("metagraph snapshot {}: {size} bytes, more than the {max} allowed", origin(path.as_deref()))]
    TooLarge {
        /// The file, if read from one.
        path: Option<PathBuf>,
        /// Bytes found (for input with no size, the bytes read before stopping).
        size: u64,
        /// [`MAX_SNAPSHOT_BYTES`].
        max: u64,
    },
    /// Not valid JSON, or a field of the wrong type.
    #[error("metagraph snapshot {}: {field}: {message}", origin(path.as_deref()))]
    Parse {
        /// The file, if read from one.
        path: Option<PathBuf>,
        /// Where in the document, e.g. `neurons[3].stake_rao`.
        field: String,
        /// What was wrong there.
        message: String,
    },
    /// A version this build does not understand.
    #[error(
        "metagraph snapshot {}: unsupported format version {found} (this build reads version {FORMAT_VERSION})",
        origin(path.as_deref())
    )]
    UnsupportedVersion {
        /// The file, if read from one.
        path: Option<PathBuf>,
        /// The version found.
        found: u32,
    },
    /// Well-formed JSON that is not a valid metagraph (duplicate uid, …).
    #[error("metagraph snapshot {}: {error}", origin(path.as_deref()))]
    Invalid {
        /// The file, if read from one.
        path: Option<PathBuf>,
        /// What makes it invalid (duplicate uid or hotkey, value out of range).
        error: MetagraphError,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotFile {
    #[serde(default = "default_version")]
    version: u32,
    netuid: Netuid,
    block: Block,
    neurons: Vec<Neuron>,
}

fn default_version() -> u32 {
    FORMAT_VERSION
}

fn parse(bytes: &[u8], path: Option<&Path>) -> Result<Metagraph, SnapshotError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|&b| b != b'{') {
        return Err(SnapshotError::Parse {
            path: path.map(Path::to_path_buf),
            field: "document".to_owned(),
            message: "expected a JSON object with netuid, block and neurons".to_owned(),
        });
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let file: SnapshotFile = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        SnapshotError::Parse {
            path: path.map(Path::to_path_buf),
            field: if field == "." {
                "document".to_owned()
            } else {
                field
            },
            message: e.into_inner().to_string(),
        }
    })?;
    if file.version != FORMAT_VERSION {
        return Err(SnapshotError::UnsupportedVersion {
            path: path.map(Path::to_path_buf),
            found: file.version,
        });
    }
    Metagraph::new(file.netuid, file.block, file.neurons).map_err(|error| SnapshotError::Invalid {
        path: path.map(Path::to_path_buf),
        error,
    })
}

/// Parses a snapshot from bytes.
pub fn from_slice(bytes: &[u8]) -> Result<Metagraph, SnapshotError> {
    parse(bytes, None)
}

/// Reads and parses the snapshot file at `path`.
pub fn read(path: impl AsRef<Path>) -> Result<Metagraph, SnapshotError> {
    let path = path.as_ref();
    let bytes =
        crate::fs::read_limited(path, MAX_SNAPSHOT_BYTES).map_err(|e| read_error(Some(path), e))?;
    parse(&bytes, Some(path))
}

/// A bounded read's failure, for the file `path` or standard input (`None`).
fn read_error(path: Option<&Path>, e: crate::fs::ReadError) -> SnapshotError {
    let io = |error| SnapshotError::Io {
        path: path.map_or_else(|| PathBuf::from("<input>"), Path::to_path_buf),
        error,
    };
    match e {
        crate::fs::ReadError::TooLarge { size, max } => SnapshotError::TooLarge {
            path: path.map(Path::to_path_buf),
            size,
            max,
        },
        crate::fs::ReadError::Io(error) => io(error),
        // Not from a bytes read (a text read's error).
        other => io(std::io::Error::other(other)),
    }
}

/// [`from_slice`] of a snapshot read from `reader` (standard input), reading at
/// most [`MAX_SNAPSHOT_BYTES`].
pub fn from_reader(reader: impl std::io::Read) -> Result<Metagraph, SnapshotError> {
    let bytes = crate::fs::read_limited_from(reader, MAX_SNAPSHOT_BYTES)
        .map_err(|e| read_error(None, e))?;
    parse(&bytes, None)
}

/// Renders `mg` as pretty-printed snapshot JSON.
pub fn to_string(mg: &Metagraph) -> String {
    let file = SnapshotFile {
        version: FORMAT_VERSION,
        netuid: mg.netuid(),
        block: mg.block(),
        neurons: mg.neurons().to_vec(),
    };
    // A struct of plain fields always serialises.
    serde_json::to_string_pretty(&file).unwrap_or_default()
}

/// Writes `mg` to `path` atomically (see [`crate::fs::write_atomic`]), so a
/// crash leaves the old file intact.
pub fn write(path: impl AsRef<Path>, mg: &Metagraph) -> Result<(), SnapshotError> {
    let path = path.as_ref();
    let text = to_string(mg) + "\n";
    crate::fs::write_atomic(path, text.as_bytes(), crate::fs::Access::Shared).map_err(|error| {
        SnapshotError::Io {
            path: path.to_path_buf(),
            error,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metagraph::tests::hotkey;
    use crate::{Rao, Uid};
    use std::fs;

    fn doc(neurons: &str) -> String {
        format!(r#"{{"version": 1, "netuid": 3, "block": 99, "neurons": [{neurons}]}}"#)
    }

    fn neuron(uid: u16, stake: &str) -> String {
        format!(
            r#"{{"uid": {uid}, "hotkey": "{}", "stake_rao": {stake}, "validator_permit": true}}"#,
            hotkey(u32::from(uid))
        )
    }

    #[test]
    fn round_trips_through_a_file() {
        let mut n = Neuron::new(Uid(7), hotkey(7), Rao(u64::MAX), true);
        n.coldkey = Some(hotkey(100));
        n.axon = Some("127.0.0.2:8091".parse().unwrap());
        n.incentive = Some(0.25);
        n.last_update = Some(Block(12));
        let mg = Metagraph::new(Netuid(2), Block(50), vec![n]).unwrap();
        let dir = std::env::temp_dir().join(format!("akh-snap-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("mg.json");
        write(&path, &mg).unwrap();
        assert_eq!(read(&path).unwrap(), mg);
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\"stake_rao\": 18446744073709551615"),
            "{text}"
        );
        assert!(text.contains("\"axon\": \"127.0.0.2:8091\""), "{text}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (doc(&neuron(0, "\"12\"")), "neurons[0].stake_rao"),
            (doc(&neuron(0, "1.5")), "neurons[0].stake_rao"),
            (doc(&neuron(0, "-1")), "neurons[0].stake_rao"),
            (
                doc(&format!("{},{}", neuron(0, "1"), neuron(1, "x"))),
                "line",
            ),
            (
                doc(r#"{"uid": 0, "hotkey": "5Grwva", "stake_rao": 1, "validator_permit": true}"#),
                "neurons[0].hotkey",
            ),
            (
                doc(r#"{"uid": 0, "stake_rao": 1, "validator_permit": true}"#),
                "hotkey",
            ),
            (
                doc(&neuron(0, "1").replace("\"uid\": 0", "\"uid\": 70000")),
                "neurons[0].uid",
            ),
            (
                doc(&neuron(0, "1").replace("validator_permit", "validator_permitt")),
                "validator_permitt",
            ),
            ("{}".to_owned(), "missing field"),
            ("".to_owned(), "EOF"),
            ("[1,2]".to_owned(), "expected a JSON object"),
        ];
        for (text, needle) in cases {
            let err = from_slice(text.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
            assert!(!err.contains('\n'), "one line: {err:?}");
        }
    }

    /// A snapshot is read up to [`MAX_SNAPSHOT_BYTES`], from a file or from
    /// standard input, never whole.
    #[test]
    fn snapshots_are_bounded() {
        let max = MAX_SNAPSHOT_BYTES;
        #[cfg(unix)]
        {
            let e = read("/dev/zero").expect_err("endless");
            assert!(
                matches!(&e, SnapshotError::TooLarge { path: Some(p), size, max: m }
                    if p == Path::new("/dev/zero") && *size == max + 1 && *m == max),
                "{e:?}"
            );
            assert_eq!(
                e.to_string(),
                format!(
                    "metagraph snapshot /dev/zero: {} bytes, more than the {max} allowed",
                    max + 1
                )
            );
        }
        let e = from_reader(std::io::repeat(b' ')).expect_err("endless");
        assert_eq!(
            e.to_string(),
            format!(
                "metagraph snapshot <input>: {} bytes, more than the {max} allowed",
                max + 1
            )
        );
        // Within the bound, the reader's snapshot parses as a slice's would.
        let text = to_string(&from_slice(doc("").as_bytes()).expect("empty subnet"));
        assert_eq!(
            to_string(&from_reader(text.as_bytes()).expect("parses")),
            text
        );
    }

    #[test]
    fn semantic_errors() {
        let dup = doc(&format!("{},{}", neuron(4, "1"), neuron(4, "2")));
        let err = from_slice(dup.as_bytes());
        assert!(matches!(
            err,
            Err(SnapshotError::Invalid {
                error: MetagraphError::DuplicateUid(Uid(4)),
                ..
            })
        ));
        let v2 = doc("").replace("\"version\": 1", "\"version\": 2");
        assert!(matches!(
            from_slice(v2.as_bytes()),
            Err(SnapshotError::UnsupportedVersion { found: 2, .. })
        ));
        let missing = read("/nonexistent/akihabara/mg.json").unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("/nonexistent/akihabara/mg.json")
        );
    }

    proptest::proptest! {
        /// Found by the fuzzer: floats must survive a write/read round trip
        /// exactly (serde_json's `float_roundtrip`).
        #[test]
        fn floats_round_trip(emission in 0.0f64..1e300, load in 0.0f64..1e12, inc in 0.0f64..=1.0) {
            let mut n = Neuron::new(Uid(0), hotkey(0), Rao(1), true);
            n.emission = Some(emission);
            n.competitor_load = Some(load);
            n.incentive = Some(inc);
            let mg = Metagraph::new(Netuid(1), Block(1), vec![n]).unwrap();
            proptest::prop_assert_eq!(from_slice(to_string(&mg).as_bytes()).unwrap(), mg);
        }
    }

    #[test]
    fn fuzz_regression_float_round_trip() {
        let mut n = Neuron::new(Uid(0), hotkey(0), Rao(1), true);
        n.emission = Some(1.2333333333333333e31);
        let mg = Metagraph::new(Netuid(2), Block(7300), vec![n]).unwrap();
        assert_eq!(from_slice(to_string(&mg).as_bytes()).unwrap(), mg);
    }

    #[test]
    fn version_may_be_omitted() {
        let text = doc(&neuron(1, "10")).replace("\"version\": 1, ", "");
        assert_eq!(from_slice(text.as_bytes()).unwrap().len(), 1);
    }
}
