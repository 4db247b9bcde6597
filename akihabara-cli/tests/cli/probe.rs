//! `validator run`'s probes end to end (issue 18, deliverable 4): a miner
//! daemon with a local executor and an SSH executor behind a real `sshd`;
//! the validator asks its specs, runs a benchmark job, rents the SSH
//! executor, logs in with its own key and gives it back, then scores with
//! a composite of pow and hardware-class.

use serde_json::json;

use super::daemon::{miner_config, one_miner, start, validator_config};
use super::executor::{Sshd, whoami};

#[test]
fn a_validator_probes_jobs_and_a_rented_login_then_pays_for_them() {
    let Some(sshd) = Sshd::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let net = one_miner(dir.path());
    let (wallets, port, snap) = (&net.wallets, net.port, &net.snap);
    let miner_toml = miner_config(dir.path(), wallets, "miner", snap, port, "");
    // The fleet: this machine for jobs, the sshd for rentals.
    std::fs::write(
        dir.path().join("fleet.toml"),
        format!(
            "[health]\ninterval = \"1s\"\ntimeout = \"3s\"\n\n\
             [[executors]]\nid = \"here\"\nbackend = \"local\"\nclass = \"cpu\"\nunsafe_share_miner_user = true\n\n\
             [[executors]]\nid = \"box\"\nbackend = \"ssh\"\nclass = \"rent\"\naddress = \"127.0.0.1:{}\"\n\
             user = \"{}\"\nkey = \"{}\"\nknown_hosts = \"{}\"\nauthorized_keys = \"{}\"\n",
            sshd.port,
            whoami(),
            sshd.path("user_key"),
            sshd.path("known_hosts"),
            sshd.path("authorized_keys"),
        ),
    )
    .unwrap();
    let mut miner = start("miner", &miner_toml, &[]);
    miner.event("ready");

    let key = dir.path().join("probe-key/id_ed25519");
    let config = validator_config(
        dir.path(),
        &net,
        false,
        "respect_schedules = false\n",
        &format!(
            "\n[scoring]\nscorer = \"composite\"\nema_alpha = 1.0\n\
             [scoring.composite]\npow = 1e-12\nhardware-class = 1.0\n\
             [scoring.hardware_classes]\ncpu = 1.0\n\n\
             [probe]\npoll = \"200ms\"\n\
             [[probe.jobs]]\nclass = \"cpu\"\ncommand = [\"sh\", \"-c\", \"sleep 2; echo {{nonce}}\"]\ntimeout = \"30s\"\nexpect_stdout = \"{{nonce}}\\n\"\n\
             [probe.allocation]\nssh_key = \"{}\"\ncommand = [\"echo\", \"rented\"]\nexpect = \"rented\"\n\
             class = \"rent\"\nlogin_timeout = \"20s\"\n\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n",
            key.display(),
        ),
    );
    let validator = start("validator", &config, &[]);
    validator.event("ready");
    assert!(key.exists(), "the probe's SSH key was not created");
    let probe = validator.event("probe");
    assert_eq!(
        probe["miners"],
        json!([{"uid": 2, "gpus": 0, "jobs": ["passed"], "allocation": "passed", "penalty": null}]),
        "{probe}"
    );
    // Given back: the validator's key is no longer let in.
    let keys = std::fs::read_to_string(sshd.path("authorized_keys")).unwrap();
    assert_eq!(keys.lines().count(), 1, "{keys}");
    // Both sides hold the job's receipts (accepted, finished).
    let receipts = std::fs::read_to_string(dir.path().join("v1-state/receipts.jsonl")).unwrap();
    assert_eq!(receipts.lines().count(), 2, "{receipts}");
    // The probe ran beside the rounds; the first weights after it pay for
    // what it measured: hardware-class pays the job's whole seconds (at
    // least the 2 s it slept) on top of pow's Tops/s (EMA alpha 1: this
    // epoch alone).
    let weights = validator.event("weights");
    assert_eq!(weights["uids"], json!([2]), "{weights}");
    let score = weights["scores"]["2"].as_f64().unwrap();
    assert!(score >= 2.0, "{weights}");
    drop(validator);
    miner.kill9();
}
