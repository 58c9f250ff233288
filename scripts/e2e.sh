#!/usr/bin/env bash
# End-to-end test on a real Kafka-compatible broker (tansu, in memory, on
# 127.0.0.1) of the bank example (deploy/examples/bank/deployment.toml: a
# business nba knows only from its file): starts the broker and the three stage
# binaries, publishes a catalog version (one action added, one retired, from
# the third day of event time), sends simulated interactions (profile events,
# request attributes and metrics) plus malformed records with `nba simulate`,
# and checks with `nba audit` that every decision request got exactly one
# next-best-action, every malformed record is in the dead-letter topic, and
# nothing else is missing; then that the catalog change took effect when it
# said. Cleans up every process it started.
#
#   NBA_E2E_EVENTS      interactions to send (default 100000)
#   NBA_E2E_MALFORMED   malformed records to send (default 44: each kind the
#                       bank deployment refuses once, nba_sim::malformed_kinds)
#   NBA_E2E_PORT        broker port (default 19092, to stay clear of a broker you run)
#   NBA_E2E_PARTITIONS  partitions per topic (default 3)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
events=${NBA_E2E_EVENTS:-100000}
malformed=${NBA_E2E_MALFORMED:-44}
port=${NBA_E2E_PORT:-19092}
partitions=${NBA_E2E_PARTITIONS:-3}
broker="127.0.0.1:$port"

E2E_NAME=e2e
# shellcheck source=scripts/e2e-lib.sh
source "$root/scripts/e2e-lib.sh"

echo "== a stage with no broker says so on /readyz (and logs once per backoff step)"
nobroker_metrics=$((port + 99))
NBA_DEPLOYMENT="$root/deploy/examples/bank/deployment.toml" "$bin/nba-consumer" --brokers 127.0.0.1:1 \
  --metrics-addr "127.0.0.1:$nobroker_metrics" >"$work/no-broker.log" 2>&1 &
pids+=($!)
sleep 13
readyz=$(curl -s -w ' HTTP %{http_code}' "http://127.0.0.1:$nobroker_metrics/readyz")
echo "/readyz: $readyz" | cut -c1-200
case "$readyz" in *"waiting for the brokers at 127.0.0.1:1"*"HTTP 503") ;; *) echo "a stage with no broker said it was ready" >&2; exit 1 ;; esac
grep -q "waiting for the brokers at 127.0.0.1:1" "$work/no-broker.log" \
  || { echo "a stage with no broker did not say it waits for it" >&2; exit 1; }
echo "log lines in 13 s: $(wc -l <"$work/no-broker.log")"
stop_stages 0

echo "== starting tansu on $broker (deploy/dev-broker.sh)"
"$root/deploy/dev-broker.sh" start "$port" "$partitions" "$work/broker"
pids+=("$(cat "$work/broker/tansu.pid")")

echo "== nba topics check; a changelog that is not compacted is refused"
"$bin/nba" topics check --brokers "$broker" | tail -1
"$("$root/scripts/install-tansu.sh")" topic create e2e.plain-state --partitions "$partitions" \
  --broker "tcp://$broker" >/dev/null
if NBA_TOPIC_CUSTOMER_STATE=e2e.plain-state "$bin/nba" topics check --brokers "$broker" >"$work/check.out"; then
  echo "nba topics check passed a changelog that is not compacted" >&2; exit 1
fi
grep "PROBLEM: e2e.plain-state has cleanup.policy" "$work/check.out"
if NBA_TOPIC_CUSTOMER_STATE=e2e.plain-state NBA_BROKERS="$broker" \
  NBA_DEPLOYMENT="$root/deploy/examples/bank/deployment.toml" "$bin/nba-feature-aggregator" \
  >"$work/refused.log" 2>&1; then
  echo "the feature-aggregator started on a changelog that is not compacted" >&2; exit 1
fi
grep -o "error: .*cleanup.policy=compact" "$work/refused.log" | cut -c1-160
echo "== a model topic that deletes deltas the model still remembers is refused"
"$("$root/scripts/install-tansu.sh")" topic create e2e.short-deltas --partitions 1 \
  --config retention.ms=3600000 --broker "tcp://$broker" >/dev/null
if NBA_TOPIC_MODEL_DELTAS=e2e.short-deltas NBA_BROKERS="$broker" NBA_INSTANCE_ID=e2e-check \
  NBA_DEPLOYMENT="$root/deploy/examples/bank/deployment.toml" "$bin/nba-model-updater" \
  >"$work/refused-deltas.log" 2>&1; then
  echo "the model-updater started on a model topic that deletes deltas after an hour" >&2; exit 1
fi
grep -o "error: e2e.short-deltas has retention.ms=3600000, nba needs retention.ms=[0-9]* or more (the model's window" \
  "$work/refused-deltas.log"

