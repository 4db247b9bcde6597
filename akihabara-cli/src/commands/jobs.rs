//! `akihabara jobs submit|status`: a validator sends a signed job to one
//! miner and reads its state; every receipt the miner signs is checked and
//! kept in the validator's `receipts.jsonl`.

use std::time::{Duration, Instant};

use akihabara_core::dendrite::AxonTarget;
use akihabara_core::market::client::{query_job, submit_job};
use akihabara_core::market::jobs::{JobRequest, ReceiptStore};
use akihabara_core::market::server::unix_millis;
use akihabara_core::market::wire::JobReply;
use akihabara_core::wallet::Keypair;
use clap::{Args, Subcommand};

use super::miner_target::{
    MinerArgs, RequirementsArgs, ValidatorArgs, client_error, dendrite, seconds,
};
use crate::args::OutputArgs;
use crate::exit::{self, bad_input, coded};
use crate::out;

/// `akihabara jobs …`.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Send a signed job to one miner (JobSubmit); prints its id and the miner's receipt
    #[command(after_help = "\
The job runs on one of the miner's executors of --class, for at most
--duration seconds. The miner answers accepted (with its signed receipt,
checked and kept in STATE/receipts.jsonl) or declined with a reason.

Exit codes: 0 accepted (with --wait: finished, exit code 0), 1 the job
failed or exited non-zero (with --wait), 2 bad input, 3 the miner declined,
4 no answer from the miner, 5 a malformed answer or a receipt that is not
the miner's signature.

Examples:
  akihabara jobs submit --port 8091 --axon-hotkey 5F… --class cpu -- echo hello
  akihabara jobs submit --metagraph mg.json --uid 12 --class A100 --duration 600 \\
      --wait 700 --json -- python3 bench.py")]
    Submit(SubmitArgs),
    /// Ask one miner for a job's state (JobQuery)
    #[command(after_help = "\
States: running, finished (with the job's exit code and output digests),
failed (killed, timed out or lost) or unknown. A finished job's receipt is
checked and kept in STATE/receipts.jsonl.

Exit codes: 0 the state was read (with --wait: finished with exit code 0),
1 unknown job, or (with --wait) the job failed, exited non-zero or still
runs, 2 bad input, 4 no answer from the miner, 5 a malformed answer.

Examples:
  akihabara jobs status 5c0f… --port 8091 --axon-hotkey 5F…
  akihabara jobs status 5c0f… --metagraph mg.json --uid 12 --wait 600 --json")]
    Status(StatusArgs),
    /// List the organic jobs a gateway holds for your key (GET /v1/jobs)
    #[command(after_help = "\
The key is read from AKIHABARA_GATEWAY_KEY, or the first line of --key-file
(never from the command line, where other users could see it).

Examples:
  AKIHABARA_GATEWAY_KEY=akh_… akihabara jobs list --gateway http://127.0.0.1:8080
  akihabara jobs list --gateway http://gw.example:8080 --key-file ~/.gateway-key --json")]
    List(ListArgs),
}

/// `akihabara jobs list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The gateway's base URL
    #[arg(long, value_name = "URL")]
    pub gateway: String,
    /// A file whose first line is the API key [default: AKIHABARA_GATEWAY_KEY]
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `akihabara jobs submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub miner: MinerArgs,
    #[command(flatten)]
    pub validator: ValidatorArgs,
    /// Hardware class to run on (as the miner's fleet names it: cpu, A100, …)
    #[arg(long, value_name = "NAME")]
    pub class: String,
    #[command(flatten)]
    pub requirements: RequirementsArgs,
    /// The job's wall-clock limit, seconds; the miner kills it after
    #[arg(long, value_name = "S", default_value_t = 3600)]
    pub duration: u64,
    /// The job's id [default: a random UUID]
    #[arg(long, value_name = "ID")]
    pub job_id: Option<String>,
    /// A directory on the executor whose files are digested when the job ends
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<String>,
    /// Then wait up to S seconds for the job to end, and report as `jobs status`
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    pub wait: Option<f64>,
    #[command(flatten)]
    pub output: OutputArgs,
    /// The command and its arguments, after --
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `akihabara jobs status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The job's id (printed by `jobs submit`)
    #[arg(value_name = "JOB_ID")]
    pub job_id: String,
    #[command(flatten)]
    pub miner: MinerArgs,
    #[command(flatten)]
    pub validator: ValidatorArgs,
    /// Wait up to S seconds for the job to end
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    pub wait: Option<f64>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `akihabara jobs …`.
pub fn run(cmd: JobsCommand) -> anyhow::Result<()> {
    let rt = super::runtime()?;
    match cmd {
        JobsCommand::Submit(a) => rt.block_on(submit(a)),
        JobsCommand::Status(a) => rt.block_on(status(a)),
        JobsCommand::List(a) => rt.block_on(list(a)),
    }
}

