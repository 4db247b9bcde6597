//! What an end user orders: [`JobOrder`], and the operator's [`OrderRules`]
//! that every order is checked against before it is queued.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::market::volumes::{VolumePolicy, check_form, client_for};

/// One job as an end user submits it (`POST /v1/jobs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobOrder {
    /// The container image the job runs in; it must be on the gateway's
    /// allow list. `None` runs the command on a plain (non-container)
    /// executor, where the operator allows it.
    #[serde(default)]
    pub image: Option<String>,
    /// Program and arguments.
    pub command: Vec<String>,
    /// Environment added to the job's.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Files downloaded into the job's work directory before it starts.
    #[serde(default)]
    pub inputs: Vec<InputVolume>,
    /// Files uploaded after the job ends.
    #[serde(default)]
    pub outputs: Vec<OutputVolume>,
    /// The hardware class to run on (`cpu`, `A100`, …).
    pub class: String,
    /// Wall-clock limit in seconds, at most the gateway's maximum.
    pub timeout_s: u64,
    /// Whether the job's output is the same on every run; only such jobs can
    /// be cross-checked on a trusted executor (default true).
    #[serde(default = "yes")]
    pub deterministic: bool,
}

fn yes() -> bool {
    true
}

/// An input file of an order (the jobs protocol's own type).
pub use crate::market::volumes::InputFile as InputVolume;
/// An output file of an order (the jobs protocol's own type).
pub use crate::market::volumes::OutputFile as OutputVolume;

/// An order refused: which field, and why. The HTTP API answers it as
/// `{"error": reason, "field": field}` with `status`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    /// The HTTP status it is answered with (400, 413, 422).
    pub status: u16,
    /// The field, as a path into the order (`inputs[0].url`).
    pub field: String,
    /// Why.
    pub reason: String,
}

impl FieldError {
    /// A 400 for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
        FieldError {
            status: 400,
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error with another status.
    pub fn status(mut self, status: u16) -> FieldError {
        self.status = status;
        self
    }
}

/// What the operator sells and allows.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderRules {
    /// The hardware classes the gateway routes (a class nobody serves is
    /// refused when the job is submitted).
    pub classes: BTreeSet<String>,
    /// Images a job may name, exactly (`busybox:latest`). Empty: none.
    pub images: BTreeSet<String>,
    /// Whether a job may name no image (and run on a plain executor).
    pub allow_no_image: bool,
    /// The longest `timeout_s` accepted.
    pub max_timeout_s: u64,
    /// Whether inputs and outputs are routed (miners move them). When not,
    /// an order with any is refused, never accepted and silently left
    /// without them.
    pub volumes: bool,
    /// Largest input, bytes (checked when the job is submitted, and again
    /// by the miner).
    pub max_input_bytes: u64,
    /// Whether input and output URLs may reach loopback and private
    /// addresses (the gateway checks them when a job is submitted).
    pub allow_private_urls: bool,
    /// Most inputs, and most outputs, per job.
    pub max_volumes: usize,
    /// Most bytes of command, environment and URLs together.
    pub max_order_bytes: usize,
    /// Addresses the gateway itself listens on: an input URL pointing at
    /// one is refused.
    pub own_addresses: Vec<SocketAddr>,
    /// The longest the checks of an order's files ([`OrderRules::preflight`])
    /// may take in all; past it the order is refused (422).
    pub preflight_deadline: std::time::Duration,
}

impl Default for OrderRules {
    fn default() -> OrderRules {
        OrderRules {
            classes: BTreeSet::new(),
            images: BTreeSet::new(),
            allow_no_image: false,
            max_timeout_s: 24 * 3600,
            volumes: true,
            max_input_bytes: 1 << 30,
            allow_private_urls: false,
            max_volumes: 16,
            max_order_bytes: 32 * 1024,
            own_addresses: Vec::new(),
            preflight_deadline: std::time::Duration::from_secs(20),
        }
    }
}

/// The most environment variables a job may set.
const MAX_ENV: usize = 64;

