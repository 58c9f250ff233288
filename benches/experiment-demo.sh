#!/usr/bin/env bash
# Champion/challenger in the in-process pipeline (issue #14): the retail
# example with an [experiment] putting 30% of the customers under uniformly
# random choice, run through `nba demo` for five seeds. Prints one JSON line
# per seed (the demo's report, with each arm's figures, observed mean reward
# and interval, difference from the champion, and true expected response).
#
#   bash benches/experiment-demo.sh [EVENTS]      (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-200000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cargo build --release --quiet -p nba-cli
cat deploy/examples/retail/deployment.toml - > "$dir/against-random.toml" <<'TOML'

[experiment]
name = "against-random"

[[experiment.challenger]]
name = "random"
share = 0.3
policy = { name = "epsilon-greedy", epsilon = 1.0, exploration_fade = 0, exploration_floor = 1.0 }
TOML
for seed in 1 2 3 4 5; do
  target/release/nba demo --deployment "$dir/against-random.toml" --events "$events" \
    --seed "$seed" --json | tail -n 1
done
