#!/usr/bin/env bash
# A shadow policy's live estimate against what it earns deployed (issue #14).
# For each seed, two `nba demo` runs of the retail example on the same
# simulated world: (A) the default champion with a shadow running POLICY,
# whose running IPS estimate and 95% interval are what /metrics would show;
# (B) POLICY deployed as the champion, whose observed mean reward per closed
# decision is what the shadow estimated. Prints one line per seed:
#   seed  shadow_ips  low  high  deployed_mean  inside(0/1)  agree(0/1)
#   mean_weight  ess/closed  snips  snips_inside(0/1)  caveat
# and the share of seeds whose interval holds the deployed value (inside),
# and the share where the two are within the 95% interval of their
# difference (agree): the deployed mean is itself one run's noisy
# realisation (its standard error about that of the estimate), so even an
# unbiased estimate's interval holds it only about 80% of the time.
#
#   bash benches/shadow-demo.sh [EVENTS] [SEEDS] [LEARNING] [POLICY]
#
# (defaults 60000, 20, all, '{ name = "linucb", alpha = 1.0 }';
# LEARNING is the shadow's `learning`, observed or all; POLICY an inline
# TOML table as `[policy]` takes it)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-60000}
seeds=${2:-20}
learning=${3:-all}
policy=${4:-'{ name = "linucb", alpha = 1.0 }'}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cargo build --release --quiet -p nba-cli
retail=deploy/examples/retail/deployment.toml
{ cat "$retail"; printf '\n[experiment]\nname = "shadowing"\n\n[[experiment.shadow]]\nname = "candidate"\nlearning = "%s"\npolicy = %s\n' "$learning" "$policy"; } > "$dir/a.toml"
# B: the same policy as [policy] (retail declares none), and a shadow of the
# default so that the champion's arm figures are reported.
{ cat "$retail"; printf '\n[policy]\n'; python3 -c 'import sys; print("\n".join(p.strip() for p in sys.argv[1].strip()[1:-1].split(",")))' "$policy"; printf '\n[experiment]\nname = "deployed"\n\n[[experiment.shadow]]\nname = "default"\npolicy = { alpha = 0.5 }\n'; } > "$dir/b.toml"
inside=0
agree=0
snips_inside=0
quiet=0
quiet_inside=0
for seed in $(seq 1 "$seeds"); do
  a=$(target/release/nba demo --deployment "$dir/a.toml" --events "$events" --seed "$seed" --json | tail -n 1)
  b=$(target/release/nba demo --deployment "$dir/b.toml" --events "$events" --seed "$seed" --json | tail -n 1)
  line=$(python3 - "$a" "$b" "$seed" <<'PY'
import json, sys
a, b, seed = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
shadow = a["shadows"][0]
est, low, high = shadow["ips"]
snips, slow, shigh = shadow["snips"]
deployed, dlow, _ = b["experiment"][0]["mean_reward"]
# Both intervals are mean ± 1.96·se: the difference's is their root sum of squares.
half = ((high - est) ** 2 + (deployed - dlow) ** 2) ** 0.5
print(seed, f"{est:.4f}", f"{low:.4f}", f"{high:.4f}", f"{deployed:.4f}",
      int(low <= deployed <= high), int(abs(est - deployed) <= half),
      f"{shadow['mean_weight'][0]:.3f}", f"{shadow['effective_sample_size'] / shadow['closed']:.3f}",
      f"{snips:.4f}", int(slow <= deployed <= shigh),
      shadow["caveat"] or "-")
PY
)
  echo "$line"
  read -r _ _ _ _ _ in ag _ _ _ sin caveat <<< "$line"
  inside=$((inside + in))
  agree=$((agree + ag))
  snips_inside=$((snips_inside + sin))
  if [ "$caveat" = "-" ]; then
    quiet=$((quiet + 1))
    quiet_inside=$((quiet_inside + in))
  fi
done
echo "deployed value inside the shadow's IPS 95% interval: $inside of $seeds seeds"
echo "shadow and deployed within their difference's 95% interval: $agree of $seeds seeds"
echo "deployed value inside the SNIPS 95% interval: $snips_inside of $seeds seeds"
echo "seeds with no caveat on the estimate: $quiet, the deployed value inside its IPS interval in $quiet_inside"