impl OrderRules {
    /// The first reason `order` cannot be queued, naming its field.
    pub fn check(&self, order: &JobOrder) -> Result<(), FieldError> {
        self.check_image(order)?;
        check_command(&order.command)?;
        check_env(&order.env)?;
        if order.class.is_empty() || !self.classes.contains(&order.class) {
            let offered = if self.classes.is_empty() {
                "none".to_owned()
            } else {
                self.classes.iter().cloned().collect::<Vec<_>>().join(", ")
            };
            return Err(FieldError::new(
                "class",
                format!(
                    "no miner serves class {:?} through this gateway (offered: {offered})",
                    order.class
                ),
            )
            .status(422));
        }
        if order.timeout_s == 0 || order.timeout_s > self.max_timeout_s {
            return Err(FieldError::new(
                "timeout_s",
                format!(
                    "must be 1 to {} seconds, not {}",
                    self.max_timeout_s, order.timeout_s
                ),
            ));
        }
        self.check_volumes(order)?;
        let size = order.command.iter().map(String::len).sum::<usize>()
            + order
                .env
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + order
                .inputs
                .iter()
                .map(|i| i.url.len() + i.path.len())
                .sum::<usize>()
            + order
                .outputs
                .iter()
                .map(|o| o.put_url.len() + o.path.len())
                .sum::<usize>();
        if size > self.max_order_bytes {
            return Err(FieldError::new(
                "command",
                format!(
                    "the command, environment and volumes take {size} bytes; at most {} are accepted",
                    self.max_order_bytes
                ),
            )
            .status(413));
        }
        Ok(())
    }

    fn check_image(&self, order: &JobOrder) -> Result<(), FieldError> {
        match &order.image {
            None if self.allow_no_image => Ok(()),
            None => Err(FieldError::new(
                "image",
                "name an image: this gateway runs jobs in containers",
            )),
            Some(image) if self.images.contains(image) => Ok(()),
            Some(image) => Err(FieldError::new(
                "image",
                format!(
                    "{image:?} is not on this gateway's allow list ({})",
                    if self.images.is_empty() {
                        "which is empty".to_owned()
                    } else {
                        self.images.iter().cloned().collect::<Vec<_>>().join(", ")
                    }
                ),
            )
            .status(422)),
        }
    }

    fn check_volumes(&self, order: &JobOrder) -> Result<(), FieldError> {
        for (kind, n) in [
            ("inputs", order.inputs.len()),
            ("outputs", order.outputs.len()),
        ] {
            if n > self.max_volumes {
                return Err(FieldError::new(
                    kind,
                    format!("{n} given; at most {} per job", self.max_volumes),
                ));
            }
        }
        for (i, input) in order.inputs.iter().enumerate() {
            let field = |name: &str| format!("inputs[{i}].{name}");
            self.check_url(&input.url)
                .map_err(|why| FieldError::new(field("url"), why))?;
            check_relative(&input.path).map_err(|why| FieldError::new(field("path"), why))?;
            if let Some(d) = &input.sha256
                && (d.len() != 64 || !d.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(FieldError::new(
                    field("sha256"),
                    "must be 64 hex digits (a SHA-256)",
                ));
            }
        }
        for (i, output) in order.outputs.iter().enumerate() {
            let field = |name: &str| format!("outputs[{i}].{name}");
            check_relative(&output.path).map_err(|why| FieldError::new(field("path"), why))?;
            self.check_url(&output.put_url)
                .map_err(|why| FieldError::new(field("put_url"), why))?;
        }
        if !self.volumes {
            if !order.inputs.is_empty() {
                return Err(FieldError::new(
                    "inputs",
                    "this gateway does not route jobs with files: send none",
                )
                .status(422));
            }
            if !order.outputs.is_empty() {
                return Err(FieldError::new(
                    "outputs",
                    "this gateway does not route jobs with files: send none",
                )
                .status(422));
            }
        }
        Ok(())
    }

    /// A URL a miner can reach (see [`check_form`]) that does not point at
    /// the gateway itself.
    fn check_url(&self, url: &str) -> Result<(), String> {
        let parsed = check_form(url)?;
        let host = parsed.host_str().unwrap_or_default();
        let port = parsed.port_or_known_default().unwrap_or(80);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip: Option<IpAddr> = if host.eq_ignore_ascii_case("localhost") {
            Some(IpAddr::from([127, 0, 0, 1]))
        } else {
            host.parse().ok()
        };
        let Some(ip) = ip else {
            return Ok(());
        };
        let ours = self.own_addresses.iter().any(|own| {
            own.port() == port
                && (own.ip() == ip
                    || (own.ip().is_unspecified() && (ip.is_loopback() || ip.is_unspecified()))
                    || (own.ip().is_loopback() && (ip.is_loopback() || ip.is_unspecified())))
        });
        if ours {
            return Err(format!("{url} points at this gateway"));
        }
        Ok(())
    }

