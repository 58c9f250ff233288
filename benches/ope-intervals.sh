#!/usr/bin/env bash
# Each candidate's off-policy estimates with the normal and the bootstrap 95%
# interval (1,000 resamples, seeded) on the Open Bandit Dataset sample:
# `nba obd` (fixed candidates trained on the first half of the uniform-random
# log, evaluated on the second) and `nba backtest` of the same log recorded
# (nba's policies over the deployment's settings, learning as they go);
# then on the simulator: `nba demo --record` of the retail example (the
# default LinUCB logging), and `nba backtest` of that recording.
# Prints Markdown tables for BENCHMARKS.md.
#
#   bash benches/ope-intervals.sh [CAMPAIGN] [DEMO_EVENTS]
#     CAMPAIGN: all, men or women (default all); DEMO_EVENTS default 60000
set -euo pipefail
cd "$(dirname "$0")/.."
campaign=${1:-all}
events=${2:-60000}
cargo build --release -p nba-cli --quiet
obd=$(scripts/fetch-obd.sh)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target/release/nba obd "$obd" --campaign "$campaign" --ci bootstrap --json \
  --record "$work/obd.avro" | tail -n 1 > "$work/obd.json"
target/release/nba backtest "$work/obd.avro" --ci bootstrap --json \
  | tail -n 1 > "$work/backtest.json"
target/release/nba demo --events "$events" --seed 42 --record "$work/sim.avro" > /dev/null
target/release/nba backtest "$work/sim.avro" --seed 42 --ci bootstrap --json \
  | tail -n 1 > "$work/sim.json"
python3 - "$work" "$events" <<'PY'
import json, sys
work = sys.argv[1]
def table(title, candidates, name):
    print(f"\n{title}\n")
    print("| candidate | estimator | value | normal 95% | bootstrap 95% | ESS | caveat |")
    print("|---|---|---|---|---|---|---|")
    for c in candidates:
        for e in c["estimates"]:
            if e["estimator"] not in ("ips", "snips", "dr", "sndr", "replay"):
                continue
            b = e.get("bootstrap")
            boot = f"[{b[0]:.5f}, {b[1]:.5f}]" if b else "-"
            ess = e.get("effective_sample_size")
            print(f"| {c[name]} | {e['estimator']} | {e['value']:.5f} | "
                  f"[{e['ci_low']:.5f}, {e['ci_high']:.5f}] | {boot} | "
                  f"{'-' if ess is None else round(ess)} | {e.get('caveat') or ''} |")
obd = json.load(open(f"{work}/obd.json"))
l = obd["logged_on_evaluation"]
table(f"`nba obd` (campaign {obd['campaign']}; logging policy's click rate on the "
      f"evaluation half {l['value']:.5f} [{l['ci_low']:.5f}, {l['ci_high']:.5f}]):",
      obd["candidates"], "policy")
bt = json.load(open(f"{work}/backtest.json"))["evaluation"]
table(f"`nba backtest` of the recorded log ({bt['decisions']} decisions, logged "
      f"mean reward {bt['logged_value']:.5f}):", bt["candidates"], "name")
sim = json.load(open(f"{work}/sim.json"))["evaluation"]
table(f"`nba backtest` of `nba demo --record` (retail, {sys.argv[2]} events, seed 42; "
      f"{sim['decisions']} decisions logged by the default LinUCB, mean reward "
      f"{sim['logged_value']:.5f}):", sim["candidates"], "name")
PY