echo "== checking the deployment, starting the three stages"
export NBA_BROKERS="$broker"
export NBA_CHECKPOINT="$work/model.checkpoint"
# The bank example: its contact policy (eligibility in the aggregator, caps in
# the updater) is its [contact] section.
export NBA_DEPLOYMENT="$root/deploy/examples/bank/deployment.toml"
"$bin/nba" config check "$NBA_DEPLOYMENT" | tail -4
metrics_port=$((port + 100))
for stage in nba-consumer nba-feature-aggregator nba-model-updater; do
  metrics_port=$((metrics_port + 1))
  NBA_METRICS_ADDR="127.0.0.1:$metrics_port" NBA_LATENCY_LOG="$work/$stage.hlog" NBA_LATENCY_LOG_SECS=2 \
    "$bin/$stage" >"$work/$stage.log" 2>&1 &
  pids+=($!)
done

echo "== publishing a catalog version while the stages run"
# From 2026-01-03 (the third simulated day): car_loan retired, green_mortgage
# added. The same file otherwise, so it checks against the same declarations.
changed="$work/bank-2026-01-03.toml"
effective=2026-01-03T00:00:00Z
sed -e 's/^id = "car_loan"$/id = "car_loan"\nvalid_until = 2026-01-03T00:00:00Z/' "$NBA_DEPLOYMENT" >"$changed"
cat >>"$changed" <<'TOML'

[[action]]
id = "green_mortgage"
name = "A mortgage for an energy-efficient home"
group = "acquisition/lending"
value = 2200.0
valid_from = 2026-01-03T00:00:00Z
tags = { product = "lending", category = "mortgages" }
[action.channels]
app = { template = "offer-green-mortgage" }
web = { template = "offer-green-mortgage" }
TOML
"$bin/nba" catalog publish --deployment "$changed" --effective-from "$effective"
"$bin/nba" catalog show | head -1
sleep 2 # the stages read the catalog topic as it changes

echo "== sending $events interactions and $malformed malformed records"
start=$(date +%s.%N)
"$bin/nba" simulate --events "$events" --malformed "$malformed" --seed 7 2>&1 | tee "$work/simulate.out"
customers=$(grep -oE 'from [0-9]+ customers' "$work/simulate.out" | grep -oE '[0-9]+')
echo "== auditing the topics"
"$bin/nba" audit --expect-raw $((events + malformed)) --expect-dead-letters "$malformed" \
  --wait-secs 600 --json | tee "$work/audit.out"
end=$(date +%s.%N)
awk -v n="$events" -v s="$start" -v e="$end" \
  'BEGIN { printf "e2e throughput: %d interactions through the broker and three stages in %.1f s = %.0f events/s\n", n, e - s, n / (e - s) }'

echo "== /metrics, /readyz of each stage"
# GET over bash's /dev/tcp (no curl needed); fails unless the answer is 200.
http_get() {
  exec 3<>"/dev/tcp/127.0.0.1/$1"
  printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&3
  local response
  response=$(cat <&3)
  exec 3<&-
  case "$response" in "HTTP/1.1 200"*) printf '%s\n' "$response" ;; *) echo "GET :$1$2 failed: $response" >&2; return 1 ;; esac
}
sleep 1.5 # scrapes are re-rendered every second
for p in $((port + 101)) $((port + 102)) $((port + 103)); do
  http_get "$p" /readyz >/dev/null
  http_get "$p" /metrics | grep -E '^nba_(records_in|records_out|dead_letters)_total'
done
http_get $((port + 103)) /metrics \
  | grep -E '^nba_(step_latency|input_to_publication_latency|event_to_publication_latency)_seconds_count'
# The contact policy acted in both stages, and every request was still answered
# (the audit above): candidates removed by eligibility rules and by caps.
aggregator_metrics=$(http_get $((port + 102)) /metrics)
grep -E '^nba_candidates_ineligible_total\{[^}]*\} [1-9]' <<<"$aggregator_metrics"
# Profile events set the customers' declared fields; every stage took the catalog version.
grep -E '^nba_profile_updates_total\{[^}]*\} [1-9]' <<<"$aggregator_metrics"
grep -E '^nba_catalog_versions_total\{[^}]*\} 1$' <<<"$aggregator_metrics"
# Not `grep -q` on a pipe: it exits at the first match, the writer gets SIGPIPE
# and pipefail fails the script (seen in CI).
updater_metrics=$(http_get $((port + 103)) /metrics)
grep -E '^nba_(candidates_capped|decisions_suppressed|decisions_mandatory|catalog_versions)_total' <<<"$updater_metrics"
grep -E '^nba_catalog_versions_total\{[^}]*\} 1$' <<<"$updater_metrics" >/dev/null \
  || { echo "the model-updater did not take the catalog version" >&2; exit 1; }
grep -E '^nba_candidates_capped_total\{[^}]*\} [1-9]' <<<"$updater_metrics" >/dev/null \
  || { echo "the contact policy's caps removed nothing" >&2; exit 1; }

