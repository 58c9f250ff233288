//! `nba load`: open-loop load at set rates, and the latency curve it gives.
//!
//! Interactions go to the raw topic at a fixed rate whatever the pipeline
//! does: the k-th of a step is due at `start + k / rate` and is sent then (at
//! once if the sender is late). Each next-best-action is timed from the *due*
//! time of the interaction that triggered it (a decision's id is its trigger's
//! event id) to when this process reads it. A pipeline that stalls for a
//! second is charged for every interaction due in that second, not only for
//! the one it held up: latencies corrected for coordinated omission, as wrk2
//! measures them. One HdrHistogram per rate.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use nba_core::NextBestAction;
use nba_deployment::Deployment;
use nba_kafka::{DeploymentArgs, KafkaArgs, Producer, TopicFollower, print_stdout};
use nba_metrics::{LatencyHistogram, percentile_plot_html};
use nba_pipeline::Topic;
use nba_sim::{SimConfig, Simulator};

use crate::raw_interaction;

#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    #[command(flatten)]
    pub(crate) deployment: DeploymentArgs,
    #[command(flatten)]
    kafka: KafkaArgs,
    /// Interactions per second, one step per rate, in this order.
    #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000", value_parser = clap::value_parser!(u32).range(1..))]
    rates: Vec<u32>,
    /// Seconds each rate is held.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    secs: u32,
    /// Seconds to wait after each step before the next: a decision of the step
    /// that comes later still counts in its histogram, but the next step's
    /// figures start from a drained pipeline.
    #[arg(long, default_value_t = 5)]
    drain_secs: u32,
    /// The p99 a rate must keep, in ms, to count in "highest rate within".
    #[arg(long, default_value_t = 10.0)]
    p99_ms: f64,
    /// Seed of the simulated customers (event ids include it: runs with
    /// different seeds never collide).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Simulated customers [default: one per 50 events].
    #[arg(long)]
    customers: Option<usize>,
    /// Also print the result as one JSON object on the last line of stdout.
    #[arg(long)]
    json: bool,
    /// Write each rate's latency distribution (by percentile) as an HTML plot.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
}

/// One rate's figures.
#[derive(Debug)]
struct Step {
    rate: u32,
    sent: u64,
    /// Seconds the sending took (more than the step's length when the
    /// sender could not keep the rate).
    send_secs: f64,
    triggers: u64,
    answered: u64,
    /// Next-best-actions read a second time for one decision.
    duplicates: u64,
    latency: LatencyHistogram,
}

impl Step {
    fn ms(&self, q: f64) -> f64 {
        self.latency.quantile_micros(q) as f64 / 1e3
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "rate": self.rate,
            "sent": self.sent,
            "achieved_rate": self.sent as f64 / self.send_secs.max(1e-9),
            "triggers": self.triggers,
            "answered": self.answered,
            "missing": self.triggers.saturating_sub(self.answered),
            "duplicates": self.duplicates,
            "p50_ms": self.ms(0.5),
            "p90_ms": self.ms(0.9),
            "p99_ms": self.ms(0.99),
            "p999_ms": self.ms(0.999),
            "max_ms": self.ms(1.0),
        })
    }
}

