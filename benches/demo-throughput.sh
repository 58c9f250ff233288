#!/usr/bin/env bash
# In-process throughput of `nba demo`: runs it RUNS times (default 3) on EVENTS
# simulated interactions (default 1000000) and prints each run's events/s and the
# median, plus the median decision latency percentiles. Simulation, Avro encoding
# and the demo's own bookkeeping are included in the figure.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${EVENTS:-1000000}
runs=${RUNS:-3}
cargo build --release --quiet -p nba-cli
for i in $(seq 1 "$runs"); do
  target/release/nba demo --events "$events" --seed "$i" --json | tail -n 1
done | python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin]
eps = [r["events_per_s"] for r in rows]
print("runs events/s:", " ".join(f"{e:.0f}" for e in eps))
print(f"median events/s: {statistics.median(eps):.0f}")
print("median decision latency p50/p99 us:",
      statistics.median(r["decision_latency_p50_us"] for r in rows),
      statistics.median(r["decision_latency_p99_us"] for r in rows))
print("median lift over random:",
      round(statistics.median(r["policy_mean_reward"] / r["random_mean_reward"] for r in rows), 2))
'
