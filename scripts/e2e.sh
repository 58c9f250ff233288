#!/usr/bin/env bash
# End-to-end test on a real Kafka-compatible broker (tansu, in memory, on
# 127.0.0.1): starts the broker and the three stage binaries, sends simulated
# interactions plus malformed records with `nba simulate`, and checks with
# `nba audit` that every decision request got exactly one next-best-action, every
# malformed record is in the dead-letter topic, and nothing else is missing.
# Cleans up every process it started.
#
#   NBA_E2E_EVENTS      interactions to send (default 100000)
#   NBA_E2E_MALFORMED   malformed records to send (default 21)
#   NBA_E2E_PORT        broker port (default 19092, to stay clear of a broker you run)
#   NBA_E2E_PARTITIONS  partitions per topic (default 3)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
events=${NBA_E2E_EVENTS:-100000}
malformed=${NBA_E2E_MALFORMED:-21}
port=${NBA_E2E_PORT:-19092}
partitions=${NBA_E2E_PARTITIONS:-3}
broker="127.0.0.1:$port"

tansu=$("$root/scripts/install-tansu.sh")
cargo build --release --quiet -p nba-cli -p nba-consumer -p nba-feature-aggregator -p nba-model-updater
bin="$root/target/release"

work=$(mktemp -d -t nba-e2e.XXXXXX)
pids=()
cleanup() {
  local status=$?
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$status" -ne 0 ]; then
    echo "e2e FAILED; last log lines:" >&2
    for f in "$work"/*.log; do echo "== $f" >&2; tail -n 20 "$f" >&2; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "port $port is in use; set NBA_E2E_PORT to a free port" >&2
  exit 1
fi

echo "== starting tansu on $broker"
"$tansu" broker --listener-url "tcp://$broker" --advertised-listener-url "tcp://$broker" \
  --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
for t in nba.interactions.raw nba.interactions nba.decision-requests nba.rewards nba.next-best-actions nba.dlq nba.model-deltas; do
  "$tansu" topic create "$t" --partitions "$partitions" --broker "tcp://$broker" >>"$work/tansu.log" 2>&1
done

echo "== starting the three stages"
export NBA_BROKERS="$broker"
export NBA_CHECKPOINT="$work/model.checkpoint"
for stage in nba-consumer nba-feature-aggregator nba-model-updater; do
  "$bin/$stage" >"$work/$stage.log" 2>&1 &
  pids+=($!)
done

echo "== sending $events interactions and $malformed malformed records"
start=$(date +%s.%N)
"$bin/nba" simulate --events "$events" --malformed "$malformed" --seed 7
echo "== auditing the topics"
"$bin/nba" audit --expect-raw $((events + malformed)) --expect-dead-letters "$malformed" \
  --wait-secs 600 --json | tee "$work/audit.out"
end=$(date +%s.%N)
awk -v n="$events" -v s="$start" -v e="$end" \
  'BEGIN { printf "e2e throughput: %d interactions through the broker and three stages in %.1f s = %.0f events/s\n", n, e - s, n / (e - s) }'

echo "== stopping the stages (SIGTERM: drain and commit)"
for i in 1 2 3; do
  p=${pids[$i]}
  kill -TERM "$p"
  if ! wait "$p"; then
    echo "a stage did not stop cleanly; see its log" >&2
    exit 1
  fi
done
pids=("${pids[0]}")
grep -h "stopped:\|learned:" "$work"/nba-*.log

echo "== restarting the model-updater from its checkpoint and the model topic"
test -s "$NBA_CHECKPOINT" || { echo "no checkpoint written at $NBA_CHECKPOINT" >&2; exit 1; }
"$bin/nba-model-updater" >"$work/nba-model-updater.restart.log" 2>&1 &
restarted=$!
for _ in $(seq 1 300); do
  grep -q "reading nba.decision-requests" "$work/nba-model-updater.restart.log" && break
  sleep 0.1
done
kill -TERM "$restarted"
wait "$restarted" || { cat "$work/nba-model-updater.restart.log" >&2; exit 1; }
grep -h "restored\|caught up\|learned:" "$work/nba-model-updater.restart.log"
grep -q "restored" "$work/nba-model-updater.restart.log"
echo "e2e OK"
