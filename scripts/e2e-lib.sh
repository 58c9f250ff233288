# shellcheck shell=bash
# Sourced by the end-to-end scripts (scripts/e2e*.sh): builds the binaries,
# makes a work directory, and on exit stops every process listed in `pids`
# (SIGTERM, then waits) and, if the script failed, shows the last lines of
# every log in the work directory before removing it (NBA_E2E_KEEP=1 keeps
# it). Set E2E_NAME first.
#
# Gives: $root, $bin (target/release), $work, pids (append to it),
# wait_for_port PORT, start_retail_pipeline PORT and stop_stages FIRST.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cargo build --release --quiet -p nba-cli -p nba-consumer -p nba-feature-aggregator -p nba-model-updater
bin="$root/target/release"
work=$(mktemp -d -t "${E2E_NAME:?set E2E_NAME}.XXXXXX")
pids=()

e2e_cleanup() {
  local status=$? p deadline=$((SECONDS + 60))
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  # A stage whose broker is unreachable may never finish leaving its group
  # (librdkafka's close waits for the coordinator): 60 s, then SIGKILL.
  for p in "${pids[@]}"; do
    while running "$p" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    if running "$p"; then
      echo "process $p did not stop within 60 s of SIGTERM: killing it" >&2
      kill -KILL "$p" 2>/dev/null || true
    fi
    wait "$p" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ]; then
    echo "$E2E_NAME FAILED; last log lines:" >&2
    for f in "$work"/*.log "$work"/broker/*.log; do
      [ -f "$f" ] || continue
      echo "== $f" >&2
      tail -n 20 "$f" >&2
    done
  fi
  if [ -n "${NBA_E2E_KEEP:-}" ]; then echo "(kept $work)" >&2; else rm -rf "$work"; fi
}
trap e2e_cleanup EXIT

# Whether process PID still runs (not merely waiting to be reaped).
running() {
  [ -e "/proc/$1/stat" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null
}

# Waits up to 10 s for something to listen on 127.0.0.1:PORT.
wait_for_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# Stops the stages, pids[FIRST] onwards, with SIGTERM (they drain and commit)
# and fails unless each stops cleanly; they leave `pids`.
stop_stages() {
  local first=$1 i
  echo "== stopping the stages (SIGTERM: drain and commit)"
  for ((i = first; i < ${#pids[@]}; i++)); do
    kill -TERM "${pids[$i]}"
    wait "${pids[$i]}" || { echo "a stage did not stop cleanly; see its log" >&2; return 1; }
  done
  pids=("${pids[@]:0:first}")
}

# Starts tansu in memory on 127.0.0.1:PORT (3 partitions) and the three stages
# of the retail example against it, with /metrics on PORT+101..PORT+103;
# waits for the groups to form. Exports NBA_BROKERS, NBA_DEPLOYMENT and
# NBA_KAFKA_CONFIG (fetch.wait.max.ms=10, then $EXTRA_KAFKA_CONFIG if set).
# The broker is pids[0], the stages pids[1..3].
start_retail_pipeline() {
  local port=$1 metrics stage
  echo "== starting tansu on 127.0.0.1:$port"
  "$root/deploy/dev-broker.sh" start "$port" 3 "$work/broker"
  pids+=("$(cat "$work/broker/tansu.pid")")
  export NBA_BROKERS="127.0.0.1:$port"
  export NBA_DEPLOYMENT="$root/deploy/examples/retail/deployment.toml"
  # tansu 0.6.0 answers a fetch no sooner than half the consumer's wait, even
  # when records are there (tansu-storage-0.6.0/src/service/fetch.rs: it
  # sleeps before checking what it has): a short wait keeps each hop short.
  export NBA_KAFKA_CONFIG="fetch.wait.max.ms=10${EXTRA_KAFKA_CONFIG:+,$EXTRA_KAFKA_CONFIG}"
  metrics=$((port + 100))
  for stage in nba-consumer nba-feature-aggregator nba-model-updater; do
    metrics=$((metrics + 1))
    NBA_METRICS_ADDR="127.0.0.1:$metrics" "$bin/$stage" >"$work/$stage.log" 2>&1 &
    pids+=($!)
  done
  wait_for_port "$metrics"
  sleep 3 # the groups form
}
