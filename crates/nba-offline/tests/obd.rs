//! The offline chain as `nba obd` and `nba backtest` use it, on a small
//! synthetic log in the Open Bandit Dataset's format: loaded, evaluated,
//! written as a recording, read back, its logged decisions evaluated and
//! reported.

use std::path::{Path, PathBuf};

use nba_core::estimators::{Estimator, Options};
use nba_core::{ShadowFigures, ShadowResult};
use nba_offline::obd::{ObdLogs, evaluate_obd, parse_time, write_recording};
use nba_offline::{
    CandidateLearning, CandidatePolicy, CandidateSpec, DecisionLog, InputFormat, LoggedDecisions,
    backtest_report_html, evaluate_candidates, raw_records,
};
use nba_pipeline::{BacktestConfig, Topic};

const HEADER: &str = ",timestamp,item_id,position,click,propensity_score,user_feature_0,user_feature_1,user_feature_2,user_feature_3";

/// A directory of its own for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nba-offline-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// A log of `rows` impressions over three items shown uniformly at random
/// (propensity 1/3, or `propensity` for the row `odd_row`): users "a" click
/// item 1 and users "b" item 2, every other time.
fn write_log(dir: &Path, log: &str, rows: usize, odd_row: Option<(usize, &str)>) {
    let path = dir.join(format!("{log}/all"));
    std::fs::create_dir_all(&path).expect("the log's directory");
    let mut text = format!("{HEADER}\n");
    for i in 0..rows {
        let (item, user) = (i % 3, if (i / 3) % 2 == 0 { "a" } else { "b" });
        let likes = (user == "a" && item == 1) || (user == "b" && item == 2);
        let click = u8::from(likes && (i / 6) % 2 == 0);
        let propensity = match odd_row {
            Some((row, p)) if row == i => p.to_owned(),
            _ => "0.3333333333333333".to_owned(),
        };
        let (min, sec) = (i / 60, i % 60);
        text.push_str(&format!(
            "{i},2019-11-24 00:{min:02}:{sec:02}.000000+00:00,{item},1,{click},{propensity},{user},x,y,z\n"
        ));
    }
    std::fs::write(path.join("all.csv"), text).expect("writes the log");
}

fn dataset(name: &str, odd_row: Option<(usize, &str)>) -> PathBuf {
    let dir = scratch(name);
    write_log(&dir, "random", 1_200, odd_row);
    write_log(&dir, "bts", 300, None);
    dir
}

#[test]
fn the_datasets_times_are_read_as_utc_milliseconds() {
    assert_eq!(
        parse_time("2019-11-24 00:00:34.762830+00:00"),
        Some(1_574_553_634_763)
    );
    assert_eq!(parse_time("1970-01-01 00:00:00Z"), Some(0));
    assert_eq!(parse_time("2019-11-24T00:00:34"), None);
}

#[test]
fn a_bad_propensity_refuses_the_load_unless_allowed_and_is_then_left_out() {
    let dir = dataset("bad-propensity", Some((7, "0")));
    let why = ObdLogs::load(&dir, "all", false).expect_err("a propensity of 0");
    assert!(why.contains("line 9"), "names the line: {why}");
    let logs = ObdLogs::load(&dir, "all", true).expect("allowed");
    assert_eq!(logs.random.len(), 1_199);
    assert!(logs.bad_propensities.warning().is_some());

    let missing = ObdLogs::load(&scratch("missing"), "all", false).expect_err("no files");
    assert!(missing.contains("run scripts/fetch-obd.sh"), "{missing}");
    let no_column = scratch("no-column");
    for log in ["random", "bts"] {
        std::fs::create_dir_all(no_column.join(format!("{log}/all"))).expect("dir");
        std::fs::write(no_column.join(format!("{log}/all/all.csv")), ",timestamp\n").expect("w");
    }
    let why = ObdLogs::load(&no_column, "all", false).expect_err("columns missing");
    assert!(why.contains("no column item_id"), "{why}");
}

