//! The three stages wired through topics of librdkafka's mock cluster (a real
//! Kafka-protocol broker in process): one next-best-action per decision request,
//! malformed records in the dead-letter topic, nothing lost; a deployment with
//! non-default settings and a catalog change decides the same live and in a
//! backtest of the recording.

use std::time::{Duration, Instant};

use clap::Parser;
use nba_core::{DecisionRequest, NextBestAction};
use nba_deployment::{Deployment, Settings};
use nba_kafka::{
    AuditReport, KafkaArgs, OpsArgs, StartAt, audit, produce, publish_catalog, record, replay,
    run_stage,
};
use nba_pipeline::{AggregatorStage, ConsumerStage, OutputRecord, Topic, UpdaterStage, backtest};
use nba_sim::{SimConfig, Simulator, malformed_kinds, malformed_records};
use rdkafka::mocking::MockCluster;
use tokio::sync::watch;

/// The tests here each run several consumer groups on two cores; run one at a
/// time so that none is starved into session timeouts by the other.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How long one test may run before it is taken for hung.
const HUNG_AFTER: Duration = Duration::from_secs(600);

/// Runs a test on a two-worker runtime of its own, one test at a time, its
/// runtime's shutdown included (dropping a consumer leaves its group, which
/// can take a while). A test still running after [`HUNG_AFTER`] prints every
/// thread's stack (with gdb, where installed) and aborts the binary, so that a
/// hang fails the suite where it is rather than at CI's time limit.
fn on_runtime(test: impl std::future::Future<Output = ()>) {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let name = std::thread::current().name().unwrap_or("a test").to_owned();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watching = std::sync::Arc::clone(&done);
    std::thread::spawn(move || {
        let deadline = Instant::now() + HUNG_AFTER;
        while Instant::now() < deadline {
            if watching.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("{name} has run for {HUNG_AFTER:?}: taken for hung; every thread's stack:");
        let gdb = std::process::Command::new("gdb")
            .args(["-p", &std::process::id().to_string(), "-batch"])
            .args(["-ex", "thread apply all bt"])
            .status();
        if let Err(e) = gdb {
            eprintln!("(no stacks: cannot run gdb: {e})");
        }
        std::process::abort();
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(test);
    drop(runtime);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    kafka: KafkaArgs,
}

fn args(brokers: &str) -> KafkaArgs {
    Cli::parse_from(["test", "--brokers", brokers]).kafka
}

fn retail() -> Settings {
    Deployment::example("retail", &[]).expect("retail").settings
}

fn raw(key: String, payload: Vec<u8>, t: Option<i64>) -> OutputRecord {
    OutputRecord {
        topic: Topic::InteractionsRaw,
        key: key.into_bytes(),
        payload: Some(payload),
        partition: None,
        headers: Vec::new(),
        timestamp: t,
    }
}

/// `n` simulated raw interactions of `customers` customers, each sent at its
/// event time.
fn simulated_raw(settings: &Settings, customers: usize, seed: u64, n: usize) -> Vec<OutputRecord> {
    let mut sim =
        Simulator::new(settings, &SimConfig { customers, seed }, false).expect("simulates");
    (0..n)
        .map(|_| {
            let e = sim.next_event();
            let payload = nba_schema::encode(&e).expect("encodes");
            raw(e.customer_id, payload, Some(e.timestamp))
        })
        .collect()
}

/// A decision request as a record of its topic.
fn request_record(r: &DecisionRequest) -> OutputRecord {
    OutputRecord {
        topic: Topic::DecisionRequests,
        key: r.customer_id.clone().into_bytes(),
        payload: Some(nba_schema::encode(r).expect("encodes")),
        partition: None,
        headers: Vec::new(),
        timestamp: Some(r.timestamp),
    }
}

async fn audit_until_settled(
    args: &KafkaArgs,
    settings: &Settings,
    raw: u64,
    dead: u64,
) -> AuditReport {
    audit_until(args, settings, Some((raw, dead)), |r| r.problems.is_empty()).await
}

/// Audits the topics (expecting `raw` raw records and dead letters, if
/// given) until `done` says so or two minutes passed; the last report.
async fn audit_until(
    args: &KafkaArgs,
    settings: &Settings,
    expect: Option<(u64, u64)>,
    done: impl Fn(&AuditReport) -> bool,
) -> AuditReport {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (a, settings) = (args.clone(), settings.clone());
        let report = tokio::task::spawn_blocking(move || {
            audit(&a, &settings, expect.map(|e| e.0), expect.map(|e| e.1))
        })
        .await
        .expect("audit task")
        .expect("audit reads the topics");
        if done(&report) || Instant::now() > deadline {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[test]
fn stages_through_kafka_answer_every_request_once_and_dead_letter_bad_records() {
    on_runtime(async {
        let cluster = MockCluster::new(1).expect("mock cluster");
        for t in Topic::ALL {
            cluster.create_topic(t.default_name(), 3, 1).expect("topic");
        }
        let args = args(&cluster.bootstrap_servers());
        let settings = retail();

        // 5,000 simulated interactions, some with headers nba does not
        // expect (an unreadable nba.origin among them), in batches of every
        // codec; a record of every bad kind, and a tombstone.
        let mut records = simulated_raw(&settings, 200, 42, 5_000);
        for r in records.iter_mut().step_by(7) {
            r.headers
                .push(("nba.origin", b"\xff/not/an/origin".to_vec()));
            r.headers.push(("x-junk", vec![0, 0xff, 0xfe]));
        }
        let mut total = 0;
        let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
        for (codec, batch) in codecs.iter().zip(records.chunks(1_000)) {
            let compressed = Cli::parse_from([
                "test",
                "--brokers",
                &cluster.bootstrap_servers(),
                "-X",
                &format!("compression.codec={codec}"),
            ])
            .kafka;
            let n = produce(&compressed, batch.to_vec())
                .await
                .expect("produced");
            assert_eq!(n, batch.len() as u64, "{codec}");
            total += n;
        }
        let mut bad: Vec<OutputRecord> =
            malformed_records(malformed_kinds(&settings).len(), &settings)
                .into_iter()
                .map(|(k, v)| raw(k, v, None))
                .collect();
        bad.push(OutputRecord {
            payload: None,
            ..raw("tombstone".into(), Vec::new(), None)
        });
        let bad_kinds = bad.len() as u64;
        total += produce(&args, bad).await.expect("produced");
        assert_eq!(total, 5_000 + bad_kinds);

        let (stop, stopped) = watch::channel(false);
        let until_stopped = || {
            let mut rx = stopped.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let consumer = tokio::spawn({
            let (a, s, stage) = (
                args.clone(),
                until_stopped(),
                ConsumerStage::new(settings.intake()),
            );
            async move { run_stage(stage, &a, &OpsArgs::default(), s).await }
        });
        let aggregator = tokio::spawn({
            let (a, s) = (args.clone(), until_stopped());
            let stage = AggregatorStage::new(settings.aggregator()).expect("valid");
            async move { run_stage(stage, &a, &OpsArgs::default(), s).await }
        });
        let metrics_addr = free_local_addr();
        let ops = OpsArgs {
            metrics_addr: Some(metrics_addr),
            ..OpsArgs::default()
        };
        let updater = tokio::spawn({
            let (a, s) = (args.clone(), until_stopped());
            let stage = UpdaterStage::new(settings.updater(None)).expect("valid");
            async move { run_stage(stage, &a, &ops, s).await }
        });

        let report = audit_until_settled(&args, &settings, total, bad_kinds).await;
        // The scrape is re-rendered every second.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let (status, _) = http_get(metrics_addr, "/healthz").await;
        assert_eq!(status, 200);
        let (status, _) = http_get(metrics_addr, "/readyz").await;
        assert_eq!(status, 200);
        let (status, body) = http_get(metrics_addr, "/metrics").await;
        assert_eq!(status, 200);
        let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
            .expect("/metrics is Prometheus text");
        let sample = |metric: &str, label: Option<(&str, &str)>| {
            scrape
                .samples
                .iter()
                .find(|s| {
                    s.metric == metric && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v))
                })
                .map(|s| s.value.clone())
        };
        let counter = |metric: &str| match sample(metric, None) {
            Some(prometheus_parse::Value::Counter(v)) => v,
            other => panic!("{metric}: {other:?}\n{body}"),
        };
        assert_eq!(
            counter("nba_records_in_total"),
            report.decision_requests as f64
        );
        assert_eq!(
            counter("nba_records_out_total"),
            report.next_best_actions as f64
        );
        assert_eq!(
            counter("nba_decisions_total"),
            report.next_best_actions as f64
        );
        assert_eq!(counter("nba_dead_letters_total"), 0.0);
        let count_of = |metric: &str, label: (&str, &str)| match sample(metric, Some(label)) {
            Some(prometheus_parse::Value::Histogram(buckets)) => {
                buckets.last().map_or(0.0, |b| b.count)
            }
            other => panic!("{metric}: {other:?}\n{body}"),
        };
        let decisions = report.next_best_actions as f64;
        assert_eq!(
            count_of("nba_step_latency_seconds", ("step", "decision")),
            decisions
        );
        assert_eq!(
            count_of("nba_step_latency_seconds", ("step", "decode")),
            decisions
        );
        assert_eq!(
            count_of(
                "nba_produce_ack_latency_seconds",
                ("topic", "nba.next-best-actions")
            ),
            decisions
        );
        assert_eq!(
            count_of(
                "nba_input_to_publication_latency_seconds",
                ("topic", "nba.decision-requests")
            ),
            decisions
        );
        assert!(body.contains("# TYPE nba_consumer_lag gauge"), "{body}");
        let phase = |body: &str, phase: &str| {
            let line = format!("nba_stage_phase{{stage=\"model-updater\",phase=\"{phase}\"}} ");
            body.lines()
                .find_map(|l| l.strip_prefix(line.as_str()))
                .map(str::to_owned)
        };
        assert_eq!(phase(&body, "running").as_deref(), Some("1"), "{body}");
        assert_eq!(phase(&body, "draining").as_deref(), Some("0"), "{body}");
        stop.send(true).expect("stages listen");
        let (_, consumer) = consumer.await.expect("task").expect("consumer ran");
        let (_, aggregator) = aggregator.await.expect("task").expect("aggregator ran");
        let (_, updater) = updater.await.expect("task").expect("updater ran");
        // Stopped, it says so, and is not ready.
        let (status, text) = http_get(metrics_addr, "/readyz").await;
        assert_eq!((status, text.as_str()), (503, "not ready: stopping\n"));
        let (_, body) = http_get(metrics_addr, "/metrics").await;
        assert_eq!(phase(&body, "stopping").as_deref(), Some("1"), "{body}");
        assert_eq!(phase(&body, "running").as_deref(), Some("0"), "{body}");

        assert!(report.problems.is_empty(), "{report:#?}");
        assert_eq!(report.raw, total);
        assert_eq!(report.interactions, 5_000);
        assert!(report.decision_requests > 500, "{report:#?}");
        assert_eq!(report.next_best_actions, report.decision_requests);
        assert_eq!(report.dead_letters.get("consumer"), Some(&bad_kinds));
        assert_eq!(consumer.counters.dead_lettered, bad_kinds);
        assert_eq!(consumer.counters.records_out, 5_000);
        assert_eq!(aggregator.counters.records_in, 5_000);
        assert_eq!(updater.counters.records_out, report.next_best_actions);
    });
}

/// Two model-updaters in one group, each deciding for its own partitions,
/// publish what they learn to the model topic and merge each other's: both end
/// with the same model, which has learned every outcome either of them saw.
#[test]
fn two_model_updaters_learn_as_one_through_the_model_topic() {
    on_runtime(async {
        let cluster = MockCluster::new(1).expect("mock cluster");
        for t in Topic::ALL {
            cluster.create_topic(t.default_name(), 3, 1).expect("topic");
        }
        let args = args(&cluster.bootstrap_servers());
        let settings = retail();
        let (stop_a, stopped_a) = watch::channel(false);
        let (stop_b, stopped_b) = watch::channel(false);
        let until = |rx: &watch::Receiver<bool>| {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let instance = |id: &str| {
            UpdaterStage::new(settings.updater(Some(id.to_owned())))
                .expect("valid")
                .with_publish_interval(Duration::from_millis(100))
        };
        let a = tokio::spawn({
            let (args, s, stage) = (args.clone(), until(&stopped_a), instance("a"));
            async move { run_stage(stage, &args, &OpsArgs::default(), s).await }
        });
        let b = tokio::spawn({
            let (args, s, stage) = (args.clone(), until(&stopped_b), instance("b"));
            async move { run_stage(stage, &args, &OpsArgs::default(), s).await }
        });
        // Let both join the group before the requests come.
        tokio::time::sleep(Duration::from_secs(5)).await;

        // 3,000 requests of 300 customers over ten hours of event time: the 30-minute
        // attribution window closes most of them with the default reward.
        let n = 3_000u64;
        let requests = (0..n).map(|i| {
            let mut context = vec![0.0; settings.dim()];
            context[0] = 1.0;
            context[1 + (i % 5) as usize] = 1.0;
            let r = DecisionRequest {
                decision_id: format!("d{i}"),
                customer_id: format!("c{}", i % 300),
                timestamp: 1_767_225_600_000 + i as i64 * 12_000,
                channel: "email".into(),
                context,
                candidates: vec![
                    "discount_10".into(),
                    "free_shipping".into(),
                    "loyalty_points".into(),
                ],
                // The pair features the deployment declares, one row each.
                action_context: (0..3)
                    .map(|k| {
                        (0..settings.action_dim)
                            .map(|j| if j == 0 { 1.0 } else { 0.1 * (k + j) as f64 })
                            .collect()
                    })
                    .collect(),
            };
            request_record(&r)
        });
        assert_eq!(produce(&args, requests).await.expect("produced"), n);

        audit_until(&args, &settings, None, |r| r.next_best_actions >= n).await;
        // Deltas go out every 100 ms; give them time to cross, then stop one
        // instance after the other so the second also merges the first's last words.
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop_a.send(true).expect("listens");
        let (a, _) = a.await.expect("task").expect("a ran");
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop_b.send(true).expect("listens");
        let (b, _) = b.await.expect("task").expect("b ran");

        let (sa, sb) = (a.stats(), b.stats());
        assert!(sa.decisions + sb.decisions >= n, "{sa:?} {sb:?}");
        // Normally both instances get partitions and exchange deltas both ways; if
        // the group gave one of them everything, the other still merges its deltas.
        assert!(
            sa.deltas_published + sb.deltas_published > 0,
            "{sa:?} {sb:?}"
        );
        assert!(sa.deltas_merged + sb.deltas_merged > 0, "{sa:?} {sb:?}");
        let (ma, mb) = (a.updater().bandit(), b.updater().bandit());
        let learned =
            sa.rewards_joined + sa.rewards_defaulted + sb.rewards_joined + sb.rewards_defaulted;
        assert!(learned > n / 2, "{sa:?} {sb:?}");
        assert_eq!(ma.version(), learned);
        assert_eq!(mb.version(), learned);
        assert_eq!(ma.actions(), mb.actions());
        for action in ma.actions() {
            let (aa, ab) = ma.sums(action).expect("learned");
            let (ba, bb) = mb.sums(action).expect("learned");
            for (x, y) in aa.iter().chain(&ab).zip(ba.iter().chain(&bb)) {
                assert!(
                    (x - y).abs() <= 1e-9 * x.abs().max(1.0),
                    "{action}: {x} vs {y}"
                );
            }
        }
    });
}

/// A local address nobody listens on (bound and released).
fn free_local_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("bound")
}

/// A plain HTTP/1.1 GET: the status code and the body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("sends");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("reads");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    (status, body.to_owned())
}

/// Asks `path` of `addr` every 100 ms (a server not up yet too) until `ok`
/// holds of the status and body; panics after 60 s saying what it last got.
async fn wait_for_page(
    addr: std::net::SocketAddr,
    path: &str,
    ok: impl Fn(u16, &str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut last = None;
    while std::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            let (status, body) = http_get(addr, path).await;
            if ok(status, &body) {
                return body;
            }
            last = Some((status, body));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{addr}{path} never answered as expected; last: {last:?}");
}

/// A deployment unlike the defaults: Thompson sampling with a discounted
/// model, challenged on 40% of the customers by LinUCB with a sliding
/// window, other feature windows, a context with the hour, the day and a
/// ratio, an action context, caps, and four actions of which one is retired
/// and one added by a catalog version at `CHANGE_AT`.
const NON_DEFAULT: &str = r#"
name = "shop"
[vocabulary]
channels = ["web", "app", "store", "call_centre", "email"]
categories = ["electronics", "fashion", "home", "beauty"]
event_types = ["session_start", "page_view", "search", "add_to_cart", "purchase", "click", "dismiss"]
triggers = ["session_start"]
[vocabulary.outcomes]
click = { reward = 1.0 }
dismiss = { reward = 0.0, negative = true }
[intake]
max_ahead_of_record = "2m"
[features]
windows = ["2h", "24h", "7d"]
breakdown_window = "24h"
allowed_lateness = "30m"
context = "bias,channel,recency:2h,frequency:7d,categories,hour_of_day,ratio:click/session_start"
action_context = "bias,affinity:category,contacted:1d"
[policy]
name = "thompson"
thompson_scale = 0.3
forgetting = "discounted"
bucket = "30m"
gamma = 0.9
attribution_window = "20m"
seed = 11
residual = "context"
residual_lambda = 7.5
objective = "value"
exploration_floor = 0.02
exploration_fade = 50
[experiment]
name = "window-trial"
champion = "thompson"
[[experiment.challenger]]
name = "linucb-window"
share = 0.4
policy = { name = "linucb", alpha = 0.8, forgetting = "window", buckets = 6 }
[[experiment.shadow]]
name = "greedy-shadow"
policy = { name = "epsilon-greedy", epsilon = 0.1 }
[contact]
cooldown_after_negative = "2d"
[[contact.cap]]
scope = "overall"
max = 4
per = "24h"
[[contact.cap]]
scope = "action"
max = 2
per = "24h"
[catalog.tags]
category = ["electronics", "fashion", "home", "beauty"]
[[action]]
id = "discount_10"
value = 8.0
[action.channels]
web = {}
app = {}
store = {}
call_centre = {}
email = {}
[[action]]
id = "recommend_fashion"
value = 20.0
tags = { category = "fashion" }
[action.channels]
web = {}
app = {}
email = {}
[[action]]
id = "recommend_home"
value = 30.0
tags = { category = "home" }
[action.channels]
web = {}
app = {}
store = {}
[[action]]
id = "loyalty_points"
value = 12.0
[action.channels]
store = {}
call_centre = {}
email = {}
[simulation]
channels = { app = 0.4, web = 0.3, store = 0.1, call_centre = 0.1, email = 0.1 }
browse = { page_view = 0.55, search = 0.15, add_to_cart = 0.2, purchase = 0.1 }
categorised = ["page_view", "add_to_cart", "purchase"]
purchase = "purchase"
response = "click"
[[simulation.response_rule]]
tagged = "category"
base = 0.03
lift = [{ when = "prefers category", by = 0.35 }]
"#;

/// Event time from which the catalog version below is in force: a day into
/// the simulated traffic.
const CHANGE_AT: i64 = 1_767_225_600_000 + 86_400_000;

/// The catalog version published while the pipeline runs: `recommend_home`
/// retired, `recommend_beauty` added.
fn catalog_change(settings: &Settings) -> nba_core::CatalogVersion {
    let mut v = settings.catalog_version(1, CHANGE_AT);
    v.actions.retain(|a| a.id != "recommend_home");
    let mut beauty = v
        .actions
        .iter()
        .find(|a| a.id == "recommend_fashion")
        .expect("fashion")
        .clone();
    beauty.id = "recommend_beauty".into();
    beauty.tags.insert("category".into(), "beauty".into());
    v.actions.push(beauty);
    v
}

/// Every record of `topics` from the beginning, through `nba record`'s
/// code and read back from the recording it writes (checking it kept them
/// all).
async fn recorded(args: &KafkaArgs, topics: &[&str]) -> Vec<nba_schema::RecordedRecord> {
    let (a, topics) = (
        args.clone(),
        topics.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>(),
    );
    let (kept, bytes) = tokio::task::spawn_blocking(move || {
        record(&a, &topics, StartAt::Beginning, None, Vec::new())
    })
    .await
    .expect("record task")
    .expect("recorded");
    let recorded: Vec<nba_schema::RecordedRecord> = nba_schema::read_recording(bytes.as_slice())
        .expect("a recording")
        .collect::<Result<_, _>>()
        .expect("readable");
    assert_eq!(kept as usize, recorded.len());
    recorded
}

/// What [`live_then_backtest`] saw: the live run's audit and decisions, its
/// recorded raw records, the backtest's run, and the broker's address.
struct SameDecisions {
    report: AuditReport,
    live: Vec<NextBestAction>,
    raw_records: Vec<nba_schema::RecordedRecord>,
    run: nba_pipeline::BacktestRun,
    args: KafkaArgs,
    dir: std::path::PathBuf,
    /// The broker, alive as long as this.
    _cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
}

/// A live run through the broker of `deployment` (a file like
/// [`NON_DEFAULT`]), with a catalog change and events sent further before
/// their event time than its intake allows, recorded, then backtested in
/// one process from the same file: the same refusals and next-best-actions,
/// bit for bit (action, propensity, scores, model version, arm). One
/// partition per topic, so the live stages see one total order of records,
/// as the backtest does. The retired action is never chosen after the
/// change, the added one is.
async fn live_then_backtest(name: &str, deployment: &str) -> SameDecisions {
    let dir = std::env::temp_dir().join(format!("nba-same-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("shop.toml");
    std::fs::write(&file, deployment).expect("written");
    let settings = Deployment::load(&file, &[]).expect("checks").settings;
    let cluster = MockCluster::new(1).expect("mock cluster");
    for t in Topic::ALL {
        cluster.create_topic(t.default_name(), 1, 1).expect("topic");
    }
    cluster.create_topic("nba.replayed", 1, 1).expect("topic");
    let args = args(&cluster.bootstrap_servers());
    // Published before the stages start, in force from a day into the traffic.
    publish_catalog(&args, &catalog_change(&settings))
        .await
        .expect("published");
    let mut sim = Simulator::new(
        &settings,
        &SimConfig {
            customers: 100,
            seed: 3,
        },
        false,
    )
    .expect("simulates");
    // One in 600 sent five minutes before its event time: within the default
    // bound of ten, beyond this deployment's two.
    let records: Vec<OutputRecord> = (0..6_000)
        .map(|i| {
            let e = sim.next_event();
            let payload = nba_schema::encode(&e).expect("encodes");
            let sent = e.timestamp - if i % 600 == 599 { 300_000 } else { 0 };
            raw(e.customer_id, payload, Some(sent))
        })
        .collect();
    produce(&args, records).await.expect("produced");

    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    for stage in 0..3 {
        let (a, mut rx, settings) = (args.clone(), stopped.clone(), settings.clone());
        tasks.push(tokio::spawn(async move {
            let s = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            let ops = OpsArgs::default();
            match stage {
                0 => run_stage(ConsumerStage::new(settings.intake()), &a, &ops, s)
                    .await
                    .map(|_| ()),
                1 => {
                    let stage = AggregatorStage::new(settings.aggregator()).expect("valid");
                    run_stage(stage, &a, &ops, s).await.map(|_| ())
                }
                _ => {
                    let stage = UpdaterStage::new(settings.updater(None)).expect("valid");
                    run_stage(stage, &a, &ops, s).await.map(|_| ())
                }
            }
        }));
    }
    let report = audit_until_settled(&args, &settings, 6_000, 10).await;
    stop.send(true).expect("stages listen");
    for t in tasks {
        t.await.expect("task").expect("stage ran");
    }
    assert!(report.problems.is_empty(), "{report:#?}");

    let recorded = recorded(
        &args,
        &[
            "nba.interactions.raw",
            "nba.next-best-actions",
            "nba.catalog",
        ],
    )
    .await;
    assert_eq!(recorded[0].topic, "nba.catalog", "the catalog comes first");
    let raw_records: Vec<_> = recorded
        .iter()
        .filter(|r| r.topic == "nba.interactions.raw")
        .cloned()
        .collect();
    assert_eq!(raw_records.len(), 6_000);
    let live: Vec<NextBestAction> = recorded
        .iter()
        .filter(|r| r.topic == "nba.next-best-actions")
        .map(|r| nba_schema::decode(r.value.as_deref().expect("a value")).expect("an NBA"))
        .collect();
    assert!(live.len() > 300, "{}", live.len());
    let after: Vec<&NextBestAction> = live.iter().filter(|d| d.timestamp >= CHANGE_AT).collect();
    let before = live.len() - after.len();
    assert!(
        before > 50 && after.len() > 50,
        "{before} / {}",
        after.len()
    );
    assert!(
        after.iter().all(|d| d.action_id != "recommend_home"),
        "a retired action is never chosen again"
    );
    assert!(after.iter().any(|d| d.action_id == "recommend_beauty"));
    assert!(
        live.iter()
            .filter(|d| d.timestamp < CHANGE_AT)
            .all(|d| d.action_id != "recommend_beauty"),
        "not before it exists"
    );

    let mut decisions = Vec::new();
    let mut cfg = nba_pipeline::BacktestConfig::from_settings(&settings);
    cfg.catalog_versions = recorded
        .iter()
        .filter(|r| r.topic == "nba.catalog")
        .map(|r| nba_schema::decode(r.value.as_deref().expect("a value")).expect("a version"))
        .collect();
    let run = backtest(
        raw_records
            .iter()
            .cloned()
            .map(nba_pipeline::RawRecord::from),
        cfg,
        &mut decisions,
    )
    .expect("valid settings");
    assert_eq!(run.catalog_versions, 1);
    assert_eq!(run.dead_lettered, 10, "the same events refused");
    assert!(
        run.first_rejection
            .as_deref()
            .is_some_and(|r| r.contains("intake.max_ahead_of_record (2m)")),
        "{:?}",
        run.first_rejection
    );
    assert_eq!(run.decision_count, live.len() as u64);
    assert_eq!(
        decisions, live,
        "the backtest decides exactly as the live run did"
    );
    SameDecisions {
        report,
        live,
        raw_records,
        run,
        args,
        dir,
        _cluster: cluster,
    }
}

/// [`live_then_backtest`] of [`NON_DEFAULT`]: a champion and a challenger
/// with a shadow, each arm counted alike by the backtest and the audit. The
/// recording also replays to another topic unchanged.
#[test]
fn a_backtest_of_a_live_recording_makes_the_same_decisions() {
    on_runtime(async {
        let SameDecisions {
            report,
            live,
            raw_records,
            run,
            args,
            dir,
            _cluster,
        } = live_then_backtest("challenger", NON_DEFAULT).await;
        // Both arms decided, each under its own policy, and the backtest
        // and the audit of the topics count each arm's decisions as the live
        // run made them.
        let arms = ["thompson", "linucb-window"];
        for results in [&run.experiment, &report.experiment] {
            assert_eq!(
                results.iter().map(|a| a.arm.as_str()).collect::<Vec<_>>(),
                arms
            );
        }
        for (i, (arm, result)) in arms.iter().zip(&run.experiment).enumerate() {
            let shown: Vec<_> = live
                .iter()
                .filter(|d| d.experiment_arm == *arm && !d.action_id.is_empty())
                .collect();
            assert!(shown.len() > 50, "{arm}: {}", shown.len());
            assert_eq!(result.figures.decisions, shown.len() as u64);
            assert_eq!(report.experiment[i].figures.decisions, shown.len() as u64);
            let policies: std::collections::BTreeSet<_> = shown
                .iter()
                .map(|d| d.policy.split(['(', ',']).next().unwrap_or_default())
                .filter(|p| *p != "mandatory")
                .collect();
            assert_eq!(policies.len(), 1, "{arm}: {policies:?}");
            assert!(
                shown
                    .iter()
                    .filter(|d| d.policy != "mandatory")
                    .all(|d| d.shadows.len() == 1 && d.shadows[0].name == "greedy-shadow"),
                "every model decision carries the shadow's view"
            );
        }
        assert_eq!(run.shadows.len(), 1);
        assert!(run.shadows[0].figures.scored > 100, "{:?}", run.shadows);

        // Replay the raw part to another topic and record it back: unchanged.
        let mut w = nba_schema::RecordingWriter::new(Vec::new()).expect("starts");
        for r in &raw_records {
            w.append(r).expect("appends");
        }
        let raw_only = w.finish().expect("finishes");
        let sent = replay(&args, raw_only.as_slice(), Some("nba.replayed"), 0.0)
            .await
            .expect("replayed");
        assert_eq!(sent, 6_000);
        let back = recorded(&args, &["nba.replayed"]).await;
        assert_eq!(back.len(), raw_records.len());
        for (b, r) in back.iter().zip(&raw_records) {
            assert_eq!(
                (&b.key, &b.value, b.timestamp),
                (&r.key, &r.value, r.timestamp)
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// [`NON_DEFAULT`] in apprentice mode: a baseline by the customer's most
/// frequent category decides for half the customers and the bandit for the
/// rest, and the backtest decides as the live model-updater did, arm and
/// rule included. The traffic is simulated ahead of the run, so no outcome
/// answers a decision and the guardrail holds; its switches are compared
/// with the stages' in-process (nba-pipeline's backtest tests).
#[test]
fn a_backtest_of_a_live_recording_decides_as_the_live_baseline_and_bandit_did() {
    on_runtime(async {
        let challenger = &NON_DEFAULT[NON_DEFAULT.find("[experiment]").expect("an experiment")
            ..NON_DEFAULT.find("[contact]").expect("a contact policy")];
        let apprentice = NON_DEFAULT.replace(
            challenger,
            "[experiment]\nname = \"apprentice\"\nchampion = \"thompson\"\n[experiment.baseline]\nrule = \"affinity:category\"\ntrial_share = 0.5\ntakeover_share = 0.8\nwindow = 60\nmin_outcomes = 20\nfallback_after = \"1h\"\n",
        );
        let same = live_then_backtest("baseline", &apprentice).await;
        let guardrail = same.run.guardrail.as_ref().expect("a guardrail");
        assert_eq!(guardrail.status.bandit_share, 0.5, "{guardrail:?}");
        for (arm, policy) in [("thompson", "thompson"), ("baseline", "baseline:affinity")] {
            let decided = same
                .live
                .iter()
                .filter(|d| d.experiment_arm == arm && d.policy.starts_with(policy))
                .count();
            assert!(decided > 50, "{arm} decided {decided}");
        }
        let _ = std::fs::remove_dir_all(&same.dir);
    });
}

/// A catalog version published while two feature-aggregators and two
/// model-updaters run (two partitions) is taken by every instance and is in
/// force from its event time on: every request from then on lists the added
/// action on its channels and never the retired one, every request before
/// lists neither the added one, and no decision after it picks the retired
/// action, on either partition.
#[test]
fn every_instance_takes_a_catalog_version_at_its_event_time() {
    on_runtime(async {
        let settings = Deployment::from_text(NON_DEFAULT, None, std::path::Path::new("."), &[])
            .expect("checks")
            .settings;
        let cluster = MockCluster::new(1).expect("mock cluster");
        for t in Topic::ALL {
            cluster.create_topic(t.default_name(), 2, 1).expect("topic");
        }
        let args = Cli::parse_from([
            "test",
            "--brokers",
            &cluster.bootstrap_servers(),
            "-X",
            "session.timeout.ms=6000",
            "-X",
            "heartbeat.interval.ms=500",
        ])
        .kafka;
        let (stop, stopped) = watch::channel(false);
        let until = || {
            let mut rx = stopped.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let ops = OpsArgs::default();
        let consumer = tokio::spawn({
            let (a, s, stage, ops) = (
                args.clone(),
                until(),
                ConsumerStage::new(settings.intake()),
                ops.clone(),
            );
            async move { run_stage(stage, &a, &ops, s).await.map(|_| ()) }
        });
        let mut aggregators = Vec::new();
        let mut updaters = Vec::new();
        let mut pages = Vec::new();
        let with_metrics = || {
            let addr = free_local_addr();
            let ops = OpsArgs {
                metrics_addr: Some(addr),
                ..ops.clone()
            };
            (addr, ops)
        };
        for _ in 0..2 {
            let (a, s, (addr, o)) = (args.clone(), until(), with_metrics());
            pages.push(addr);
            let stage = AggregatorStage::new(settings.aggregator()).expect("valid");
            aggregators.push(tokio::spawn(
                async move { run_stage(stage, &a, &o, s).await },
            ));
            let (a, s, (addr, o)) = (args.clone(), until(), with_metrics());
            pages.push(addr);
            let stage = UpdaterStage::new(settings.updater(None)).expect("valid");
            updaters.push(tokio::spawn(
                async move { run_stage(stage, &a, &o, s).await },
            ));
        }
        // Every instance has joined and caught up (it is running); then the
        // version is published, while they run, ahead of the event time it
        // takes effect at, and every instance has taken it before any event.
        for addr in &pages {
            wait_for_page(*addr, "/readyz", |status, _| status == 200).await;
        }
        publish_catalog(&args, &catalog_change(&settings))
            .await
            .expect("published");
        for addr in &pages {
            wait_for_page(*addr, "/metrics", |_, body| {
                body.lines()
                    .any(|l| l.starts_with("nba_catalog_versions_total{") && l.ends_with("} 1"))
            })
            .await;
        }
        let records = simulated_raw(&settings, 120, 5, 6_000);
        produce(&args, records).await.expect("produced");
        let report = audit_until_settled(&args, &settings, 6_000, 0).await;
        stop.send(true).expect("stages listen");
        consumer.await.expect("task").expect("consumer ran");
        for a in aggregators {
            let (stage, _) = a.await.expect("task").expect("aggregator ran");
            let counts = stage.aggregator().counts();
            assert_eq!(counts.catalog_versions, 1, "every aggregator took it");
            assert!(
                stage
                    .aggregator()
                    .catalog_at(CHANGE_AT)
                    .get("recommend_beauty")
                    .is_some()
            );
        }
        for u in updaters {
            let (stage, _) = u.await.expect("task").expect("updater ran");
            assert_eq!(stage.stats().catalog_versions, 1, "every updater took it");
            assert!(
                stage
                    .updater()
                    .catalog_at(CHANGE_AT - 1)
                    .get("recommend_beauty")
                    .is_none()
            );
        }
        assert!(report.problems.is_empty(), "{report:#?}");

        let recorded = recorded(&args, &["nba.decision-requests", "nba.next-best-actions"]).await;
        let mut offered_after = [0u64; 2];
        let mut chosen_after = [0u64; 2];
        for r in &recorded {
            let p = usize::try_from(r.partition).expect("a partition");
            let value = r.value.as_deref().expect("a value");
            if r.topic == "nba.decision-requests" {
                let q: DecisionRequest = nba_schema::decode(value).expect("a request");
                let lists = |a: &str| q.candidates.iter().any(|c| c == a);
                if q.timestamp < CHANGE_AT {
                    assert!(
                        !lists("recommend_beauty"),
                        "{} before it exists",
                        q.decision_id
                    );
                } else {
                    assert!(
                        !lists("recommend_home"),
                        "{} after its retirement",
                        q.decision_id
                    );
                    if ["web", "app", "email"].contains(&q.channel.as_str()) {
                        assert!(
                            lists("recommend_beauty"),
                            "{} on {}",
                            q.decision_id,
                            q.channel
                        );
                        offered_after[p] += 1;
                    }
                }
            } else {
                let d: NextBestAction = nba_schema::decode(value).expect("a decision");
                if d.timestamp >= CHANGE_AT {
                    assert_ne!(d.action_id, "recommend_home", "{}", d.decision_id);
                    chosen_after[p] += u64::from(d.action_id == "recommend_beauty");
                }
            }
        }
        assert!(
            offered_after.iter().all(|n| *n > 20) && chosen_after.iter().all(|n| *n > 0),
            "on both partitions: offered {offered_after:?}, chosen {chosen_after:?}"
        );
    });
}

/// Decision requests whose context is `extra` entries longer than the
/// deployment's, numbered from `first`.
fn requests_for(
    settings: &Settings,
    first: u64,
    n: u64,
    extra: usize,
) -> impl Iterator<Item = OutputRecord> {
    let (dim, action_dim) = (settings.dim(), settings.action_dim);
    (first..first + n).map(move |i| {
        let r = DecisionRequest {
            decision_id: format!("d{i}"),
            customer_id: format!("c{i}"),
            timestamp: 1_767_225_600_000 + i as i64 * 1_000,
            channel: "email".into(),
            context: vec![0.5; dim + extra],
            candidates: vec!["discount_10".into(), "free_shipping".into()],
            action_context: vec![vec![1.0; action_dim]; 2],
        };
        request_record(&r)
    })
}

#[test]
fn requests_of_another_deployment_stop_the_updater_once_without_losing_them() {
    on_runtime(async {
        let cluster = MockCluster::new(1).expect("mock cluster");
        for t in Topic::ALL {
            cluster.create_topic(t.default_name(), 1, 1).expect("topic");
        }
        let args = args(&cluster.bootstrap_servers());
        let settings = retail();
        let stage = UpdaterStage::new(settings.updater(None)).expect("valid");
        let run = tokio::spawn({
            let args = args.clone();
            async move { run_stage(stage, &args, &OpsArgs::default(), std::future::pending()).await }
        });
        let settled = |nbas: u64, dead: u64| {
            audit_until(&args, &settings, None, move |r| {
                (r.next_best_actions, r.dead_letters_total()) == (nbas, dead)
            })
        };

        // Strays: three misfits, then a request that fits. The three are
        // dead-lettered once the fitting one shows the run was not a deployment.
        produce(&args, requests_for(&settings, 0, 3, 2))
            .await
            .expect("produced");
        produce(&args, requests_for(&settings, 3, 1, 0))
            .await
            .expect("produced");
        let r = settled(1, 3).await;
        assert_eq!(
            (r.next_best_actions, r.dead_letters_total()),
            (1, 3),
            "{r:?}"
        );

        // A deployment apart: ten in a row stop the stage with the reason, once.
        produce(&args, requests_for(&settings, 4, 12, 2))
            .await
            .expect("produced");
        let stopped = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("the stage stops")
            .expect("task");
        let why = format!("{:#}", stopped.expect_err("stops with an error"));
        assert!(
            why.contains("10 decision requests in a row were made under another deployment")
                && why.contains("partition 0 offset 4: context has")
                && why.contains("None of them was dead-lettered or committed"),
            "{why}"
        );
        // Nothing of the run went to the dead-letter topic, and the group resumes
        // at its first request.
        let r = settled(1, 3).await;
        assert_eq!(
            (r.next_best_actions, r.dead_letters_total()),
            (1, 3),
            "{r:?}"
        );
        let committed = {
            use rdkafka::consumer::{BaseConsumer, Consumer};
            let c: BaseConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", cluster.bootstrap_servers())
                .set("group.id", args.group_id_or(UpdaterStage::NAME))
                .create()
                .expect("consumer");
            let mut tpl = rdkafka::TopicPartitionList::new();
            tpl.add_partition(Topic::DecisionRequests.default_name(), 0);
            c.committed_offsets(tpl, Duration::from_secs(10))
                .expect("committed offsets")
                .find_partition(Topic::DecisionRequests.default_name(), 0)
                .expect("listed")
                .offset()
        };
        assert_eq!(committed, rdkafka::Offset::Offset(4));
    });
}

#[test]
fn a_request_read_again_after_a_crash_is_not_answered_twice() {
    on_runtime(async {
        let cluster = MockCluster::new(1).expect("mock cluster");
        for t in Topic::ALL {
            cluster.create_topic(t.default_name(), 2, 1).expect("topic");
        }
        let args = args(&cluster.bootstrap_servers());
        let settings = retail();
        let run = |group: &str, stop: watch::Receiver<bool>| {
            let mut args = args.clone();
            args.group_id = Some(group.to_owned());
            let stage = UpdaterStage::new(settings.updater(None)).expect("valid");
            tokio::spawn(async move {
                let mut stop = stop;
                let until = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                run_stage(stage, &args, &OpsArgs::default(), until).await
            })
        };

        // A first instance answers 40 requests. The second runs in a group with
        // nothing committed, as when the first crashes before committing.
        produce(&args, requests_for(&settings, 0, 40, 0))
            .await
            .expect("produced");
        let (stop, stopped) = watch::channel(false);
        let first = run("before-the-crash", stopped);
        audit_until(&args, &settings, None, |r| r.next_best_actions >= 40).await;
        stop.send(true).expect("listens");
        first.await.expect("task").expect("ran");

        // A fresh instance reads all 40 again, and 10 new ones after them.
        produce(&args, requests_for(&settings, 40, 10, 0))
            .await
            .expect("produced");
        let (stop, stopped) = watch::channel(false);
        let second = run("after-the-crash", stopped);
        let r = audit_until(&args, &settings, None, |r| r.next_best_actions >= 50).await;
        stop.send(true).expect("listens");
        let (second, _) = second.await.expect("task").expect("ran");
        let r = audit_until(&args, &settings, None, |a| {
            a.next_best_actions >= r.next_best_actions
        })
        .await;
        assert_eq!(r.next_best_actions, 50, "one answer per request: {r:?}");
        // Requests made here, not by an aggregator: no trigger explains them.
        assert_eq!(r.problems, ["0 triggers but 50 decision requests"], "{r:?}");
        let stats = second.stats();
        assert_eq!(
            (stats.answered_before, stats.decisions),
            (40, 10),
            "{stats:?}"
        );
    });
}

#[test]
fn interactions_a_consumer_writes_again_after_a_crash_count_once() {
    on_runtime(async {
        let cluster = MockCluster::new(1).expect("mock cluster");
        for t in Topic::ALL {
            cluster.create_topic(t.default_name(), 2, 1).expect("topic");
        }
        let args = args(&cluster.bootstrap_servers());
        let settings = retail();
        let records = simulated_raw(&settings, 100, 7, 1_000);
        produce(&args, records).await.expect("produced");
        let consume = |group: &str, stop: watch::Receiver<bool>| {
            let mut args = args.clone();
            args.group_id = Some(group.to_owned());
            let stage = ConsumerStage::new(settings.intake());
            tokio::spawn(async move {
                let mut stop = stop;
                let until = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                run_stage(stage, &args, &OpsArgs::default(), until).await
            })
        };
        let (stop_all, stopped) = watch::channel(false);
        let metrics_addr = free_local_addr();
        let aggregator = tokio::spawn({
            let (a, mut stopped) = (args.clone(), stopped.clone());
            let stage = AggregatorStage::new(settings.aggregator())
                .expect("valid")
                .with_changelog(Duration::from_millis(200));
            let ops = OpsArgs {
                metrics_addr: Some(metrics_addr),
                ..OpsArgs::default()
            };
            async move {
                run_stage(stage, &a, &ops, async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
            }
        });

        // A consumer writes every interaction; the next runs in a group with
        // nothing committed, as when the first dies before committing, and
        // writes each one again at a new offset.
        let (stop, stopped) = watch::channel(false);
        let first = consume("before-the-crash", stopped);
        let r = audit_until(&args, &settings, None, |r| {
            r.interactions == 1_000 && r.decision_requests == r.triggers
        })
        .await;
        stop.send(true).expect("listens");
        first.await.expect("task").expect("ran");
        let (stop, stopped) = watch::channel(false);
        let second = consume("after-the-crash", stopped);
        let settled = audit_until(&args, &settings, None, |r| r.interaction_copies == 1_000).await;
        stop.send(true).expect("listens");
        second.await.expect("task").expect("ran");
        // Until the aggregator has read the copies.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let (_, body) = http_get(metrics_addr, "/metrics").await;
            let copies_read = body.lines().any(|l| {
                l.starts_with("nba_upstream_copies_skipped_total") && l.ends_with(" 1000")
            });
            if copies_read {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let (_, body) = http_get(metrics_addr, "/metrics").await;
        stop_all.send(true).expect("listens");
        aggregator.await.expect("task").expect("aggregator ran");

        assert_eq!(settled.interaction_copies, 1_000, "{settled:?}");
        let skipped = body
            .lines()
            .find(|l| l.starts_with("nba_upstream_copies_skipped_total"))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned);
        assert_eq!(
            skipped.as_deref(),
            Some("1000"),
            "every copy known by its origin"
        );
        let after = audit_until(&args, &settings, None, |_| true).await;
        assert_eq!(
            (after.decision_requests, after.triggers),
            (r.decision_requests, r.triggers),
            "a copy asks nothing: {after:?}"
        );
        // No model-updater runs here: nothing else is amiss.
        let unanswered = format!("{} decision requests have no next-best-action", r.triggers);
        assert_eq!(after.problems, [unanswered], "{after:?}");
    });
}

#[test]
fn a_stage_started_while_the_broker_is_down_waits_for_it() {
    on_runtime(async {
        let cluster = MockCluster::new(1).expect("mock cluster");
        for t in Topic::ALL {
            cluster.create_topic(t.default_name(), 1, 1).expect("topic");
        }
        let args = args(&cluster.bootstrap_servers());
        let settings = retail();
        cluster.broker_down(1).expect("down");
        let (stop, stopped) = watch::channel(false);
        let run = tokio::spawn({
            let args = args.clone();
            let stage = UpdaterStage::new(settings.updater(None)).expect("valid");
            let mut stopped = stopped;
            async move {
                run_stage(stage, &args, &OpsArgs::default(), async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
            }
        });
        // Longer than a metadata request's timeout: it used to exit here.
        tokio::time::sleep(Duration::from_secs(15)).await;
        assert!(!run.is_finished(), "the stage waits for the broker");
        cluster.broker_up(1).expect("up");
        produce(&args, requests_for(&settings, 0, 1, 0))
            .await
            .expect("produced");
        let report = audit_until(&args, &settings, None, |r| r.next_best_actions == 1).await;
        assert_eq!(report.next_best_actions, 1, "{report:?}");
        stop.send(true).expect("listens");
        run.await.expect("task").expect("ran");
    });
}
