#!/usr/bin/env bash
# The plumbing baseline: how fast nba's three stages drain a backlog of raw
# interactions, next to a no-op relay of the same topology (three consumer ->
# producer hops, same records, the second hop keeping the share of records
# nba turns into decision requests; benches/src/bin/relay.rs) on the same
# broker (tansu in memory, 3 partitions) and backlog.
#
#   NBA_RELAY_EVENTS  interactions in the backlog (default 100000)
#   NBA_RELAY_PORT    broker port (default 19392)
#   NBA_RELAY_HOPS    1 to run only the first hop of each (the consumer stage
#                     against one relay hop), 3 for all (default)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
events=${NBA_RELAY_EVENTS:-100000}
port=${NBA_RELAY_PORT:-19392}
hops=${NBA_RELAY_HOPS:-3}
case "$hops" in 1 | 3) ;; *) echo "NBA_RELAY_HOPS must be 1 or 3" >&2; exit 2 ;; esac
broker="127.0.0.1:$port"

E2E_NAME=relay-baseline
# shellcheck source=scripts/e2e-lib.sh
source "$root/scripts/e2e-lib.sh"
cargo build --release --quiet -p nba-benches --bin relay
relay=("$bin/relay" --brokers "$broker" -X fetch.wait.max.ms=10)

echo "== starting tansu on $broker"
"$root/deploy/dev-broker.sh" start "$port" 3 "$work/broker"
pids+=("$(cat "$work/broker/tansu.pid")")
tansu=$("$root/scripts/install-tansu.sh")
for t in relay.interactions relay.requests relay.out; do
  "$tansu" topic create "$t" --partitions 3 --broker "tcp://$broker" >/dev/null
done

export NBA_BROKERS="$broker"
export NBA_DEPLOYMENT="$root/deploy/examples/retail/deployment.toml"
# tansu answers a fetch no sooner than half the consumer's wait (see
# e2e-lib.sh): the same short wait for nba and the relay.
export NBA_KAFKA_CONFIG="fetch.wait.max.ms=10"
echo "== a backlog of $events interactions"
"$bin/nba" simulate --events "$events" --seed 7 2>&1 | grep -v CONFWARN | tail -1

ends() { # the records of topic $1
  "${relay[@]}" watch --topic "$1" --at-least 0 --quiet-secs 2 | grep -oE '[0-9]+ records' | grep -oE '[0-9]+'
}

echo "== nba: its first $hops stage(s) drain it"
first=${#pids[@]}
stages=(nba-consumer nba-feature-aggregator nba-model-updater)
for stage in "${stages[@]:0:hops}"; do
  "$bin/$stage" >"$work/$stage.log" 2>&1 &
  pids+=($!)
done
# Each hop's output, read as it comes (one reader per topic).
watch_all() { # PREFIX TOPIC...
  local prefix=$1 t w=()
  shift
  for t in "$@"; do
    "${relay[@]}" watch --topic "$t" --quiet-secs 10 >"$work/$prefix.$t.out" &
    w+=($!)
  done
  for t in "${w[@]}"; do wait "$t"; done
  for t in "$@"; do cat "$work/$prefix.$t.out"; done
}
nba_topics=(nba.interactions nba.decision-requests nba.next-best-actions)
watch_all nba "${nba_topics[@]:0:hops}"
stop_stages "$first"
keep=1000
if [ "$hops" = 3 ]; then
  keep=$(($(ends nba.decision-requests) * 1000 / $(ends nba.interactions)))
fi

echo "== the relay: $hops hop(s) of the same shape, no decoding ($keep per mille kept at the second)"
first=${#pids[@]}
"${relay[@]}" hop --from nba.interactions.raw --to relay.interactions --group relay-1 >"$work/relay-1.log" 2>&1 &
pids+=($!)
if [ "$hops" = 3 ]; then
  "${relay[@]}" hop --from relay.interactions --to relay.requests --group relay-2 --keep-permille "$keep" >"$work/relay-2.log" 2>&1 &
  pids+=($!)
  "${relay[@]}" hop --from relay.requests --to relay.out --group relay-3 >"$work/relay-3.log" 2>&1 &
  pids+=($!)
fi
relay_topics=(relay.interactions relay.requests relay.out)
watch_all relay "${relay_topics[@]:0:hops}"
for ((i = first; i < ${#pids[@]}; i++)); do kill -TERM "${pids[$i]}"; done
pids=("${pids[@]:0:first}")

# The drain: from the first output on the last topic to the last (each
# pipeline's start-up and first pass through three hops left out).
secs() { awk '{ match($0, /first [0-9.]+/); f = substr($0, RSTART + 6, RLENGTH - 6)
                match($0, /last [0-9.]+/); l = substr($0, RSTART + 5, RLENGTH - 5); print l - f }' <<<"$1"; }
hop() { # NAME NBA-TOPIC RELAY-TOPIC
  awk -v h="$1" -v n="$events" -v a="$(secs "$(cat "$work/nba.$2.out")")" -v b="$(secs "$(cat "$work/relay.$3.out")")" 'BEGIN {
    printf "%-28s nba %6.2f s (%7.0f interactions/s), relay %6.2f s (%7.0f/s): nba at %.2f of the relay\n",
      h, a, n / a, b, n / b, b / a }'
}
echo "== the drain of $events interactions, first to last output of each hop"
hop "consumer (raw -> interactions)" nba.interactions relay.interactions
if [ "$hops" = 3 ]; then
  hop "aggregator (-> requests)" nba.decision-requests relay.requests
  hop "updater (-> next-best-actions)" nba.next-best-actions relay.out
fi
echo "relay-baseline OK"
