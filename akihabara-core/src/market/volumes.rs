//! A job's files: inputs downloaded into its work directory before it
//! starts, outputs uploaded with HTTP PUT (a presigned S3 URL, say) after it
//! ends. The miner does both, on the validator's behalf, so every URL is
//! checked first: http or https (certificates checked against the system's
//! roots, plus any the operator adds), and no loopback, private or
//! link-local address unless the operator allows it
//! ([`VolumePolicy::allow_private`]), so a validator cannot make a miner
//! fetch from, or post to, its own network.

use std::io::Read as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;

use crate::addr::is_public;

/// An input file: fetched from `url` to `path` under the work directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputFile {
    /// Where to download it from.
    pub url: String,
    /// Where it goes, relative to the job's work directory.
    pub path: String,
    /// Its SHA-256, hex; a download with another digest fails the job.
    #[serde(default)]
    pub sha256: Option<String>,
}

/// An output file: `path` under the work directory, uploaded with HTTP PUT
/// to `put_url`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputFile {
    /// The file, relative to the job's work directory.
    pub path: String,
    /// Where to upload it.
    pub put_url: String,
}

/// What a miner allows jobs' files to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumePolicy {
    /// Largest input, bytes.
    pub max_input_bytes: u64,
    /// Largest output, bytes.
    pub max_output_bytes: u64,
    /// Whether URLs may point at loopback, private or link-local addresses
    /// (tests; a miner on a private network serving its own validator).
    pub allow_private: bool,
    /// How long one download or upload may take.
    pub timeout: Duration,
    /// Certificates (PEM) trusted for https besides the system's roots (a
    /// private CA). Empty: the system's roots only.
    pub extra_roots_pem: Vec<Vec<u8>>,
}

impl Default for VolumePolicy {
    fn default() -> VolumePolicy {
        VolumePolicy {
            max_input_bytes: 1 << 30,
            max_output_bytes: 1 << 30,
            allow_private: false,
            timeout: Duration::from_secs(600),
            extra_roots_pem: Vec::new(),
        }
    }
}

/// A file that could not be moved, naming the order's field
/// (`inputs[0].url`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct VolumeError {
    /// The field, as `inputs[i].url` or `outputs[i].path`.
    pub field: String,
    /// Why.
    pub reason: String,
}

fn field_error(field: String, reason: impl Into<String>) -> VolumeError {
    VolumeError {
        field,
        reason: reason.into(),
    }
}

/// Checks a URL's form: `http` or `https`, with a host and no credentials.
/// Cheap, no lookup.
pub fn check_form(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    match parsed.scheme() {
        "http" | "https" => {}
        other => return Err(format!("must be http or https, not {other}")),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("the URL names no host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("credentials in the URL are not accepted".into());
    }
    Ok(parsed)
}

/// A client for `url` whose connection goes only to addresses `policy`
/// allows: the name is looked up once, checked, and pinned (no second
/// lookup can swap in another address). Redirects are not followed.
pub async fn client_for(
    url: &str,
    policy: &VolumePolicy,
) -> Result<(reqwest::Client, reqwest::Url), String> {
    let parsed = check_form(url)?;
    let host = parsed.host_str().unwrap_or_default().to_owned();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(
            Duration::from_secs(10),
            tokio::net::lookup_host((bare.as_str(), port)),
        )
        .await
        .map_err(|_| format!("looking up {host} took over 10 s"))?
        .map_err(|e| format!("cannot look up {host}: {e}"))?
        .collect(),
    };
    let Some(first) = addrs.first().copied() else {
        return Err(format!("{host} has no address"));
    };
    if !policy.allow_private
        && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip()))
    {
        return Err(format!(
            "{host} is {}, a loopback, private or link-local address, which this miner does not reach for jobs",
            bad.ip()
        ));
    }
    let mut builder = crate::dendrite::http_client()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(policy.timeout)
        .resolve(&bare, first);
    if !policy.extra_roots_pem.is_empty() {
        let mut roots = Vec::new();
        for pem in &policy.extra_roots_pem {
            roots.extend(
                reqwest::Certificate::from_pem_bundle(pem)
                    .map_err(|e| format!("a trusted certificate is not PEM: {e}"))?,
            );
        }
        builder = builder.tls_certs_merge(roots);
    }
    let client = builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    Ok((client, parsed))
}

/// `dir/rel`, where `rel` is relative without `..`, and no part of it that
/// exists is a symbolic link (a job cannot point an output at a file of the
/// miner's).
pub fn inside(dir: &Path, rel: &str) -> Result<PathBuf, String> {
    if rel.is_empty() || rel.len() > 255 || rel.contains('\0') {
        return Err("must be 1 to 255 bytes".into());
    }
    let rel_path = Path::new(rel);
    if rel_path.is_absolute()
        || rel_path
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err("must be relative to the work directory, without `.` or `..`".into());
    }
    let mut at = dir.to_path_buf();
    for part in rel_path.components() {
        at.push(part);
        if let Ok(m) = std::fs::symlink_metadata(&at)
            && m.file_type().is_symlink()
        {
            return Err(format!("{rel} goes through a symbolic link"));
        }
    }
    Ok(at)
}

