//! The `nba` command as a user runs it.

use std::process::Command;

fn nba() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nba"))
}

fn demo_json(seed: &str) -> serde_json::Value {
    let out = nba()
        .args(["demo", "--events", "20000", "--seed", seed, "--json"])
        .output()
        .expect("nba runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        stdout.contains("nba demo:"),
        "a human summary first: {stdout}"
    );
    let last = stdout.lines().last().expect("a last line");
    serde_json::from_str(last).expect("the last line is one JSON object")
}

#[test]
fn demo_json_has_the_promised_keys_and_is_reproducible() {
    let mut a = demo_json("9");
    for key in [
        "events",
        "decisions",
        "rewards",
        "policy_mean_reward",
        "random_mean_reward",
        "decision_latency_p50_us",
        "decision_latency_p99_us",
    ] {
        assert!(a.get(key).is_some(), "missing {key} in {a}");
    }
    assert_eq!(a["events"], 20_000);
    let mut b = demo_json("9");
    for v in [&mut a, &mut b] {
        let o = v.as_object_mut().expect("object");
        for timing in [
            "elapsed_s",
            "events_per_s",
            "decision_latency_p50_us",
            "decision_latency_p99_us",
        ] {
            o.remove(timing);
        }
    }
    assert_eq!(a, b, "same seed, same result (timings aside)");
}

#[test]
fn misuse_is_explained() {
    let out = nba()
        .args(["demo", "--events", "many"])
        .output()
        .expect("nba runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--events"), "{err}");

    let out = nba()
        .args([
            "simulate",
            "--brokers",
            "127.0.0.1:1",
            "-X",
            "nonsense",
            "--events",
            "1",
        ])
        .output()
        .expect("nba runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("KEY=VALUE"), "{err}");
}
