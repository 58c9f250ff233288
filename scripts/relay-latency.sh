#!/usr/bin/env bash
# The latency floor of the plumbing alone: records sent open-loop at each
# rate and timed from their due time to their read (benches/src/bin/relay.rs
# `latency`), first straight back from the topic they were sent to (one
# produce, one fetch), then through three no-op relay hops (four produces and
# four fetches, the path of an interaction to its next-best-action through
# nba's three stages), on the broker and client settings of
# scripts/load-curve.sh: tansu in memory, 3 partitions, fetch.wait.max.ms=10,
# producers acks=all, linger.ms=5.
#
#   NBA_LATENCY_RATES  rates to run, comma-separated (default 250,500,1000)
#   NBA_LATENCY_SECS   seconds per rate (default 10)
#   NBA_LATENCY_PORT   broker port (default 19492)
#   NBA_LATENCY_LINGER the producers' linger.ms (default 5)
#   NBA_LATENCY_WAIT   the consumers' fetch.wait.max.ms (default 10)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rates=${NBA_LATENCY_RATES:-250,500,1000}
secs=${NBA_LATENCY_SECS:-10}
port=${NBA_LATENCY_PORT:-19492}
linger=${NBA_LATENCY_LINGER:-5}
fetch_wait=${NBA_LATENCY_WAIT:-10}
broker="127.0.0.1:$port"

E2E_NAME=relay-latency
# shellcheck source=scripts/e2e-lib.sh
source "$root/scripts/e2e-lib.sh"
cargo build --release --quiet -p nba-benches --bin relay
relay=("$bin/relay" --brokers "$broker" -X "fetch.wait.max.ms=$fetch_wait" -X "linger.ms=$linger")

echo "== starting tansu on $broker"
"$root/deploy/dev-broker.sh" start "$port" 3 "$work/broker"
pids+=("$(cat "$work/broker/tansu.pid")")
tansu=$("$root/scripts/install-tansu.sh")
for t in lat.direct lat.raw lat.interactions lat.requests lat.out; do
  "$tansu" topic create "$t" --partitions 3 --broker "tcp://$broker" >/dev/null
done

echo "== three no-op hops: lat.raw -> lat.interactions -> lat.requests -> lat.out"
"${relay[@]}" hop --from lat.raw --to lat.interactions --group lat-1 >"$work/hop-1.log" 2>&1 &
pids+=($!)
"${relay[@]}" hop --from lat.interactions --to lat.requests --group lat-2 >"$work/hop-2.log" 2>&1 &
pids+=($!)
"${relay[@]}" hop --from lat.requests --to lat.out --group lat-3 >"$work/hop-3.log" 2>&1 &
pids+=($!)
# Every hop has joined its group and reads from the end before timing starts.
"${relay[@]}" latency --to lat.raw --from lat.out --rate 50 --secs 5 >/dev/null

IFS=, read -r -a each <<<"$rates"
for rate in "${each[@]}"; do
  printf 'rate %5s/s  direct    ' "$rate"
  "${relay[@]}" latency --to lat.direct --from lat.direct --rate "$rate" --secs "$secs"
  printf 'rate %5s/s  3 hops    ' "$rate"
  "${relay[@]}" latency --to lat.raw --from lat.out --rate "$rate" --secs "$secs"
done
echo "relay-latency OK"