/// What the listening thread and the sender share.
#[derive(Debug, Default)]
struct Shared {
    /// Triggers not yet answered: their step and due time.
    due: HashMap<String, (usize, Instant)>,
    answered: HashSet<String>,
    steps: Vec<Step>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) async fn run(a: LoadArgs, deployment: Deployment) -> anyhow::Result<()> {
    let settings = &deployment.settings;
    let total: u64 = a
        .rates
        .iter()
        .map(|r| u64::from(*r) * u64::from(a.secs))
        .sum();
    let mut sim = Simulator::new(
        settings,
        &SimConfig::for_run(total, a.seed, a.customers),
        false,
    )
    .map_err(anyhow::Error::msg)?;
    // From the topic's end before the first send: no answer is missed.
    let follower = TopicFollower::new(&a.kafka, Topic::NextBestActions)?;
    let shared = Arc::new(Mutex::new(Shared::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let listener = std::thread::spawn({
        let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
        move || -> anyhow::Result<()> {
            while !stop.load(Ordering::Relaxed) {
                let Some(value) = follower.next_value(Duration::from_millis(100))? else {
                    continue;
                };
                let read = Instant::now();
                let Ok(nba) = nba_schema::decode::<NextBestAction>(&value) else {
                    continue;
                };
                let mut s = lock(&shared);
                if let Some((step, due)) = s.due.remove(&nba.decision_id) {
                    s.answered.insert(nba.decision_id);
                    let step = &mut s.steps[step];
                    step.answered += 1;
                    step.latency.record(read - due);
                } else if s.answered.contains(&nba.decision_id) {
                    s.steps.last_mut().expect("a step").duplicates += 1;
                }
            }
            Ok(())
        }
    });

    let mut producer = Producer::new(&a.kafka)?;
    let vocabulary = &settings.declared.vocabulary;
    for (i, &rate) in a.rates.iter().enumerate() {
        lock(&shared).steps.push(Step {
            rate,
            sent: 0,
            send_secs: 0.0,
            triggers: 0,
            answered: 0,
            duplicates: 0,
            latency: LatencyHistogram::new(),
        });
        let n = u64::from(rate) * u64::from(a.secs);
        let start = Instant::now();
        let mut triggers = 0;
        for k in 0..n {
            let due = start + Duration::from_secs_f64(k as f64 / f64::from(rate));
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
            let e = sim.next_event();
            if vocabulary.is_trigger(&e.event_type) {
                lock(&shared).due.insert(e.event_id.clone(), (i, due));
                triggers += 1;
            }
            producer.send(&raw_interaction(e)?).await?;
        }
        let send_secs = start.elapsed().as_secs_f64();
        producer.flush().await?;
        {
            let mut s = lock(&shared);
            let step = &mut s.steps[i];
            step.sent = n;
            step.send_secs = send_secs;
            step.triggers = triggers;
        }
        tokio::time::sleep(Duration::from_secs(u64::from(a.drain_secs))).await;
        let s = lock(&shared);
        let step = &s.steps[i];
        eprintln!(
            "{rate}/s for {} s (sent at {:.0}/s): {} of {} decisions read, p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
            a.secs,
            n as f64 / send_secs.max(1e-9),
            step.answered,
            step.triggers,
            step.ms(0.5),
            step.ms(0.99),
            step.ms(0.999),
            step.ms(1.0),
        );
    }
    stop.store(true, Ordering::Relaxed);
    listener
        .join()
        .map_err(|_| anyhow::anyhow!("the listening thread panicked"))??;

    let s = lock(&shared);
    let within = s
        .steps
        .iter()
        .filter(|st| st.answered == st.triggers && st.ms(0.99) <= a.p99_ms)
        .map(|st| st.rate)
        .max();
    let mut out = String::from(
        "rate/s  achieved/s  decisions  missing  dup  p50 ms  p90 ms  p99 ms  p99.9 ms  max ms\n",
    );
    for st in &s.steps {
        out.push_str(&format!(
            "{:>6}  {:>10.0}  {:>9}  {:>7}  {:>3}  {:>6.1}  {:>6.1}  {:>6.1}  {:>8.1}  {:>6.1}\n",
            st.rate,
            st.sent as f64 / st.send_secs.max(1e-9),
            st.answered,
            st.triggers.saturating_sub(st.answered),
            st.duplicates,
            st.ms(0.5),
            st.ms(0.9),
            st.ms(0.99),
            st.ms(0.999),
            st.ms(1.0),
        ));
    }
    out.push_str(&match within {
        Some(r) => format!(
            "highest rate with every decision read and p99 <= {} ms: {r}/s\n",
            a.p99_ms
        ),
        None => {
            let lowest = s.steps.iter().map(|st| (st.ms(0.99), st.rate)).min_by(|x, y| x.0.total_cmp(&y.0));
            match lowest {
                Some((p99, rate)) => format!(
                    "no rate kept every decision with p99 <= {} ms; the lowest p99 was {p99:.1} ms, at {rate}/s (if the lowest rate has it, the floor is the path's latency, not its load)\n",
                    a.p99_ms
                ),
                None => "no rate was run\n".to_owned(),
            }
        }
    });
    if let Some(path) = &a.plot {
        let series: Vec<(String, &LatencyHistogram)> = s
            .steps
            .iter()
            .map(|st| (format!("{}/s", st.rate), &st.latency))
            .collect();
        std::fs::write(
            path,
            percentile_plot_html("nba load: interaction due → next-best-action read", &series),
        )
        .with_context(|| format!("cannot write --plot {}", path.display()))?;
        out.push_str(&format!("plot: {}\n", path.display()));
    }
    if a.json {
        let json = serde_json::json!({
            "seconds_per_rate": a.secs,
            "p99_goal_ms": a.p99_ms,
            "highest_rate_within": within,
            "steps": s.steps.iter().map(Step::json).collect::<Vec<_>>(),
        });
        out.push_str(&format!("{json}\n"));
    }
    print_stdout(&out)?;
    Ok(())
}