/// Opens output `rel` of a job's work directory `dir` for reading: only a
/// regular file inside `dir` reached without a symbolic link, of at most
/// `max` bytes ([`open_regular`](crate::fs::open_regular): a FIFO the job
/// left is refused, not waited on). Errors are worded for the validator.
/// The miner's upload and the gateway's trusted run both read outputs here.
///
/// The directories above the file are checked by path ([`inside`]), which
/// holds because the job has ended when its outputs are read: its processes
/// die with it, so none is left to swap a directory for a link.
pub fn open_output(dir: &Path, rel: &str, max: u64) -> Result<(std::fs::File, u64), String> {
    let source = inside(dir, rel)?;
    crate::fs::open_regular(&source, max).map_err(|e| match e {
        crate::fs::OpenError::Io(e) if e.kind() == std::io::ErrorKind::NotFound => {
            format!("the job left no such file ({e})")
        }
        crate::fs::OpenError::TooLarge { size, max } => {
            format!("{size} bytes, more than the {max} an output may be")
        }
        e => e.to_string(),
    })
}

/// Downloads `input` (number `index` of the order) into `dir`, within the
/// policy's size cap, and checks its digest when one is given.
pub async fn download(
    input: &InputFile,
    index: usize,
    dir: &Path,
    policy: &VolumePolicy,
) -> Result<(), VolumeError> {
    let url_field = || format!("inputs[{index}].url");
    let target =
        inside(dir, &input.path).map_err(|e| field_error(format!("inputs[{index}].path"), e))?;
    let (client, url) = client_for(&input.url, policy)
        .await
        .map_err(|e| field_error(url_field(), e))?;
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|e| field_error(url_field(), format!("download failed: {e}")))?;
    if !response.status().is_success() {
        return Err(field_error(
            url_field(),
            format!("the server answered {}", response.status()),
        ));
    }
    let too_large = || {
        field_error(
            url_field(),
            format!(
                "larger than the {} bytes an input may be",
                policy.max_input_bytes
            ),
        )
    };
    if response
        .content_length()
        .is_some_and(|n| n > policy.max_input_bytes)
    {
        return Err(too_large());
    }
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| field_error(format!("inputs[{index}].path"), e.to_string()))?;
    }
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&target)
        .await
        .map_err(|e| field_error(format!("inputs[{index}].path"), e.to_string()))?;
    let (mut hasher, mut size) = (Sha256::new(), 0u64);
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| field_error(url_field(), format!("download failed: {e}")))?
    {
        size += chunk.len() as u64;
        if size > policy.max_input_bytes {
            return Err(too_large());
        }
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(|e| field_error(format!("inputs[{index}].path"), e.to_string()))?;
    }
    file.flush()
        .await
        .map_err(|e| field_error(format!("inputs[{index}].path"), e.to_string()))?;
    let got = hex::encode(hasher.finalize());
    if let Some(want) = &input.sha256
        && !want.eq_ignore_ascii_case(&got)
    {
        return Err(field_error(
            format!("inputs[{index}].sha256"),
            format!("the download's SHA-256 is {got}, not {want}"),
        ));
    }
    Ok(())
}

/// Uploads `output` (number `index`) from `dir` with HTTP PUT; returns its
/// SHA-256, hex.
pub async fn upload(
    output: &OutputFile,
    index: usize,
    dir: &Path,
    policy: &VolumePolicy,
) -> Result<String, VolumeError> {
    let path_field = || format!("outputs[{index}].path");
    let url_field = || format!("outputs[{index}].put_url");
    let (dir, path, max) = (dir.to_owned(), output.path.clone(), policy.max_output_bytes);
    // Off the async thread: an output may be large.
    let read = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let (file, len) = open_output(&dir, &path, max)?;
        let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        if bytes.len() as u64 > max {
            return Err(format!("grew past the {max} bytes an output may be"));
        }
        Ok(bytes)
    })
    .await
    .map_err(|e| field_error(path_field(), e.to_string()))?;
    let bytes = read.map_err(|e| field_error(path_field(), e))?;
    let digest = hex::encode(Sha256::digest(&bytes));
    let (client, url) = client_for(&output.put_url, policy)
        .await
        .map_err(|e| field_error(url_field(), e))?;
    let response = client
        .put(url)
        .body(bytes)
        .send()
        .await
        .map_err(|e| field_error(url_field(), format!("upload failed: {e}")))?;
    if !response.status().is_success() {
        return Err(field_error(
            url_field(),
            format!("the upload was refused: {}", response.status()),
        ));
    }
    Ok(digest)
}

/// The digest a receipt carries for a job's outputs: SHA-256 of one line
/// `<sha256>  <path>` per output, in the order's order.
pub fn outputs_digest(files: &[(String, String)]) -> String {
    let listing: String = files
        .iter()
        .map(|(path, sha)| format!("{sha}  {path}\n"))
        .collect();
    hex::encode(Sha256::digest(listing.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_and_never_follow_links() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(inside(dir.path(), "out/result.bin").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "./x"] {
            assert!(inside(dir.path(), bad).is_err(), "{bad:?}");
        }
        std::os::unix::fs::symlink("/etc", dir.path().join("link")).expect("link");
        assert!(inside(dir.path(), "link/passwd").is_err());
        assert!(inside(dir.path(), "link").is_err());
    }

    #[test]
    fn url_forms() {
        assert!(check_form("http://example.test/x").is_ok());
        assert!(check_form("https://example.test/x").is_ok());
        for bad in ["ftp://x/y", "file:///etc/passwd", "http://u:p@x/y", "x"] {
            assert!(check_form(bad).is_err(), "{bad}");
        }
    }
}