#[test]
fn a_policy_that_shows_what_each_user_likes_is_estimated_above_uniform_random() {
    let logs = ObdLogs::load(&dataset("evaluate", None), "all", false).expect("loads");
    let report = evaluate_obd(&logs, 42, Options::default()).expect("evaluates");
    assert_eq!(
        (report.items, report.context_dim),
        (3, 6),
        "a bias and five values"
    );
    assert_eq!(report.evaluation_impressions, 600);
    let ips = |policy: &str| {
        report
            .candidates
            .iter()
            .find(|c| c.policy == policy)
            .and_then(|c| c.estimates.iter().find(|e| e.estimator == Estimator::Ips))
            .map(|e| e.value)
            .expect(policy)
    };
    let logged = report.logged_on_evaluation.value;
    assert!(
        (ips("uniform-random") - logged).abs() < 1e-12,
        "uniform is the logging policy"
    );
    assert!(
        ips("ridge-greedy") > 2.5 * ips("uniform-random"),
        "greedy {} against uniform {}",
        ips("ridge-greedy"),
        ips("uniform-random")
    );
}

#[test]
fn a_log_written_as_a_recording_reads_back_as_the_decisions_it_logged() {
    let dir = dataset("recording", None);
    let logs = ObdLogs::load(&dir, "all", false).expect("loads");
    let path = dir.join("random.avro");
    let written = write_recording(&logs.random, "random", logs.items(), &logs.encoder(), &path)
        .expect("writes");
    let clicks = logs.random.iter().filter(|i| i.click > 0.0).count();
    assert_eq!(written as usize, 3 * logs.random.len() + 2 * clicks);

    let file = std::fs::File::open(&path).expect("opens");
    let (mut logged, mut failure) = (LoggedDecisions::default(), None);
    let format = InputFormat::Recording {
        raw_topic: Topic::InteractionsRaw.default_name(),
        catalog_topic: Topic::Catalog.default_name(),
    };
    let raw = raw_records(file, format, &mut logged, &mut failure)
        .1
        .count();
    assert!(failure.is_none());
    assert_eq!(raw, logs.random.len() + clicks, "impressions and clicks");
    assert_eq!(logged.nbas.len(), logs.random.len());
    assert_eq!(logged.rewards.len(), clicks);
    assert!(
        logged
            .nbas
            .iter()
            .all(|n| (n.propensity - 1.0 / 3.0).abs() < 1e-12)
    );

    let candidates: Vec<(String, CandidatePolicy)> = ["random", "linucb"]
        .into_iter()
        .map(|spec| {
            let c = CandidateSpec::parse(spec).expect("a candidate");
            (c.label, CandidatePolicy::Bandit(c.config))
        })
        .collect();
    let evaluation = evaluate_candidates(
        DecisionLog {
            requests: &logged.requests,
            nbas: &logged.nbas,
            rewards: &logged.rewards,
            catalogs: None,
        },
        &candidates,
        0.0,
        Options::default(),
        CandidateLearning::Observed,
    )
    .expect("evaluates");
    let click_rate = clicks as f64 / logs.random.len() as f64;
    assert!((evaluation.logged_value - click_rate).abs() < 1e-12);
    let ips = |i: usize| {
        evaluation.candidates[i]
            .estimates
            .iter()
            .find(|e| e.estimator == Estimator::Ips)
            .map(|e| e.value)
            .expect("IPS")
    };
    assert!(
        ips(1) > ips(0),
        "LinUCB {} against random {}",
        ips(1),
        ips(0)
    );

    // The report of a run with nothing in it says so, and plots the candidates.
    let settings = nba_deployment::Deployment::example("retail", &[])
        .expect("retail")
        .settings;
    let run = nba_pipeline::backtest(
        std::iter::empty(),
        BacktestConfig::from_settings(&settings),
        &mut (),
    )
    .expect("runs");
    let page = backtest_report_html(&run, Some(&evaluation));
    assert!(page.contains("No decision and no reward in this run: nothing to plot."));
    assert!(page.contains("No decision was made: no latency to show."));
    assert!(page.contains("linucb ips") && page.contains("logged policy"));
    let without = backtest_report_html(&run, None);
    assert!(without.contains("no candidate was evaluated"));
    assert!(
        !without.contains("Shadow policies"),
        "the deployment has none"
    );

    // A shadow whose weights average 0.8 (their expectation is 1): its row
    // carries the warning.
    let mut figures = ShadowFigures::default();
    for i in 0..1_000 {
        figures.close(if i % 5 == 0 { 0.0 } else { 1.0 }, (i % 3 == 0).into());
    }
    let mut with_shadow = run.clone();
    with_shadow.shadows = vec![ShadowResult::new("explorer", figures)];
    let page = backtest_report_html(&with_shadow, None);
    assert!(page.contains("Shadow policies") && page.contains("<td>explorer</td>"));
    assert!(page.contains("IPS and SNIPS differ"), "the caveat is shown");
}
