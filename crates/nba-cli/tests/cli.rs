//! The `nba` command as a user runs it.

use std::process::Command;

fn nba() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nba"));
    cmd.env_remove("NBA_DEPLOYMENT");
    cmd
}

/// `deploy/examples/`.
fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/examples")
}

fn demo_json(seed: &str, deployment: Option<&str>) -> serde_json::Value {
    let mut cmd = nba();
    cmd.args(["demo", "--events", "20000", "--seed", seed, "--json"]);
    if let Some(d) = deployment {
        cmd.arg("--deployment").arg(examples().join(d));
    }
    let out = cmd.output().expect("nba runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        stdout.contains("nba demo ("),
        "a human summary first: {stdout}"
    );
    let last = stdout.lines().last().expect("a last line");
    serde_json::from_str(last).expect("the last line is one JSON object")
}

#[test]
fn demo_json_has_the_promised_keys_and_is_reproducible() {
    let mut a = demo_json("9", None);
    for key in [
        "deployment",
        "actions",
        "decisions_by_group",
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
    assert_eq!(a["deployment"], "retail", "the retail example by default");
    assert_eq!(a["actions"], 8);
    let mut b = demo_json("9", None);
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

/// `nba demo --deployment` runs a business declared in a file, with no
/// Kafka: the bank example's actions, groups and customers.
#[test]
fn the_demo_runs_any_declared_business() {
    let bank = demo_json("5", Some("bank/deployment.toml"));
    assert_eq!(bank["deployment"], "bank");
    assert_eq!(bank["actions"], 12);
    let groups = bank["decisions_by_group"].as_object().expect("groups");
    for g in [
        "acquisition/cards",
        "acquisition/lending",
        "growth/savings",
        "retention/service",
    ] {
        assert!(groups.contains_key(g), "{g} in {groups:?}");
    }
}

/// `nba config check` prints every setting with its source and what they
/// imply, or every problem on its line with the fix, exit code 2.
#[test]
fn config_check_explains_a_deployment() {
    let out = nba()
        .args(["config", "check"])
        .arg(examples().join("bank/deployment.toml"))
        .output()
        .expect("nba runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for says in [
        "name = \"bank\"  # file",
        "policy.alpha = 0.5  # default",
        "features.context = ",
        "# context: 26 entries",
        "# customer state: ",
        "# OK:",
    ] {
        assert!(stdout.contains(says), "{says} in {stdout}");
    }
    let dir = std::env::temp_dir().join(format!("nba-cli-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.toml");
    let text = std::fs::read_to_string(examples().join("bank/deployment.toml")).expect("bank");
    let text = text
        .replace("id = \"car_loan\"", "id = \"personal_loan\"")
        .replace(
            "triggers = [\"login\", \"salary_changed\", \"moved_house\"]",
            "triggers = [\"login\", \"salary_changed\", \"moved_house\", \"logout\"]",
        );
    std::fs::write(&bad, &text).expect("written");
    let out = nba()
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .expect("nba runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).expect(needle) + 1;
    for says in [
        format!(
            "bad.toml:{}: vocabulary.triggers: trigger \"logout\" is not a declared event type",
            line_of("\"logout\"]")
        ),
        "action id \"personal_loan\" is declared twice".to_owned(),
        "2 problems in".to_owned(),
    ] {
        assert!(stdout.contains(&says), "{says} in {stdout}");
    }
    let out = nba()
        .args(["config", "example", "bank"])
        .output()
        .expect("runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        std::fs::read_to_string(examples().join("bank/deployment.toml")).expect("bank")
    );
    let _ = std::fs::remove_dir_all(&dir);
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

fn last_json_line(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().expect("a last line");
    serde_json::from_str(last).expect("the last line is one JSON object")
}

/// An interval log written by a binary (`nba demo --latency-log`) is read back
/// by `nba latency` with the same percentiles the binary reported.
#[test]
fn latency_log_reads_back_with_the_same_percentiles() {
    let dir = std::env::temp_dir().join(format!("nba-cli-latency-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let log = dir.join("demo.hlog");
    let plot = dir.join("plot.html");
    let log_arg = log.to_str().expect("utf-8 path");
    let demo = last_json_line(
        &nba()
            .args([
                "demo",
                "--events",
                "20000",
                "--json",
                "--latency-log",
                log_arg,
            ])
            .output()
            .expect("nba runs"),
    );
    let out = nba()
        .args(["latency", log_arg, "--json", "--plot"])
        .arg(&plot)
        .output()
        .expect("nba runs");
    let read = last_json_line(&out);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("p99.9 µs"), "{table}");
    let total = &read["tags"]["model-updater.request_to_decision"]["total"];
    assert_eq!(total["count"], demo["decisions"]);
    assert_eq!(total["p50_us"], demo["decision_latency_p50_us"]);
    assert_eq!(total["p99_us"], demo["decision_latency_p99_us"]);
    let windows = read["tags"]["model-updater.decision"]["windows"]
        .as_array()
        .expect("windows");
    assert_eq!(windows.len(), 10, "one interval per tenth of the events");
    for step in [
        "consumer.decode",
        "feature-aggregator.feature_update",
        "model-updater.encode",
    ] {
        assert!(
            read["tags"][step]["total"]["count"].as_u64() > Some(0),
            "{step}"
        );
    }
    let html = std::fs::read_to_string(&plot).expect("plot written");
    assert!(html.contains("<svg") && html.contains("request_to_decision"));
    // Not a log: a clear error, exit 2.
    let out = nba()
        .args(["latency"])
        .arg(&plot)
        .output()
        .expect("nba runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an HdrHistogram interval log"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `nba obd` on the Open Bandit Dataset sample: the logging policies' own click
/// rates and, for each candidate, every estimator with an interval. Needs the
/// data: `scripts/test.sh` fetches it (scripts/fetch-obd.sh) and sets
/// NBA_OBD_DIR; a bare `cargo test` without it says so and checks the error.
#[test]
fn obd_reports_logged_values_and_candidate_estimates() {
    let Ok(dir) = std::env::var("NBA_OBD_DIR") else {
        eprintln!("NBA_OBD_DIR is not set: run scripts/fetch-obd.sh for the full check");
        let out = nba()
            .args(["obd", "/nonexistent"])
            .output()
            .expect("nba runs");
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("scripts/fetch-obd.sh"));
        return;
    };
    let r = last_json_line(
        &nba()
            .args(["obd", &dir, "--json"])
            .output()
            .expect("nba runs"),
    );
    let logged = r["logged"].as_array().expect("logged");
    assert_eq!(logged.len(), 2);
    let logged_random = logged[0]["value"].as_f64().expect("value");
    for l in logged {
        assert_eq!(l["impressions"], 10_000);
        let v = l["value"].as_f64().expect("value");
        assert!(
            v > 0.0 && v < 0.02,
            "OBD click rates are well under 2%: {v}"
        );
        assert!(l["ci_low"].as_f64() < Some(v) && l["ci_high"].as_f64() > Some(v));
    }
    let candidates = r["candidates"].as_array().expect("candidates");
    let random = candidates
        .iter()
        .find(|c| c["policy"] == "uniform-random")
        .expect("uniform-random");
    // The logging policy evaluated on its own log: IPS is the mean click rate of
    // the evaluation half, with an effective sample size of every impression.
    let ips = random["estimates"]
        .as_array()
        .expect("estimates")
        .iter()
        .find(|e| e["estimator"] == "ips")
        .expect("ips");
    assert_eq!(ips["effective_sample_size"], 5_000.0);
    // With --ci bootstrap every estimate also has a seeded bootstrap interval
    // around it; the estimates themselves do not change.
    let boot = last_json_line(
        &nba()
            .args([
                "obd",
                &dir,
                "--json",
                "--ci",
                "bootstrap",
                "--switch-tau",
                "10",
            ])
            .output()
            .expect("nba runs"),
    );
    let boot_ips = boot["candidates"][0]["estimates"]
        .as_array()
        .and_then(|es| es.iter().find(|e| e["estimator"] == "ips"))
        .expect("ips");
    assert_eq!(boot_ips["value"], ips["value"]);
    let (low, high) = (
        boot_ips["bootstrap"][0].as_f64().expect("low"),
        boot_ips["bootstrap"][1].as_f64().expect("high"),
    );
    let v = ips["value"].as_f64().expect("value");
    assert!(low < v && v < high, "{boot_ips}");
    assert!(ips["bootstrap"].is_null(), "no bootstrap unless asked");
    // Switch-DR, asked for: with every weight 1 (under τ = 10) it is DR.
    let value_of = |name: &str| {
        boot["candidates"][0]["estimates"]
            .as_array()
            .and_then(|es| es.iter().find(|e| e["estimator"] == name))
            .map(|e| e["value"].clone())
            .expect("estimated")
    };
    assert_eq!(value_of("switch-dr"), value_of("dr"));
    // ...and the logging policy's own value is reported on those rounds.
    assert_eq!(r["logged_on_evaluation"]["impressions"], 5_000);
    let own = r["logged_on_evaluation"]["value"].as_f64().expect("value");
    assert!((ips["value"].as_f64().expect("ips") - own).abs() < 1e-12);
    for c in candidates {
        for e in c["estimates"].as_array().expect("estimates") {
            assert!(e["ci_low"].as_f64() <= e["value"].as_f64(), "{c}");
        }
    }

    // Every clicked impression's propensity set to 0: the run fails and
    // names the first, unless told to leave them out (then counted).
    let zeroed = std::env::temp_dir().join(format!("nba-obd-zeroed-{}", std::process::id()));
    let mut clicked = 0;
    for log in ["random", "bts"] {
        let from = std::path::Path::new(&dir).join(format!("{log}/all/all.csv"));
        let text = std::fs::read_to_string(&from).expect("the sample");
        let mut lines = text.lines();
        let header = lines.next().expect("a header");
        let col = |name: &str| {
            header
                .split(',')
                .position(|h| h == name)
                .expect("the column")
        };
        let (click, prop) = (col("click"), col("propensity_score"));
        let mut out = format!("{header}\n");
        for line in lines {
            let mut f: Vec<String> = line.split(',').map(str::to_owned).collect();
            if f[click] == "1" {
                f[prop] = "0".into();
                clicked += 1;
            }
            out.push_str(&f.join(","));
            out.push('\n');
        }
        std::fs::create_dir_all(zeroed.join(format!("{log}/all"))).expect("dir");
        std::fs::write(zeroed.join(format!("{log}/all/all.csv")), out).expect("written");
    }
    let refused = nba().arg("obd").arg(&zeroed).output().expect("nba runs");
    let why = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{why}");
    assert!(
        why.contains(&format!(
            "{clicked} logged decision(s) have a propensity outside (0, 1]"
        )) && why.contains("random/all/all.csv line ")
            && why.contains("--allow-bad-propensities"),
        "{why}"
    );
    let allowed = nba()
        .arg("obd")
        .arg(&zeroed)
        .args(["--allow-bad-propensities", "--json"])
        .output()
        .expect("nba runs");
    let _ = std::fs::remove_dir_all(&zeroed);
    assert!(String::from_utf8_lossy(&allowed.stderr).contains("left out of every estimate"));
    assert_eq!(
        last_json_line(&allowed)["bad_propensities"]["count"],
        clicked
    );

    // The importer: the uniform-random log as a recording, backtested with
    // candidates; the uniform candidate's IPS on it is the log's own click rate.
    let rec = std::env::temp_dir().join(format!("nba-obd-{}.avro", std::process::id()));
    let out = nba()
        .args(["obd", &dir, "--record"])
        .arg(&rec)
        .output()
        .expect("nba runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::env::temp_dir().join(format!("nba-obd-{}.html", std::process::id()));
    let b = last_json_line(
        &nba()
            .arg("backtest")
            .arg(&rec)
            .args(["--json", "--candidate", "random"])
            .args(["--candidate", "linucb:alpha=1.0,model=hybrid"])
            .arg("--report")
            .arg(&page)
            .output()
            .expect("nba runs"),
    );
    // The report plots every candidate's estimates with their intervals
    // against the logged policy's value.
    let html = std::fs::read_to_string(&page).expect("report written");
    assert!(html.contains(">random ips</text>") && html.contains(">logged policy</text>"));
    let _ = std::fs::remove_file(&page);
    // --seed reaches the candidates: Thompson sampling's probabilities (and
    // so its estimates) follow it.
    let thompson_ips = |seed: &str| {
        let r = last_json_line(
            &nba()
                .arg("backtest")
                .arg(&rec)
                .args(["--json", "--candidate", "thompson", "--seed", seed])
                .output()
                .expect("nba runs"),
        );
        r["evaluation"]["candidates"][0]["estimates"]
            .as_array()
            .and_then(|es| es.iter().find(|e| e["estimator"] == "ips"))
            .and_then(|e| e["value"].as_f64())
            .expect("thompson's IPS")
    };
    let (one, two) = (thompson_ips("1"), thompson_ips("2"));
    assert_eq!(one, thompson_ips("1"), "the same seed, the same estimate");
    assert_ne!(one, two, "another seed, other draws");

    // A policy run elsewhere, given as probabilities: uniform over the 80
    // items is estimated at the uniform log's own value; a file that lacks
    // a logged decision fails, naming it.
    let uniform: String = (0..80)
        .map(|item| format!("\"{item}\": 0.0125"))
        .collect::<Vec<_>>()
        .join(", ");
    let given = |decisions: usize| {
        (0..decisions)
            .map(|i| {
                format!(
                    "{{\"decision_id\": \"obd-random-{i}\", \"probabilities\": {{{uniform}}}}}\n"
                )
            })
            .collect::<String>()
    };
    let file = std::env::temp_dir().join(format!("nba-given-{}.jsonl", std::process::id()));
    std::fs::write(&file, given(10_000)).expect("written");
    let g = last_json_line(
        &nba()
            .arg("backtest")
            .arg(&rec)
            .args(["--json", "--candidate", "random", "--policy-probabilities"])
            .arg(&file)
            .output()
            .expect("nba runs"),
    );
    let given_ips = g["evaluation"]["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .find(|c| c["policy"] == "given")
        .and_then(|c| c["estimates"].as_array())
        .and_then(|es| es.iter().find(|e| e["estimator"] == "ips"))
        .and_then(|e| e["value"].as_f64())
        .expect("the given policy's IPS");
    std::fs::write(&file, given(9_999)).expect("written");
    let short = nba()
        .arg("backtest")
        .arg(&rec)
        .args(["--candidate", "random", "--policy-probabilities"])
        .arg(&file)
        .output()
        .expect("nba runs");
    let _ = std::fs::remove_file(&file);
    assert_eq!(short.status.code(), Some(2));
    let why = String::from_utf8_lossy(&short.stderr);
    assert!(
        why.contains("1 of 10000 logged decisions cannot be weighted")
            && why.contains("decision obd-random-9999 is not given"),
        "{why}"
    );
    let _ = std::fs::remove_file(&rec);
    assert_eq!(b["evaluation"]["decisions"], 10_000);
    let logged = b["logged_value"].as_f64().expect("logged value");
    assert!(
        (logged - logged_random).abs() < 1e-12,
        "{logged} vs {logged_random}"
    );
    let random_ips = b["evaluation"]["candidates"]
        .as_array()
        .expect("candidates")
        .iter()
        .find(|c| c["name"] == "random")
        .and_then(|c| c["estimates"].as_array())
        .and_then(|es| es.iter().find(|e| e["estimator"] == "ips"))
        .and_then(|e| e["value"].as_f64())
        .expect("random's IPS");
    assert!(
        (random_ips - logged).abs() < 1e-9,
        "{random_ips} vs {logged}"
    );
    assert!((given_ips - logged).abs() < 1e-9, "{given_ips} vs {logged}");
}

/// A simulated recording backtests deterministically (same decisions, bit for
/// bit, run after run), and interactions as JSON Lines backtest too.
#[test]
fn backtests_are_deterministic_and_read_json_lines() {
    let dir = std::env::temp_dir().join(format!("nba-cli-backtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let rec = dir.join("sim.avro");
    let out = nba()
        .args(["simulate", "--events", "5000", "--output"])
        .arg(&rec)
        .output()
        .expect("nba runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = |decisions: &std::path::Path| {
        last_json_line(
            &nba()
                .arg("backtest")
                .arg(&rec)
                .arg("--json")
                .arg("--decisions")
                .arg(decisions)
                .output()
                .expect("nba runs"),
        )
    };
    let (d1, d2) = (dir.join("d1.jsonl"), dir.join("d2.jsonl"));
    let (r1, r2) = (run(&d1), run(&d2));
    let html = dir.join("report.html");
    let out = nba()
        .arg("backtest")
        .arg(&rec)
        .arg("--report")
        .arg(&html)
        .output()
        .expect("nba runs");
    assert!(out.status.success());
    let page = std::fs::read_to_string(&html).expect("report written");
    assert!(page.contains("Cumulative decisions and rewards") && page.matches("<svg").count() == 2);
    assert_eq!(r1["events"], 5_000);
    assert!(r1["decision_count"].as_u64() > Some(100), "{r1}");
    assert_eq!(r1["decision_count"], r2["decision_count"]);
    let (a, b) = (
        std::fs::read_to_string(&d1).expect("decisions"),
        std::fs::read_to_string(&d2).expect("decisions"),
    );
    assert_eq!(
        a.lines().count() as u64,
        r1["decision_count"].as_u64().expect("count")
    );
    assert_eq!(a, b, "the same recording gives the same decisions");

    let jsonl = dir.join("interactions.jsonl");
    std::fs::write(
        &jsonl,
        concat!(
            r#"{"event_id":"e1","customer_id":"c1","timestamp":1767225600000,"channel":"WEB","event_type":"session_start","category":null,"amount":null,"decision_id":null,"action_id":null}"#,
            "\n",
            r#"{"event_id":"e2","customer_id":"c2","timestamp":1767225601000,"channel":"APP","event_type":"session_start","category":null,"amount":null,"decision_id":null,"action_id":null}"#,
            "\n"
        ),
    )
    .expect("written");
    let r = last_json_line(
        &nba()
            .args(["backtest", "--json", "--jsonl"])
            .arg(&jsonl)
            .output()
            .expect("nba runs"),
    );
    assert_eq!(r["events"], 2);
    assert_eq!(r["decision_count"], 2);
    // A backtest in which every record is refused says so and fails.
    let refused = dir.join("refused.jsonl");
    std::fs::write(
        &refused,
        r#"{"event_id":"e1","customer_id":" ","timestamp":1767225600000,"channel":"WEB","event_type":"session_start"}"#,
    )
    .expect("written");
    let out = nba()
        .args(["backtest", "--jsonl"])
        .arg(&refused)
        .output()
        .expect("nba runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("customer_id") && stderr.contains("every record was refused"),
        "{stderr}"
    );
    // Misuse is explained.
    for (spec, says) in [
        ("linucb:alpha=-1", "alpha"),
        ("linucb:alpah=1", "`alpah` is not a setting of linucb"),
        ("ucb", "unknown policy `ucb`"),
    ] {
        let out = nba()
            .arg("backtest")
            .arg(&rec)
            .args(["--candidate", spec])
            .output()
            .expect("nba runs");
        assert_eq!(out.status.code(), Some(2), "{spec}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{spec}"
        );
    }
    let out = nba()
        .args(["backtest", "--jsonl"])
        .arg(&rec)
        .output()
        .expect("nba runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("without --jsonl"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn commands_give_up_on_a_broker_they_cannot_reach_and_say_why() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    for args in [
        &["audit", "--brokers", "127.0.0.1:1", "--timeout", "2s"][..],
        &[
            "simulate",
            "--brokers",
            "127.0.0.1:1",
            "--timeout",
            "2s",
            "--events",
            "10",
        ][..],
        &[
            "catalog",
            "show",
            "--brokers",
            "127.0.0.1:1",
            "--timeout",
            "2s",
        ][..],
    ] {
        let out = nba()
            .args(args)
            .env_remove("NBA_KAFKA_CONFIG")
            .output()
            .expect("nba runs");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error: ")
                && last.contains("the Kafka client's last error: 127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused"),
            "{args:?}: {stderr}"
        );
    }
}

/// A deployment with a champion/challenger experiment: `nba backtest` says
/// how each arm did, with intervals, in words and in `--json`, and every
/// decision names its arm.
#[test]
fn a_backtest_reports_each_experiment_arm() {
    let dir = std::env::temp_dir().join(format!("nba-cli-experiment-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let retail = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/examples/retail/deployment.toml"),
    )
    .expect("the retail example");
    let file = dir.join("trial.toml");
    std::fs::write(
        &file,
        format!(
            "{retail}\n[experiment]\nname = \"greedy-trial\"\n\n[[experiment.challenger]]\nname = \"greedy\"\nshare = 0.3\npolicy = {{ name = \"epsilon-greedy\", epsilon = 0.05 }}\n\n[[experiment.shadow]]\nname = \"softmax\"\npolicy = {{ name = \"softmax\", temperature = 0.1 }}\n"
        ),
    )
    .expect("written");
    let rec = dir.join("sim.avro");
    let out = nba()
        .args(["simulate", "--events", "5000", "--output"])
        .arg(&rec)
        .output()
        .expect("nba runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decisions = dir.join("decisions.jsonl");
    let backtest = || {
        let mut c = nba();
        c.arg("backtest")
            .arg(&rec)
            .arg("--deployment")
            .arg(&file)
            .arg("--decisions")
            .arg(&decisions);
        c
    };
    let out = backtest().output().expect("nba runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("arm champion"), "{text}");
    assert!(text.contains("arm greedy"), "{text}");
    assert!(text.contains("shadow softmax"), "{text}");
    let r = last_json_line(&backtest().arg("--json").output().expect("nba runs"));
    let arms = r["experiment"].as_array().expect("arms in --json");
    assert_eq!(arms.len(), 2, "{r}");
    assert_eq!(
        (arms[0]["arm"].as_str(), arms[1]["arm"].as_str()),
        (Some("champion"), Some("greedy"))
    );
    assert!(
        arms[1]["difference"]
            .as_array()
            .is_some_and(|d| d.len() == 3),
        "{r}"
    );
    // The shadow scored every model decision, and each carries its view.
    let scored = r["shadows"][0]["scored"]
        .as_u64()
        .expect("the shadow in --json");
    let shown = std::fs::read_to_string(&decisions).expect("decisions");
    let mut per_arm = [0u64; 2];
    let mut customers: [std::collections::HashSet<String>; 2] = Default::default();
    let mut viewed = 0u64;
    for line in shown.lines() {
        let d: serde_json::Value = serde_json::from_str(line).expect("a decision");
        if d["action_id"].as_str().is_some_and(|a| !a.is_empty()) {
            let arm = usize::from(d["experiment_arm"] == "greedy");
            per_arm[arm] += 1;
            customers[arm].insert(d["customer_id"].as_str().unwrap_or_default().to_owned());
        }
        if d["shadows"][0]["name"] == "softmax" {
            viewed += 1;
        }
    }
    for (i, arm) in arms.iter().enumerate() {
        assert_eq!(arm["decisions"].as_u64(), Some(per_arm[i]), "{r}");
        // Its intervals take its customers as the unit.
        assert_eq!(
            arm["customers"].as_u64(),
            Some(customers[i].len() as u64),
            "{r}"
        );
    }
    assert!(per_arm[1] > 0 && per_arm[0] > per_arm[1], "{per_arm:?}");
    assert_eq!(viewed, scored);
    assert!(scored > 100, "{scored}");
    // `nba config arm` names the arm each customer's decisions carry.
    let first: Vec<serde_json::Value> = shown
        .lines()
        .take(40)
        .map(|l| serde_json::from_str(l).expect("a decision"))
        .collect();
    let out = nba()
        .args(["config", "arm"])
        .arg(&file)
        .args(
            first
                .iter()
                .map(|d| d["customer_id"].as_str().expect("an id")),
        )
        .output()
        .expect("nba runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    for (line, d) in listed.lines().zip(&first) {
        assert_eq!(
            line,
            format!(
                "{}\t{}",
                d["customer_id"].as_str().unwrap_or_default(),
                d["experiment_arm"].as_str().unwrap_or_default()
            )
        );
    }
    assert_eq!(listed.lines().count(), first.len());
    // Without an experiment, it says so.
    let plain = dir.join("plain.toml");
    std::fs::write(&plain, &retail).expect("written");
    let out = nba()
        .args(["config", "arm"])
        .arg(&plain)
        .arg("c1")
        .output()
        .expect("nba runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("declares no [experiment]"));

    // Apprentice mode: the baseline's decisions are its rule's, sent for
    // sure, and each customer is in one of the two arms `nba config arm`
    // names for them (on trial, after a takeover).
    let guarded = dir.join("guarded.toml");
    std::fs::write(
        &guarded,
        format!(
            "{retail}\n[experiment]\nname = \"apprentice\"\n\n[experiment.baseline]\nrule = \"order\"\norder = [\"discount_10\"]\ntrial_share = 0.3\nwindow = 200\nmin_outcomes = 40\n"
        ),
    )
    .expect("written");
    let out = nba()
        .arg("backtest")
        .arg(&rec)
        .arg("--deployment")
        .arg(&guarded)
        .arg("--decisions")
        .arg(&decisions)
        .arg("--json")
        .output()
        .expect("nba runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("guardrail: the bandit decides for"), "{text}");
    let r = last_json_line(&out);
    assert!(r["guardrail"]["bandit_share"].as_f64().is_some(), "{r}");
    let shown: Vec<serde_json::Value> = std::fs::read_to_string(&decisions)
        .expect("decisions")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a decision"))
        .filter(|d: &serde_json::Value| d["action_id"].as_str().is_some_and(|a| !a.is_empty()))
        .collect();
    let customers: Vec<&str> = shown
        .iter()
        .map(|d| d["customer_id"].as_str().expect("an id"))
        .collect();
    let out = nba()
        .args(["config", "arm"])
        .arg(&guarded)
        .args(&customers)
        .output()
        .expect("nba runs");
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut baseline = 0;
    for (line, d) in listed.lines().zip(&shown) {
        let arm = d["experiment_arm"].as_str().expect("an arm");
        let columns: Vec<&str> = line.split('\t').collect();
        assert_eq!(columns.len(), 3, "{line}");
        assert!(columns[1..].contains(&arm), "{line} vs {d}");
        if arm == "baseline" {
            baseline += 1;
            assert_eq!(d["policy"], "baseline:order", "{d}");
            assert_eq!(d["propensity"], 1.0, "{d}");
        }
    }
    assert_eq!(listed.lines().count(), shown.len());
    assert!(baseline > 0, "the baseline decided for someone");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `nba demo --record` keeps the run as a recording: `nba backtest` of it
/// with the demo's seed makes the same decisions (the simulated customers'
/// answers are in the raw interactions), and evaluates candidates on the
/// decisions it logged.
#[test]
fn a_recorded_demo_backtests_to_the_same_decisions() {
    let dir = std::env::temp_dir().join(format!("nba-cli-demo-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let rec = dir.join("demo.avro");
    let out = nba()
        .args(["demo", "--events", "8000", "--seed", "7", "--record"])
        .arg(&rec)
        .output()
        .expect("nba runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.contains("wrote "),
        "{stderr}"
    );
    let file = std::fs::File::open(&rec).expect("the recording");
    let recorded: Vec<nba_schema::RecordedRecord> = nba_schema::read_recording(file)
        .expect("a recording")
        .collect::<Result<_, _>>()
        .expect("readable");
    let logged: Vec<nba_core::NextBestAction> = recorded
        .iter()
        .filter(|r| r.topic == "nba.next-best-actions")
        .map(|r| nba_schema::decode(r.value.as_deref().unwrap_or_default()).expect("an NBA"))
        .collect();
    assert!(logged.len() > 500, "{}", logged.len());
    assert_eq!(
        recorded
            .iter()
            .filter(|r| r.topic == "nba.interactions.raw")
            .count(),
        8_000
    );

    let decisions = dir.join("decisions.jsonl");
    let out = nba()
        .arg("backtest")
        .arg(&rec)
        .args(["--seed", "7", "--json", "--decisions"])
        .arg(&decisions)
        .output()
        .expect("nba runs");
    let r = last_json_line(&out);
    let again: Vec<nba_core::NextBestAction> = std::fs::read_to_string(&decisions)
        .expect("decisions")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a decision"))
        .collect();
    assert_eq!(again, logged, "the backtest decides as the demo did");
    assert_eq!(
        r["evaluation"]["decisions"].as_u64(),
        Some(logged.len() as u64)
    );
    // The candidates are the deployment's policies: `linucb` is the demo's
    // own (the retail example's action-aware model), so, learning from
    // every round, its weights stay near 1 and its estimate near the
    // logged value.
    let out = nba()
        .arg("backtest")
        .arg(&rec)
        .args(["--seed", "7", "--json", "--candidate", "linucb"])
        .args(["--candidates-learn", "all"])
        .output()
        .expect("nba runs");
    let e = &last_json_line(&out)["evaluation"];
    let own = &e["candidates"][0];
    assert!(
        own["policy"]
            .as_str()
            .is_some_and(|p| p.contains("action-aware")),
        "{own}"
    );
    let ips = own["estimates"]
        .as_array()
        .and_then(|es| es.iter().find(|e| e["estimator"] == "ips"))
        .expect("IPS");
    let logged_value = e["logged_value"].as_f64().expect("the logged value");
    assert!(
        ips["effective_sample_size"].as_f64().expect("an ESS") > 0.8 * logged.len() as f64,
        "{ips}"
    );
    assert!(
        ips["ci_low"].as_f64().expect("low") <= logged_value
            && logged_value <= ips["ci_high"].as_f64().expect("high"),
        "{ips} against {logged_value}"
    );
    // A candidate that chooses by value reads the actions' values from the
    // catalog in force: it chooses otherwise than by reward, and no
    // decision offers an action of unknown value.
    let out = nba()
        .arg("backtest")
        .arg(&rec)
        .args(["--seed", "7", "--json", "--candidates-learn", "all"])
        .args([
            "--candidate",
            "linucb",
            "--candidate",
            "linucb:objective=value",
        ])
        .arg("--report")
        .arg(dir.join("report.html"))
        .output()
        .expect("nba runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("chooses by value"),
        "{stderr}"
    );
    let e = &last_json_line(&out)["evaluation"];
    assert_eq!(e["values_unknown"].as_u64(), Some(0), "{e}");
    // It is estimated in value too, next to what the log earned.
    assert!(
        e["logged_value_earned"].as_f64().is_some_and(|v| v > 0.0),
        "{e}"
    );
    assert!(
        e["candidates"][0]["earned"].is_null(),
        "by reward: no value"
    );
    assert_eq!(
        e["candidates"][1]["earned"].as_array().map(Vec::len),
        e["candidates"][1]["estimates"].as_array().map(Vec::len),
        "{e}"
    );
    let report = std::fs::read_to_string(dir.join("report.html")).expect("the report");
    assert!(
        report.contains("Candidates that choose by value, in value")
            && report.contains("estimated value earned per decision"),
        "the report shows the value estimates"
    );
    // Choosing by value, it sends what the logger seldom did: its weights
    // are heavy (ESS 9 of about 1,300 where by reward it is over 1,200).
    let ess = |i: usize| {
        e["candidates"][i]["estimates"][0]["effective_sample_size"]
            .as_f64()
            .expect("an ESS")
    };
    assert!(ess(1) < 0.5 * ess(0), "{} {}", ess(0), ess(1));
    let _ = std::fs::remove_dir_all(&dir);
}
