#!/usr/bin/env bash
# A shadow policy's live estimate against what it earns deployed (issue #14).
# For each seed, two `nba demo` runs of the retail example on the same
# simulated world: (A) the default champion with a shadow running POLICY,
# whose running IPS estimate and 95% interval are what /metrics would show;
# (B) POLICY deployed as the champion, whose observed mean reward per closed
# decision is what the shadow estimated. Prints one line per seed:
#   seed  shadow_ips  low  high  deployed_mean  inside(0/1)
# and the share of seeds whose interval holds the deployed value.
#
#   bash benches/shadow-demo.sh [EVENTS] [SEEDS] [LEARNING]
#
# (defaults 60000, 20, observed; LEARNING is the shadow's `learning`,
# observed or all)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-60000}
seeds=${2:-20}
learning=${3:-observed}
policy='{ name = "linucb", alpha = 1.0 }'
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cargo build --release --quiet -p nba-cli
retail=deploy/examples/retail/deployment.toml
{ cat "$retail"; printf '\n[experiment]\nname = "shadowing"\n\n[[experiment.shadow]]\nname = "candidate"\nlearning = "%s"\npolicy = %s\n' "$learning" "$policy"; } > "$dir/a.toml"
# B: the same policy as [policy] (retail declares none), and a shadow of the
# default so that the champion's arm figures are reported.
{ cat "$retail"; printf '\n[policy]\nname = "linucb"\nalpha = 1.0\n\n[experiment]\nname = "deployed"\n\n[[experiment.shadow]]\nname = "default"\npolicy = { alpha = 0.5 }\n'; } > "$dir/b.toml"
inside=0
for seed in $(seq 1 "$seeds"); do
  a=$(target/release/nba demo --deployment "$dir/a.toml" --events "$events" --seed "$seed" --json | tail -n 1)
  b=$(target/release/nba demo --deployment "$dir/b.toml" --events "$events" --seed "$seed" --json | tail -n 1)
  line=$(python3 - "$a" "$b" "$seed" <<'PY'
import json, sys
a, b, seed = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
est, low, high = a["shadows"][0]["ips"]
deployed = b["experiment"][0]["mean_reward"][0]
print(seed, f"{est:.4f}", f"{low:.4f}", f"{high:.4f}", f"{deployed:.4f}", int(low <= deployed <= high))
PY
)
  echo "$line"
  inside=$((inside + ${line##* }))
done
echo "deployed value inside the shadow's 95% interval: $inside of $seeds seeds"
