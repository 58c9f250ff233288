#!/usr/bin/env bash
# A live pipeline that learns from the responses it causes, through a real
# Kafka-compatible broker (tansu, in memory): the three stages of the retail
# example, and `nba simulate --respond`, whose simulated customers read the
# next-best-actions and answer them. Checks that the rewards came back through
# Kafka and were joined to their decisions, and that the decisions of the last
# thousand beat uniform random on the customers' true response probabilities.
# Then a model-updater killed with kill -9 and started again in a group with
# nothing committed (every request read again) answers no request twice; a
# consumer with nothing committed writes every interaction again and the
# aggregator counts none twice; and a model-updater run with another
# deployment's model stops once, saying why, instead of dead-lettering every
# request.
#
#   NBA_E2E_EVENTS  interactions to send (default 20000)
#   NBA_E2E_PORT    broker port (default 19192)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
events=${NBA_E2E_EVENTS:-20000}
port=${NBA_E2E_PORT:-19192}

E2E_NAME=e2e-closed-loop
# shellcheck source=scripts/e2e-lib.sh
source "$root/scripts/e2e-lib.sh"

start_retail_pipeline "$port"
metrics=$((port + 103)) # the model-updater's
# The value of metric $2 on the /metrics of port $1 (its first series).
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 ~ "^"m"(\\{|$)" && !found { print $2; found = 1 }'; }

echo "== nba simulate --respond: $events interactions, each decision answered"
"$bin/nba" simulate --respond --events "$events" --seed 5 2>&1 | grep -v CONFWARN | tee "$work/simulate.out"
summary=$(grep "decisions answered" "$work/simulate.out" | tail -1)
read -r answered responses last uniform < <(awk '{
  match($0, /^[0-9]+/); n = substr($0, RSTART, RLENGTH)
  match($0, /[0-9]+ responses sent/); r = substr($0, RSTART, RLENGTH - 15)
  match($0, /last [0-9]+ [0-9.]+/); split(substr($0, RSTART, RLENGTH), l, " ")
  match($0, /uniform random [0-9.]+/); split(substr($0, RSTART, RLENGTH), u, " ")
  print n, r, l[3], u[3] }' <<<"$summary")
echo "answered $answered, responses $responses, last 1000: $last, uniform random: $uniform"
[ "$answered" -ge 1000 ] || { echo "only $answered decisions came back" >&2; exit 1; }
awk -v l="$last" -v u="$uniform" 'BEGIN { exit !(l > u) }' \
  || { echo "the live pipeline's last 1000 decisions ($last) do not beat uniform random ($uniform)" >&2; exit 1; }

sleep 2 # the scrape is re-rendered every second
joined=$(metric "$metrics" nba_rewards_joined_total)
echo "rewards joined to their decision by the model-updater: $joined of $responses responses"
awk -v j="${joined:-0}" -v r="$responses" 'BEGIN { exit !(r > 0 && j >= 0.9 * r) }' \
  || { echo "the responses did not come back as rewards joined to their decisions" >&2; exit 1; }
stop_stages 1

echo "== a model-updater killed (kill -9) and restarted answers no request twice"
# The value of metric $2 on port $1 once above 0 and the same a second later
# (at most two minutes).
settled() {
  local previous=-1 now
  for _ in $(seq 1 120); do
    now=$(metric "$1" "$2")
    [ "${now:-0}" -gt 0 ] && [ "$now" = "$previous" ] && break
    previous=${now:-0}
    sleep 1
  done
  echo "${now:-0}"
}
for stage in nba-consumer nba-feature-aggregator; do
  "$bin/$stage" >"$work/$stage.crash.log" 2>&1 &
  pids+=($!)
done
crashed=$((port + 110))
NBA_GROUP_ID=e2e-crash NBA_METRICS_ADDR="127.0.0.1:$crashed" \
  "$bin/nba-model-updater" >"$work/crash-before.log" 2>&1 &
