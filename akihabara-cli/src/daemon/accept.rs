//! The miner's `[jobs]` section as an accept policy: per-class limits,
//! then the operator's script, every refusal logged.

use std::sync::Arc;

use akihabara_core::market::accept::{AllOf, ClassLimits, ScriptPolicy};
use akihabara_core::market::jobs::{AcceptAll, AcceptPolicy, JobRequest, Refusal};

use super::key_error;
use crate::config::MinerConfig;

/// `[jobs]` as an accept policy: the class limits, then the script.
pub(super) fn accept_policy(c: &MinerConfig) -> anyhow::Result<Arc<dyn AcceptPolicy>> {
    let j = &c.jobs;
    let mut all: Vec<Arc<dyn AcceptPolicy>> = Vec::new();
    if !j.max_duration.is_empty() || j.only_listed {
        let mut limits = ClassLimits::new().only_listed(j.only_listed);
        for (class, max) in &j.max_duration {
            if max.as_secs() == 0 {
                return Err(key_error(
                    &format!("jobs.max_duration.{class}"),
                    "must be at least 1s",
                ));
            }
            limits = limits.max_duration(class.clone(), **max);
        }
        all.push(Arc::new(limits));
    }
    if let Some(timeout) = j.script_timeout
        && (timeout.is_zero() || timeout > std::time::Duration::from_secs(60))
    {
        return Err(key_error(
            "jobs.script_timeout",
            "must be more than 0s and at most 60s (a validator waits for the answer)",
        ));
    }
    if let Some(path) = &j.script {
        let path = akihabara_core::fs::expand_tilde(path);
        let meta = std::fs::metadata(&path)
            .map_err(|e| key_error("jobs.script", format!("{}: {e}", path.display())))?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
                return Err(key_error(
                    "jobs.script",
                    format!("{} is not an executable file", path.display()),
                ));
            }
        }
        let mut script = ScriptPolicy::new(path);
        if let Some(t) = j.script_timeout {
            script = script.timeout(t);
        }
        all.push(Arc::new(script));
    } else if j.script_timeout.is_some() {
        return Err(key_error(
            "jobs.script_timeout",
            "is set, but jobs.script is not",
        ));
    }
    Ok(match all.len() {
        0 => Arc::new(AcceptAll),
        1 => Arc::new(Logged(all.remove(0))),
        _ => Arc::new(Logged(Arc::new(AllOf(all)))),
    })
}

/// Logs each job the policy refuses, with the reason (a failed or hung
/// script as a warning: the operator's script needs attention).
struct Logged(Arc<dyn AcceptPolicy>);

impl AcceptPolicy for Logged {
    fn refuse(&self, request: &JobRequest) -> Option<Refusal> {
        let refusal = self.0.refuse(request)?;
        let (job, validator) = (&request.job_id, request.validator.to_ss58());
        match &refusal {
            Refusal::ScriptFailed(_) => {
                tracing::warn!(job, validator, reason = %refusal, "job declined: the accept script failed")
            }
            _ => tracing::info!(job, validator, reason = %refusal, "job declined by [jobs]"),
        }
        Some(refusal)
    }
}
