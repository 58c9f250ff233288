#!/usr/bin/env bash
# Apprentice mode in the in-process pipeline (issue #14): the retail and bank
# examples, each with three rules baselines guarding the default bandit
# ([experiment.baseline] with its defaults: 10% trial, 90% on takeover), and
# the same deployment with the bandit alone, through `nba demo` for five
# seeds. Prints one line per (example, baseline, seed): when the bandit took
# over (hours of simulated time since the simulation's start, 2026-01-01T00:00Z
# in both examples; their customers' first sessions spread over that first
# day), the true expected
# response of each arm and of the whole deployment, and of the bandit alone.
#
#   bash benches/apprentice-demo.sh [EVENTS]      (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-200000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cargo build --release --quiet -p nba-cli
declare -A orders=([retail]='["discount_10"]' [bank]='["fee_waiver"]')
for example in retail bank; do
  cp "deploy/examples/$example/deployment.toml" "$dir/$example-alone.toml"
  for rule in order ranking affinity:category; do
    {
      cat "deploy/examples/$example/deployment.toml"
      printf '\n[experiment]\nname = "apprentice"\n\n[experiment.baseline]\nrule = "%s"\n' "$rule"
      if [ "$rule" = order ]; then printf 'order = %s\n' "${orders[$example]}"; fi
    } > "$dir/$example-$rule.toml"
  done
done
for example in retail bank; do
  for seed in 1 2 3 4 5; do
    alone=$(target/release/nba demo --deployment "$dir/$example-alone.toml" --events "$events" \
      --seed "$seed" --json | tail -n 1)
    for rule in order ranking affinity:category; do
      target/release/nba demo --deployment "$dir/$example-$rule.toml" --events "$events" \
        --seed "$seed" --json | tail -n 1 |
        EXAMPLE=$example RULE=$rule SEED=$seed ALONE=$alone python3 -c '
import json, os, sys
r = json.loads(sys.stdin.read())
alone = json.loads(os.environ["ALONE"])
g = r["guardrail"]
arms = {a["arm"]: a for a in r["experiment"]}
start = 1767225600000
took = [round((s["at"] - start) / 3.6e6, 1) for s in g["switches"] if s["took_over"]]
print(json.dumps({
    "example": os.environ["EXAMPLE"], "baseline": os.environ["RULE"], "seed": int(os.environ["SEED"]),
    "takeovers": g["takeovers"], "fallbacks": g["fallbacks"], "bandit_share_at_end": g["bandit_share"],
    "first_takeover_hours": took[0] if took else None,
    "true_bandit_arm": round(arms["champion"]["expected_response"], 4),
    "true_baseline_arm": round(arms["baseline"]["expected_response"], 4),
    # Every arm, weighted by its decisions (the headline figure of the demo
    # leaves out the decisions of the baseline).
    "true_deployment": round(sum(a["expected_response"] * a["decisions"] for a in arms.values())
                             / max(1, sum(a["decisions"] for a in arms.values())), 4),
    "true_bandit_alone": round(alone["policy_mean_reward"], 4),
    "true_random": round(r["random_mean_reward"], 4),
}))'
    done
  done
done
