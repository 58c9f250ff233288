//! Where a backtest's time goes, on the same simulated records in one run:
//! decoding the raw records alone, the engines fed decoded structs, `backtest`
//! (decode + engines, what `nba backtest` runs), and the byte-level stages of
//! the binaries (Avro between every stage, as `nba demo` runs).

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use nba_core::{FeatureAggregator, IntakeOutcome, Interaction, ModelUpdater, UpdaterInput};
use nba_pipeline::{BacktestConfig, LocalPipeline, RawRecord, backtest};
use nba_sim::{SimConfig, Simulator};

/// Splits a backtest's cost on simulated records.
#[derive(Debug, Parser)]
struct Cli {
    /// The deployment to simulate and run [default: the retail example].
    #[arg(long, value_name = "FILE")]
    deployment: Option<PathBuf>,
    /// Simulated interactions.
    #[arg(long, default_value_t = 300_000)]
    events: u64,
    /// Print one JSON object as the last line of stdout.
    #[arg(long)]
    json: bool,
}

fn main() {
    let cli = Cli::parse();
    let settings = nba_benches::deployment(cli.deployment.as_deref());
    let mut sim = Simulator::new(&settings, &SimConfig::for_run(cli.events, 42, None), false)
        .unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(2)
        });
    let raw: Vec<RawRecord> = (0..cli.events)
        .map(|_| {
            let e = sim.next_event();
            let v = nba_schema::encode(&e).unwrap_or_default();
            RawRecord::new(Some(e.customer_id.into_bytes()), v)
        })
        .collect();
    let rate = |secs: f64| cli.events as f64 / secs.max(1e-9);

    let t = Instant::now();
    let decoded: Vec<Interaction> = raw
        .iter()
        .filter_map(|r| nba_schema::decode::<Interaction>(&r.value).ok())
        .collect();
    let decode = rate(t.elapsed().as_secs_f64());

    let t = Instant::now();
    let mut intake = settings.intake();
    let mut agg = FeatureAggregator::new(settings.aggregator()).expect("checked settings");
    let mut upd = ModelUpdater::new(settings.updater(None)).expect("checked settings");
    let mut decisions = 0u64;
    for mut i in decoded {
        if let Ok(IntakeOutcome::Accepted) = intake.apply(&mut i, None) {
            let o = agg.apply(&i);
            if let Some(r) = o.request
                && let Ok(Some(_)) = upd.apply(&UpdaterInput::Request(r))
            {
                decisions += 1;
            }
            if let Some(r) = o.reward {
                let _ = upd.apply(&UpdaterInput::Reward(r));
            }
        }
    }
    let engines = rate(t.elapsed().as_secs_f64());

    let t = Instant::now();
    let mut stages = LocalPipeline::from_settings(&settings).expect("checked settings");
    let mut tap = Vec::new();
    for r in &raw {
        stages.push_raw(r.key.as_deref(), &r.value, &mut tap);
        tap.clear();
    }
    let bytes = rate(t.elapsed().as_secs_f64());

    let t = Instant::now();
    let run =
        backtest(raw, BacktestConfig::from_settings(&settings), &mut ()).expect("checked settings");
    let backtest = rate(t.elapsed().as_secs_f64());
    assert_eq!(run.decision_count, decisions);
    assert_eq!(run.dead_lettered, 0, "{:?}", run.first_rejection);

    println!("{} deployment, {} events", settings.name, cli.events);
    println!("decode raw only:                 {decode:>10.0} events/s");
    println!("engines on structs:              {engines:>10.0} events/s");
    println!("backtest (decode + engines):     {backtest:>10.0} events/s");
    println!("byte-level stages (Avro between): {bytes:>9.0} events/s");
    if cli.json {
        println!(
            "{}",
            serde_json::json!({"deployment": settings.name, "events": cli.events, "decode_per_s": decode, "engines_per_s": engines, "backtest_per_s": backtest, "byte_stages_per_s": bytes})
        );
    }
}