/// The largest `GET /v1/jobs` answer read, bytes (a gateway lists at most a
/// few thousand jobs of a few hundred bytes each).
const MAX_LIST_BYTES: usize = 16 << 20;

/// `jobs list`: the gateway's `GET /v1/jobs`, as a table or its JSON.
async fn list(a: ListArgs) -> anyhow::Result<()> {
    let key = match &a.key_file {
        Some(path) => {
            let text = akihabara_core::fs::read_limited(path, 4096)
                .map_err(|e| bad_input(anyhow::anyhow!("--key-file {}: {e}", path.display())))?;
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        }
        None => std::env::var("AKIHABARA_GATEWAY_KEY").map_err(|_| {
            bad_input(anyhow::anyhow!(
                "no key: set AKIHABARA_GATEWAY_KEY or pass --key-file"
            ))
        })?,
    };
    let url = format!("{}/v1/jobs", a.gateway.trim_end_matches('/'));
    let mut response = akihabara_core::dendrite::http_client()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e}"))?
        .get(&url)
        .bearer_auth(&key)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| coded(exit::NO_ANSWER, anyhow::anyhow!("{url}: {e}")))?;
    let status = response.status();
    // Read up to a bound: the gateway is a remote party.
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| coded(exit::NO_ANSWER, anyhow::anyhow!("{url}: {e}")))?
    {
        if bytes.len() + chunk.len() > MAX_LIST_BYTES {
            return Err(coded(
                exit::BAD_ANSWER,
                anyhow::anyhow!("{url}: the answer is larger than {MAX_LIST_BYTES} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    let body: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| coded(exit::BAD_ANSWER, anyhow::anyhow!("{url}: not JSON: {e}")))?;
    if !status.is_success() {
        let why = body["error"].as_str().unwrap_or("no reason given");
        anyhow::bail!("{url} answered {status}: {why}");
    }
    if a.output.json {
        out::println(body.to_string())?;
        return Ok(());
    }
    let jobs = body["jobs"].as_array().cloned().unwrap_or_default();
    if jobs.is_empty() {
        out::println("no jobs")?;
    }
    for j in jobs {
        // The first 12 characters (not bytes: the gateway may send any text).
        let miner: String = j["miner"]
            .as_str()
            .unwrap_or("-")
            .chars()
            .take(12)
            .collect();
        out::println(format!(
            "{:<36} {:<9} {:<8} {:<10} {}",
            j["id"].as_str().unwrap_or("?"),
            j["state"].as_str().unwrap_or("?"),
            j["class"].as_str().unwrap_or("?"),
            j["exit_code"]
                .as_i64()
                .map_or("-".to_owned(), |c| c.to_string()),
            miner,
        ))?;
    }
    Ok(())
}

/// What both commands need to call the miner.
struct Session {
    dendrite: akihabara_core::dendrite::Dendrite,
    target: AxonTarget,
    store: ReceiptStore,
    timeout: Duration,
}

/// The session, and the hotkey pair that signs jobs.
async fn session(miner: &MinerArgs, v: &ValidatorArgs) -> anyhow::Result<(Session, Keypair)> {
    let timeout = v.timeout()?;
    let target = miner.target().await?;
    let keypair = v.keypair()?;
    let dir = v.state_dir(&keypair.account())?;
    Ok((
        Session {
            dendrite: dendrite(keypair.clone(), &target)?,
            target,
            store: ReceiptStore::new(dir.join("receipts.jsonl")),
            timeout,
        },
        keypair,
    ))
}

async fn submit(a: SubmitArgs) -> anyhow::Result<()> {
    if a.command.is_empty() {
        return Err(bad_input(anyhow::anyhow!(
            "no command: put it after --, e.g. akihabara jobs submit … -- echo hello"
        )));
    }
    if a.duration == 0 {
        return Err(bad_input(anyhow::anyhow!(
            "--duration must be at least 1 second"
        )));
    }
    let job_id = match &a.job_id {
        Some(id) if id.is_empty() || id.len() > 128 => {
            return Err(bad_input(anyhow::anyhow!(
                "--job-id must be 1 to 128 bytes"
            )));
        }
        Some(id) => id.clone(),
        None => uuid::Uuid::new_v4().simple().to_string(),
    };
    let wait = a.wait.map(|w| seconds("--wait", w)).transpose()?;
    let (s, keypair) = session(&a.miner, &a.validator).await?;
    let request = JobRequest {
        job_id: job_id.clone(),
        validator: keypair.account(),
        hardware_class: a.class.clone(),
        timeout_s: a.duration,
        command: a.command.clone(),
        requirements: a.requirements.requirements(),
        output_dir: a.output_dir.clone(),
        image: None,
        env: Default::default(),
        inputs: vec![],
        outputs: vec![],
        issued_at_ms: unix_millis(),
        signature: String::new(),
    }
    .sign(&keypair);
    let reply = submit_job(&s.dendrite, &s.target, request, &s.store, s.timeout)
        .await
        .map_err(|e| client_error(e, &s.target))?;
    if let JobReply::Declined { .. } = reply {
        report(&job_id, &s, &reply, a.output.json)?;
        return Err(declined(&job_id, &reply));
    }
    match wait {
        None => {
            report(&job_id, &s, &reply, a.output.json)?;
            Ok(())
        }
        Some(w) => {
            let reply = poll(&s, &job_id, w).await?;
            report(&job_id, &s, &reply, a.output.json)?;
            verdict(&job_id, &reply, true)
        }
    }
}

async fn status(a: StatusArgs) -> anyhow::Result<()> {
    let wait = a.wait.map(|w| seconds("--wait", w)).transpose()?;
    let (s, _) = session(&a.miner, &a.validator).await?;
    let reply = match wait {
        None => query(&s, &a.job_id).await?,
        Some(w) => poll(&s, &a.job_id, w).await?,
    };
    report(&a.job_id, &s, &reply, a.output.json)?;
    verdict(&a.job_id, &reply, wait.is_some())
}

async fn query(s: &Session, job_id: &str) -> anyhow::Result<JobReply> {
    query_job(&s.dendrite, &s.target, job_id, &s.store, s.timeout)
        .await
        .map_err(|e| client_error(e, &s.target))
}

/// Queries until the job is no longer running, or `wait` has passed.
async fn poll(s: &Session, job_id: &str, wait: Duration) -> anyhow::Result<JobReply> {
    let start = Instant::now();
    loop {
        let reply = query(s, job_id).await?;
        let running = matches!(reply, JobReply::Running | JobReply::Accepted { .. });
        if !running || start.elapsed() >= wait {
            return Ok(reply);
        }
        tokio::time::sleep(Duration::from_millis(250).min(wait.saturating_sub(start.elapsed())))
            .await;
    }
}

fn declined(job_id: &str, reply: &JobReply) -> anyhow::Error {
    let JobReply::Declined { reason, detail } = reply else {
        return anyhow::anyhow!("job {job_id} was not declined");
    };
    coded(
        exit::DECLINED,
        anyhow::anyhow!(
            "the miner declined job {job_id}: {}: {detail}",
            reason_name(reason)
        ),
    )
}

/// The exit status of a reply: an unknown job fails; with `waited`, so
/// does anything but a clean finish.
fn verdict(job_id: &str, reply: &JobReply, waited: bool) -> anyhow::Result<()> {
    match reply {
        JobReply::Unknown => anyhow::bail!("the miner knows no job {job_id} of this hotkey"),
        JobReply::Declined { .. } => Err(declined(job_id, reply)),
        _ if !waited => Ok(()),
        JobReply::Finished { exit_code: 0, .. } => Ok(()),
        JobReply::Finished { exit_code, .. } => {
            anyhow::bail!("job {job_id} exited with {exit_code}")
        }
        JobReply::Failed { reason, .. } => anyhow::bail!("job {job_id} failed: {reason}"),
        JobReply::Running | JobReply::Accepted { .. } => {
            anyhow::bail!("job {job_id} is still running")
        }
    }
}

/// `unsupported_class` and friends, as the wire spells them.
pub(crate) fn reason_name(reason: &impl serde::Serialize) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "declined".into())
}

fn report(job_id: &str, s: &Session, reply: &JobReply, json: bool) -> anyhow::Result<()> {
    if json {
        let mut v = serde_json::to_value(reply)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("job_id".into(), job_id.into());
            o.insert("miner".into(), s.target.hotkey.to_ss58().into());
        }
        out::println(v.to_string())?;
        return Ok(());
    }
    let mut text = format!("job {job_id}: {}", reply.state());
    match reply {
        JobReply::Declined { reason, detail } => {
            text.push_str(&format!(" ({}: {detail})", reason_name(reason)));
        }
        JobReply::Finished {
            exit_code,
            stdout_sha256,
            stderr_sha256,
            output_sha256,
            ..
        } => {
            text.push_str(&format!(
                ", exit code {exit_code}\nstdout sha256 {stdout_sha256}\nstderr sha256 {stderr_sha256}"
            ));
            if let Some(o) = output_sha256 {
                text.push_str(&format!("\noutput sha256 {o}"));
            }
        }
        JobReply::Failed { reason, .. } => text.push_str(&format!(": {reason}")),
        _ => {}
    }
    let signed = matches!(
        reply,
        JobReply::Accepted { .. }
            | JobReply::Finished { .. }
            | JobReply::Failed {
                receipt: Some(_),
                ..
            }
    );
    if signed {
        text.push_str(&format!(
            "\nreceipt signed by {}, kept in {}",
            s.target.hotkey,
            s.store.path().display()
        ));
    }
    out::println(text)?;
    Ok(())
}