echo "== recording the topics and backtesting the recording"
"$bin/nba" record --topic nba.interactions.raw --topic nba.decision-requests \
  --topic nba.next-best-actions --topic nba.rewards --topic nba.catalog -o "$work/live.avro"
"$bin/nba" backtest "$work/live.avro" --json --decisions "$work/decisions.jsonl" \
  --candidate linucb --candidate random | tee "$work/backtest.out" | grep -v '^{'
decisions=$(tail -1 "$work/backtest.out" | grep -oE '"decision_count":[0-9]+' | grep -oE '[0-9]+$')
live_nbas=$(grep -oE '"next_best_actions":[0-9]+' "$work/audit.out" | grep -oE '[0-9]+$')
echo "backtest decisions: $decisions; live next-best-actions: $live_nbas"
[ "$decisions" = "$live_nbas" ] || { echo "the backtest made $decisions decisions, the live run $live_nbas" >&2; exit 1; }
tail -1 "$work/backtest.out" | grep '"evaluation"' >/dev/null || { echo "no candidate evaluation in the backtest report" >&2; exit 1; }
tail -1 "$work/backtest.out" | grep '"catalog_versions":1' >/dev/null \
  || { echo "the backtest did not take the recorded catalog version" >&2; exit 1; }
# The catalog change, decision by decision: car_loan never chosen from the
# change on, green_mortgage never before it and chosen after it.
change_ms=$(( $(date -d "$effective" +%s) * 1000 ))
awk -v t="$change_ms" '
  { match($0, /"timestamp":[0-9]+/); ts = substr($0, RSTART + 12, RLENGTH - 12) + 0
    match($0, /"action_id":"[^"]*"/); a = substr($0, RSTART + 13, RLENGTH - 14) }
  a == "car_loan" && ts >= t { retired++ }
  a == "green_mortgage" && ts < t { early++ }
  a == "green_mortgage" && ts >= t { added++ }
  END { printf "after the change: car_loan %d, green_mortgage %d (before it: %d)\n", retired, added, early
        exit (retired > 0 || early > 0 || added == 0) }' "$work/decisions.jsonl" \
  || { echo "the catalog change did not take effect at its event time" >&2; exit 1; }

stop_stages 1
grep -h "stopped:\|learned:" "$work"/nba-*.log
echo "== latency of the model-updater from its interval log"
"$bin/nba" latency "$work/nba-model-updater.hlog" --tag decision | grep -E "^tag|all"
jar=/usr/share/java/hdrhistogram.jar
if command -v java >/dev/null && [ -f "$jar" ]; then
  echo "== the same log through HdrHistogram's own HistogramLogProcessor (Java)"
  java -cp "$jar" org.HdrHistogram.HistogramLogProcessor -i "$work/nba-model-updater.hlog" \
    -tag model-updater.decision -outputValueUnitRatio 1 -o "$work/hlp" >/dev/null
  theirs=$(grep -oE 'Total count += +[0-9]+' "$work/hlp.hgrm" | grep -oE '[0-9]+$')
  ours=$("$bin/nba" latency "$work/nba-model-updater.hlog" --tag model-updater.decision --json | tail -1 \
    | grep -oE '"total":\{"count":[0-9]+' | grep -oE '[0-9]+$')
  echo "HistogramLogProcessor: $theirs decisions; nba latency: $ours"
  [ "$theirs" = "$ours" ] || { echo "HistogramLogProcessor and nba latency disagree" >&2; exit 1; }
else
  echo "(HistogramLogProcessor check skipped: install java and Debian's libhdrhistogram-java)"
fi

# Starts stage $1 again, logging to $2, until the log shows $3; then stops it.
restart_briefly() {
  "$bin/$1" >"$2" 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do
    grep -q "$3" "$2" && break
    sleep 0.1
  done
  kill -TERM "$pid"
  wait "$pid" || { cat "$2" >&2; exit 1; }
}

echo "== restarting the model-updater from its checkpoint and the model topic"
test -s "$NBA_CHECKPOINT" || { echo "no checkpoint written at $NBA_CHECKPOINT" >&2; exit 1; }
log="$work/nba-model-updater.restart.log"
restart_briefly nba-model-updater "$log" "reading nba.decision-requests"
grep -h "restored\|caught up\|learned:" "$log"
grep -q "restored" "$log"

echo "== restarting the feature-aggregator from its changelog"
log="$work/nba-feature-aggregator.restart.log"
restart_briefly nba-feature-aggregator "$log" "record(s) of nba.customer-state"
grep -h "record(s) of nba.customer-state" "$log"
# Every customer had interactions, so every one has a state in the changelog
# (some several: one per second in which they changed).
restored=$(sed -nE '0,/restored [0-9]+ record/s/.*restored ([0-9]+) record.*/\1/p' "$log")
[ "${restored:-0}" -ge "$customers" ] \
  || { echo "restored ${restored:-0} customer states, expected at least $customers" >&2; exit 1; }
echo "e2e OK"