    /// Checks what can only be learnt by asking: each input's size (a HEAD
    /// request; over [`OrderRules::max_input_bytes`] is 413) and that each
    /// output URL takes an upload (an empty PUT, which the job's upload
    /// replaces; a refusal is 422). Nothing is fetched from or sent to an
    /// address the rules do not allow. All of it within
    /// [`OrderRules::preflight_deadline`]: a file server that stalls holds
    /// the client's request no longer than that.
    pub async fn preflight(&self, order: &JobOrder) -> Result<(), FieldError> {
        let deadline = self.preflight_deadline;
        let on_outputs = std::sync::atomic::AtomicBool::new(false);
        match tokio::time::timeout(deadline, self.preflight_unbounded(order, &on_outputs)).await {
            Ok(checked) => checked,
            Err(_) => {
                // The part being checked when time ran out.
                let field = if on_outputs.load(std::sync::atomic::Ordering::Relaxed) {
                    "outputs"
                } else {
                    "inputs"
                };
                Err(FieldError::new(
                    field,
                    format!(
                        "the file servers did not answer within {} s",
                        deadline.as_secs_f64()
                    ),
                )
                .status(422))
            }
        }
    }

    async fn preflight_unbounded(
        &self,
        order: &JobOrder,
        on_outputs: &std::sync::atomic::AtomicBool,
    ) -> Result<(), FieldError> {
        let policy = VolumePolicy {
            allow_private: self.allow_private_urls,
            timeout: std::time::Duration::from_secs(10),
            ..VolumePolicy::default()
        };
        for (i, input) in order.inputs.iter().enumerate() {
            let field = format!("inputs[{i}].url");
            let (client, url) = client_for(&input.url, &policy)
                .await
                .map_err(|e| FieldError::new(&field, e).status(422))?;
            let head =
                client.head(url).send().await.map_err(|e| {
                    FieldError::new(&field, format!("not reachable: {e}")).status(422)
                })?;
            if !head.status().is_success() {
                return Err(FieldError::new(
                    &field,
                    format!("the server answered {}", head.status()),
                )
                .status(422));
            }
            let size = head
                .headers()
                .get(reqwest::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if let Some(size) = size
                && size > self.max_input_bytes
            {
                return Err(FieldError::new(
                    &field,
                    format!(
                        "{size} bytes, more than the {} an input may be",
                        self.max_input_bytes
                    ),
                )
                .status(413));
            }
        }
        on_outputs.store(true, std::sync::atomic::Ordering::Relaxed);
        for (i, output) in order.outputs.iter().enumerate() {
            let field = format!("outputs[{i}].put_url");
            let (client, url) = client_for(&output.put_url, &policy)
                .await
                .map_err(|e| FieldError::new(&field, e).status(422))?;
            let put =
                client.put(url).body(Vec::new()).send().await.map_err(|e| {
                    FieldError::new(&field, format!("not reachable: {e}")).status(422)
                })?;
            if !put.status().is_success() {
                return Err(FieldError::new(
                    &field,
                    format!("an upload was refused: {}", put.status()),
                )
                .status(422));
            }
        }
        Ok(())
    }
}

fn check_command(command: &[String]) -> Result<(), FieldError> {
    match command.first() {
        None => return Err(FieldError::new("command", "must name a program")),
        Some(p) if p.trim().is_empty() => {
            return Err(FieldError::new("command", "the program name is empty"));
        }
        Some(_) => {}
    }
    if let Some(i) = command.iter().position(|a| a.contains('\0')) {
        return Err(FieldError::new(
            format!("command[{i}]"),
            "contains a NUL byte",
        ));
    }
    Ok(())
}

fn check_env(env: &BTreeMap<String, String>) -> Result<(), FieldError> {
    if env.len() > MAX_ENV {
        return Err(FieldError::new(
            "env",
            format!("{} variables; at most {MAX_ENV}", env.len()),
        ));
    }
    for (name, value) in env {
        let ok = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(FieldError::new(
                format!("env.{name}"),
                "a variable name is letters, digits and _, not starting with a digit",
            ));
        }
        if value.contains('\0') {
            return Err(FieldError::new(
                format!("env.{name}"),
                "contains a NUL byte",
            ));
        }
    }
    Ok(())
}

