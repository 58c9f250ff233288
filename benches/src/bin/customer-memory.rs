//! Memory per customer of a deployment's feature layout: fills a
//! `CustomerStore` with synthetic customers (each a profile event, if the
//! deployment declares a profile, and a few interactions over a day, across
//! the declared event types, channels and categories) and reads the process's
//! resident memory before and after. Uses mimalloc, the allocator of the
//! binaries that hold customers.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use nba_core::{CustomerStore, FeatureLayout, FieldKind, Interaction};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Resident bytes per customer of the feature store (goals: retail ≤ 256,
/// bank ≤ 320).
#[derive(Debug, Parser)]
struct Cli {
    /// The deployment whose features to hold [default: the retail example].
    #[arg(long, value_name = "FILE")]
    deployment: Option<PathBuf>,
    /// Customers to hold.
    #[arg(long, default_value_t = 10_000_000)]
    customers: u64,
    /// Interactions per customer.
    #[arg(long, default_value_t = 5)]
    events_per_customer: u64,
    /// Print one JSON object as the last line of stdout.
    #[arg(long)]
    json: bool,
}

/// Resident set size of this process, bytes (Linux `/proc/self/statm`).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4_096)
}

fn main() {
    let cli = Cli::parse();
    let settings = nba_benches::deployment(cli.deployment.as_deref());
    let layout = match FeatureLayout::new(&settings.features, &settings.declared) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2)
        }
    };
    let vocabulary = &settings.declared.vocabulary;
    let kinds = vocabulary.event_types.as_slice();
    let channels = vocabulary.channels.as_slice();
    let categories = vocabulary.categories.as_slice();
    let counter_bytes = layout.counter_bytes();
    let mut store = CustomerStore::new(layout);
    // One profile event per customer with every declared field set.
    let mut profile = Interaction::new("p", "", 1, channels[0].as_str(), "profile");
    for f in &settings.declared.profile.fields {
        match &f.kind {
            FieldKind::Number { min, max } => {
                profile.metrics.insert(f.name.clone(), (min + max) / 2.0);
            }
            FieldKind::Category(v) | FieldKind::Set(v) => {
                profile
                    .attributes
                    .insert(f.name.clone(), v.as_slice()[0].clone());
            }
        }
    }
    let before = resident_bytes();
    let started = Instant::now();
    let t0 = 1_767_225_600_000i64;
    let mut n = 0u64;
    for round in 0..cli.events_per_customer {
        for c in 0..cli.customers {
            let customer = format!("customer-{c:08}");
            if round == 0 && !settings.declared.profile.fields.is_empty() {
                store.with_customer(0, &customer, |layout, s| s.update_profile(layout, &profile));
            }
            let i = Interaction {
                category: (!categories.is_empty())
                    .then(|| categories[(c % categories.len() as u64) as usize].clone()),
                amount: (round % 4 == 3).then_some(25.0),
                ..Interaction::new(
                    format!("e{n}"),
                    customer,
                    t0 + (round * 3 + c % 3) as i64 * 3_600_000,
                    channels[(c % channels.len() as u64) as usize].as_str(),
                    kinds[((c + round) % kinds.len() as u64) as usize].as_str(),
                )
            };
            store.with_customer(0, &i.customer_id, |layout, s| s.record(layout, &i));
            n += 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let after = resident_bytes();
    let per = after.saturating_sub(before) as f64 / cli.customers as f64;
    println!(
        "{}: {} customers, {} events in {secs:.1} s ({:.0} events/s); resident {} MB more; {per:.0} bytes per customer ({counter_bytes} of them counters)",
        settings.name,
        store.len(),
        n,
        n as f64 / secs,
        after.saturating_sub(before) / 1_000_000
    );
    if cli.json {
        println!(
            "{}",
            serde_json::json!({
                "deployment": settings.name,
                "customers": store.len(),
                "events": n,
                "resident_bytes": after.saturating_sub(before),
                "bytes_per_customer": per,
                "counter_bytes": counter_bytes,
                "events_per_s": n as f64 / secs,
            })
        );
    }
}