victim=$!
wait_for_port "$crashed"
sleep 3 # the group forms
"$bin/nba" simulate --events 3000 --seed 9 2>&1 | grep -v CONFWARN | tail -1
decided=$(settled "$crashed" nba_decisions_total)
kill -KILL "$victim"
wait "$victim" 2>/dev/null || true
echo "killed the model-updater after $decided decisions"
# A group with nothing committed: the restarted updater reads every request
# again, those of the closed loop above and those the killed one answered.
restarted=$((port + 111))
NBA_GROUP_ID=e2e-crash-restarted NBA_METRICS_ADDR="127.0.0.1:$restarted" \
  "$bin/nba-model-updater" >"$work/crash-after.log" 2>&1 &
pids+=($!)
wait_for_port "$restarted"
again=$(settled "$restarted" nba_requests_answered_before_total)
grep -ohE "recalled [0-9]+ answer\(s\)[^,]*, in [0-9.]+ s" "$work/crash-after.log"
echo "after the restart: $again requests answered before, $(metric "$restarted" nba_decisions_total) decided"
"$bin/nba" audit --json >"$work/crash-audit.out" 2>&1 || true
if grep -oE "[0-9]+ decision requests have more than one next-best-action[^\"]*" "$work/crash-audit.out"; then
  echo "a request was answered twice after the restart" >&2; exit 1
fi
[ "${again:-0}" -ge "$decided" ] \
  || { echo "the restarted model-updater recognised ${again:-0} requests as answered, fewer than the $decided the killed one decided" >&2; exit 1; }
stop_stages 1

echo "== a consumer with nothing committed writes every interaction again: none counts twice"
# As a consumer killed before its first commit would: a new group reads the
# whole raw topic and writes each interaction again at a new offset; the
# aggregator knows each copy by its nba.origin header.
aggregated=$((port + 112))
NBA_METRICS_ADDR="127.0.0.1:$aggregated" "$bin/nba-feature-aggregator" >"$work/copies-aggregator.log" 2>&1 &
pids+=($!)
"$bin/nba-model-updater" >"$work/copies-updater.log" 2>&1 &
pids+=($!)
wait_for_port "$aggregated"
sleep 3 # the groups form
"$bin/nba" audit --json >"$work/copies-before.out" 2>&1 || true
requests_before=$(grep -oE '"decision_requests":[0-9]+' "$work/copies-before.out" | cut -d: -f2)
NBA_GROUP_ID=e2e-copies "$bin/nba-consumer" >"$work/copies-consumer.log" 2>&1 &
pids+=($!)
copies=$(settled "$aggregated" nba_upstream_copies_skipped_total)
"$bin/nba" audit --json >"$work/copies-after.out" 2>&1 || true
written_again=$(grep -oE '"interaction_copies":[0-9]+' "$work/copies-after.out" | cut -d: -f2)
requests_after=$(grep -oE '"decision_requests":[0-9]+' "$work/copies-after.out" | cut -d: -f2)
echo "interactions written again: $written_again; skipped by the aggregator as copies: $copies; decision requests before $requests_before, after $requests_after"
[ "${copies:-0}" -gt 0 ] && [ "$copies" = "$written_again" ] \
  || { echo "the aggregator took ${copies:-0} copies of the ${written_again:-?} written again" >&2; exit 1; }
[ "$requests_before" = "$requests_after" ] \
  || { echo "copies of interactions asked for decisions again" >&2; exit 1; }
stop_stages 1

echo "== a model-updater with another deployment's model stops once, saying why"
if NBA_DEPLOYMENT="$root/deploy/examples/bank/deployment.toml" NBA_GROUP_ID=e2e-other-deployment \
  "$bin/nba-model-updater" >"$work/misfit.log" 2>&1; then
  echo "a model-updater of another deployment went on" >&2; exit 1
fi
grep -oE "error: .*made under another deployment \(the first, [^:]+: context has [0-9]+ entries; this model expects [0-9]+" "$work/misfit.log"
if grep -q "dead-lettered as strays" "$work/misfit.log"; then
  echo "requests of another deployment were dead-lettered" >&2; exit 1
fi
echo "e2e-closed-loop OK"
