//! Weights against the real Bittensor SDK (bittensor 10.5.0 in a venv):
//! random inputs, ties at .5 included, conversion and max-weight clipping
//! bit for bit; and `akihabara weights normalize` on the command line.

use akihabara_core::Uid;
use akihabara_core::weights::{convert_for_emit, normalize_max_weight};

use super::{peers, run, stderr};

#[test]
fn weights_match_the_python_sdk_bit_for_bit() {
    let Some(py) = peers::python("bittensor-10.5.0") else {
        return;
    };
    let out = peers::run_python(&py, "weights_vectors.py", &["20261122", "400"]);
    let mut cases = 0;
    for line in out.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(t) = v.get("ties") {
            assert!(t.as_u64().unwrap() > 100, "too few exact .5 ties: {t}");
            continue;
        }
        let uids: Vec<Uid> = v["uids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| Uid(u.as_u64().unwrap() as u16))
            .collect();
        let w: Vec<f64> = v["weights"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let expect = |e: &serde_json::Value| -> (Vec<u16>, Vec<u16>) {
            let f = |i: usize| {
                e[i].as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u16)
                    .collect()
            };
            (f(0), f(1))
        };
        let got = convert_for_emit(&uids, &w).unwrap();
        let (eu, ew) = expect(&v["emit"]);
        assert_eq!(
            got.uids.iter().map(|u| u.0).collect::<Vec<_>>(),
            eu,
            "case {cases}"
        );
        assert_eq!(got.weights, ew, "case {cases}");

        let limit = v["limit"].as_f64().unwrap();
        let y = normalize_max_weight(&w, limit).unwrap();
        let py_y: Vec<f64> = v["normalized"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(y, py_y, "case {cases}: normalize_max_weight, limit {limit}");
        let got = convert_for_emit(&uids, &y).unwrap();
        let (lu, lw) = expect(&v["emit_limited"]);
        assert_eq!(got.uids.iter().map(|u| u.0).collect::<Vec<_>>(), lu);
        assert_eq!(got.weights, lw);

        // The command line gives the same, for a sample of the cases.
        if cases % 40 == 0 {
            let join = |x: Vec<String>| x.join(",");
            let u = join(uids.iter().map(|u| u.0.to_string()).collect());
            // `{:?}` prints the shortest repr that parses back to the same f64.
            let ws = join(w.iter().map(|x| format!("{x:?}")).collect());
            let l = limit.to_string();
            for (extra, (eu, ew)) in [
                (vec![], (eu.clone(), ew.clone())),
                (vec!["--max-weight-limit", l.as_str()], (lu, lw)),
            ] {
                let mut args = vec![
                    "weights",
                    "normalize",
                    "--uids",
                    &u,
                    "--weights",
                    &ws,
                    "--json",
                ];
                args.extend(extra);
                let o = run(&args);
                assert!(o.status.success(), "{}", stderr(&o));
                let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                assert_eq!(
                    j,
                    serde_json::json!({"uids": eu, "weights": ew}),
                    "case {cases}"
                );
            }
        }
        cases += 1;
    }
    assert_eq!(cases, 400);
}

#[test]
fn weights_normalize_output_and_bad_input() {
    let o = run(&[
        "weights",
        "normalize",
        "--uids",
        "0,1,2",
        "--weights",
        "0.5,0.25,0.125",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"uids": [0, 1, 2], "weights": [65535, 32768, 16384]})
    );
    for (weights, extra, needle) in [
        ("0.5,-1", None, "weight 1 is negative"),
        ("0.5,nan", None, "not a finite number"),
        ("0.5", None, "3 uids but 1 weights"),
        ("1,1,1", Some("0"), "max weight limit 0"),
        ("1,1,x", None, "--weights"),
    ] {
        let mut args = vec![
            "weights",
            "normalize",
            "--uids",
            "0,1,2",
            "--weights",
            weights,
        ];
        if let Some(l) = extra {
            args.extend(["--max-weight-limit", l]);
        }
        super::assert_bad_input(&args, needle);
    }
    super::assert_bad_input(
        &["weights", "normalize", "--uids", "3,3", "--weights", "1,1"],
        "uid 3 appears more than once",
    );
}
