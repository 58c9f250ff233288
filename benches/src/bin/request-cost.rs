//! What a decision request costs with a large catalog: the feature-aggregator
//! building it (customer context, candidates after channel, validity and
//! eligibility, the action context of every candidate) and the model-updater
//! deciding on it, per request, for catalogs of 10, 100 and 1,000 actions with
//! 8 action-context entries per candidate.

use std::hint::black_box;
use std::time::Instant;

use clap::Parser;
use nba_benches::nanos_histogram;
use nba_core::{FeatureAggregator, Interaction, ModelUpdater, UpdaterInput};
use nba_deployment::Deployment;
use serde::Serialize;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Build and decide cost per decision request by catalog size.
#[derive(Debug, Parser)]
struct Cli {
    /// Requests timed per catalog size.
    #[arg(long, default_value_t = 3_000)]
    requests: usize,
    /// Catalog sizes.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    actions: Vec<usize>,
    /// Print one JSON object as the last line of stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Cost {
    actions: usize,
    action_context: usize,
    context: usize,
    build_median_us: f64,
    build_p99_us: f64,
    decide_median_us: f64,
    decide_p99_us: f64,
}

/// A deployment of `n` actions in 8 categories and 3 products, each with an
/// eligibility condition on the profile, and an 8-entry action context.
fn deployment(n: usize) -> String {
    let categories: Vec<String> = (0..8).map(|c| format!("\"c{c}\"")).collect();
    let mut text = format!(
        r#"
name = "bench"
[vocabulary]
channels = ["web", "app"]
categories = [{categories}]
event_types = ["visit", "view", "click"]
triggers = ["visit"]
[vocabulary.outcomes]
click = {{ reward = 1.0 }}
[profile]
age = {{ type = "number", min = 18, max = 90 }}
[features]
context = "bias,channel,recency:1h,frequency:24h,categories,profile.age:buckets:30|50"
action_context = "bias,affinity:category,contacted:7d,responded:7d,tag:product,value:1000"
[catalog.tags]
category = [{categories}]
product = ["card", "loan", "savings"]
"#,
        categories = categories.join(", ")
    );
    for a in 0..n {
        text.push_str(&format!(
            "[[action]]\nid = \"a{a}\"\nvalue = {}\ntags = {{ category = \"c{}\", product = \"{}\" }}\neligibility = [\"profile.age >= {}\"]\n[action.channels]\nweb = {{}}\napp = {{}}\n",
            a % 500,
            a % 8,
            ["card", "loan", "savings"][a % 3],
            18 + a % 5
        ));
    }
    text
}

fn measure(n: usize, requests: usize) -> Cost {
    let text = deployment(n);
    let settings = match Deployment::from_text(&text, None, std::path::Path::new("."), &[]) {
        Ok(d) => d.settings,
        Err(p) => panic!("the bench deployment checks: {p}"),
    };
    let mut agg = FeatureAggregator::new(settings.aggregator()).expect("valid");
    let mut upd = ModelUpdater::new(settings.updater(None)).expect("valid");
    let t0 = 1_767_225_600_000i64;
    // 200 customers, each with a profile and some history, including
    // responses to a few actions.
    for c in 0..200 {
        let customer = format!("c{c}");
        let mut profile = Interaction::new(format!("p{c}"), &customer, t0, "web", "profile");
        profile.metrics.insert("age".into(), 20.0 + (c % 60) as f64);
        agg.apply(&profile);
        for k in 0..10 {
            let mut view = Interaction::new(format!("v{c}-{k}"), &customer, t0 + k, "app", "view");
            view.category = Some(format!("c{}", (c + k as usize) % 8));
            agg.apply(&view);
            let mut click =
                Interaction::new(format!("k{c}-{k}"), &customer, t0 + k, "app", "click");
            click.action_id = Some(format!("a{}", (c * 7 + k as usize) % n));
            agg.apply(&click);
        }
    }
    let (mut build, mut decide) = (nanos_histogram(), nanos_histogram());
    let mut widths = (0, 0);
    for i in 0..requests {
        let customer = format!("c{}", i % 200);
        let t = t0 + 60_000 + i as i64 * 1_000;
        let visit = Interaction::new(format!("r{i}"), &customer, t, "web", "visit");
        let started = Instant::now();
        let out = black_box(agg.apply(&visit));
        build.saturating_record(started.elapsed().as_nanos() as u64);
        let request = out.request.expect("a trigger asks");
        widths = (
            request.context.len(),
            request.action_context.first().map_or(0, Vec::len),
        );
        let started = Instant::now();
        let decided = black_box(upd.apply(&UpdaterInput::Request(request)));
        decide.saturating_record(started.elapsed().as_nanos() as u64);
        assert!(matches!(decided, Ok(Some(_))));
    }
    let us = |h: &hdrhistogram::Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1_000.0;
    Cost {
        actions: n,
        context: widths.0,
        action_context: widths.1,
        build_median_us: us(&build, 0.5),
        build_p99_us: us(&build, 0.99),
        decide_median_us: us(&decide, 0.5),
        decide_p99_us: us(&decide, 0.99),
    }
}

fn main() {
    let cli = Cli::parse();
    let costs: Vec<Cost> = cli
        .actions
        .iter()
        .map(|n| measure(*n, cli.requests))
        .collect();
    println!(
        "{:>8} {:>8} {:>15} {:>14} {:>12} {:>15} {:>13}",
        "actions",
        "context",
        "action context",
        "build p50 µs",
        "build p99 µs",
        "decide p50 µs",
        "decide p99 µs"
    );
    for c in &costs {
        println!(
            "{:>8} {:>8} {:>15} {:>14.1} {:>12.1} {:>15.1} {:>13.1}",
            c.actions,
            c.context,
            c.action_context,
            c.build_median_us,
            c.build_p99_us,
            c.decide_median_us,
            c.decide_p99_us
        );
    }
    if cli.json {
        println!("{}", serde_json::json!({ "costs": costs }));
    }
}