/// A path inside the work directory: relative, without `..`.
fn check_relative(path: &str) -> Result<(), String> {
    if path.is_empty() || path.len() > 255 {
        return Err("must be 1 to 255 bytes".into());
    }
    if path.starts_with('/') || path.contains('\0') || path.split('/').any(|p| p == "..") {
        return Err("must be relative to the work directory, without `..`".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> OrderRules {
        OrderRules {
            classes: ["cpu".to_owned()].into(),
            images: ["busybox:latest".to_owned()].into(),
            allow_no_image: false,
            volumes: true,
            own_addresses: vec!["127.0.0.1:8080".parse().expect("addr")],
            ..OrderRules::default()
        }
    }

    fn order() -> JobOrder {
        JobOrder {
            image: Some("busybox:latest".into()),
            command: vec!["echo".into(), "hi".into()],
            env: BTreeMap::new(),
            inputs: vec![],
            outputs: vec![],
            class: "cpu".into(),
            timeout_s: 60,
            deterministic: true,
        }
    }

    fn field_of(o: &JobOrder) -> String {
        rules().check(o).expect_err("refused").field
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(rules().check(&order()), Ok(()));
        let mut o = order();
        o.image = Some("evil:latest".into());
        assert_eq!(field_of(&o), "image");
        let mut o = order();
        o.image = None;
        assert_eq!(field_of(&o), "image");
        let mut o = order();
        o.command.clear();
        assert_eq!(field_of(&o), "command");
        let mut o = order();
        o.class = "H100".into();
        assert_eq!(rules().check(&o).expect_err("class").status, 422);
        let mut o = order();
        o.timeout_s = 24 * 3600 + 1;
        assert_eq!(field_of(&o), "timeout_s");
        let mut o = order();
        o.env.insert("1BAD".into(), "x".into());
        assert_eq!(field_of(&o), "env.1BAD");
        let input = |url: &str| InputVolume {
            url: url.into(),
            path: "in/data".into(),
            sha256: None,
        };
        let mut o = order();
        o.inputs = vec![input("http://example.test/a"), input("file:///etc/passwd")];
        assert_eq!(field_of(&o), "inputs[1].url");
        o.inputs = vec![
            input("http://example.test/a"),
            input("https://example.test/b"),
        ];
        assert_eq!(rules().check(&o), Ok(()), "http and https are both taken");
        for own in [
            "http://127.0.0.1:8080/v1/jobs",
            "http://localhost:8080/x",
            "http://0.0.0.0:8080/x",
        ] {
            let mut o = order();
            o.inputs = vec![input(own)];
            assert_eq!(field_of(&o), "inputs[0].url", "{own}");
        }
        let mut o = order();
        o.inputs = vec![input("http://127.0.0.1:9000/ok")];
        assert_eq!(rules().check(&o), Ok(()));
        o.inputs[0].path = "../escape".into();
        assert_eq!(field_of(&o), "inputs[0].path");
        let mut o = order();
        o.outputs = vec![OutputVolume {
            path: "out".into(),
            put_url: "ftp://x/y".into(),
        }];
        assert_eq!(field_of(&o), "outputs[0].put_url");
        let mut o = order();
        o.command = vec!["x".repeat(40 * 1024)];
        assert_eq!(rules().check(&o).expect_err("size").status, 413);
    }

    #[test]
    fn volumes_are_refused_where_the_operator_routes_none() {
        let no_volumes = OrderRules {
            volumes: false,
            ..rules()
        };
        let mut o = order();
        o.outputs = vec![OutputVolume {
            path: "out".into(),
            put_url: "http://127.0.0.1:9000/bucket/out".into(),
        }];
        let e = no_volumes.check(&o).expect_err("refused");
        assert_eq!((e.status, e.field.as_str()), (422, "outputs"));
    }
}
