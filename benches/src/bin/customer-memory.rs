//! Memory per customer at the default feature configuration: fills a
//! `CustomerStore` with synthetic customers (each a few interactions over a
//! day) and reads the process's resident memory before and after. Uses
//! mimalloc, the allocator of the binaries that hold customers.

use std::time::Instant;

use clap::Parser;
use nba_core::{Channel, CustomerStore, FeatureLayout, Interaction};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Resident bytes per customer of the feature store (issue #6's goal: ≤ 256).
#[derive(Debug, Parser)]
struct Cli {
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
    const KINDS: [&str; 4] = ["page_view", "session_start", "add_to_cart", "purchase"];
    const CATEGORIES: [&str; 4] = ["electronics", "fashion", "home", "beauty"];
    let mut store = CustomerStore::new(FeatureLayout::default());
    let before = resident_bytes();
    let started = Instant::now();
    let t0 = 1_767_225_600_000i64;
    let mut n = 0u64;
    for round in 0..cli.events_per_customer {
        for c in 0..cli.customers {
            let i = Interaction {
                category: Some(CATEGORIES[(c % 4) as usize].to_owned()),
                amount: (round % 4 == 3).then_some(25.0),
                ..Interaction::new(
                    format!("e{n}"),
                    format!("customer-{c:08}"),
                    t0 + (round * 3 + c % 3) as i64 * 3_600_000,
                    Channel::ALL[(c % 5) as usize],
                    KINDS[((c + round) % 4) as usize].to_owned(),
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
        "{} customers, {} events in {secs:.1} s ({:.0} events/s); resident {} MB more; {per:.0} bytes per customer (goal <= 256)",
        store.len(),
        n,
        n as f64 / secs,
        after.saturating_sub(before) / 1_000_000
    );
    if cli.json {
        println!(
            "{}",
            serde_json::json!({
                "customers": store.len(),
                "events": n,
                "resident_bytes": after.saturating_sub(before),
                "bytes_per_customer": per,
                "events_per_s": n as f64 / secs,
            })
        );
    }
}
