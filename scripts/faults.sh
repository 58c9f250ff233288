#!/usr/bin/env bash
# Faults on a real Kafka-compatible broker: tansu on sqlite storage (data
# survives its restart), 3 partitions, the retail example run as one
# consumer, two feature-aggregators (changelog on) and two model-updaters
# sharing their model. A backlog of simulated interactions is sent, and while
# the stages work through it, random stages are killed with kill -9 and
# started again a second later, and the broker is killed with kill -9 and
# started again once. Then, once the lag has drained, `nba audit` reads every
# topic: every raw record is an interaction, a duplicate or a dead letter;
# every trigger made one decision request; every request has exactly one
# next-best-action; none answers no request. Each kill's recovery (restart to
# /readyz 200) is printed.
#
#   NBA_FAULTS_EVENTS  interactions to send (default 50000)
#   NBA_FAULTS_KILLS   stage kills (default 5)
#   NBA_FAULTS_PORT    broker port (default 19392)
#   NBA_FAULTS_SEED    seed of the traffic and of the victims (default 1)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
events=${NBA_FAULTS_EVENTS:-50000}
kills=${NBA_FAULTS_KILLS:-5}
port=${NBA_FAULTS_PORT:-19392}
seed=${NBA_FAULTS_SEED:-1}
RANDOM=$seed

E2E_NAME=faults
# shellcheck source=scripts/e2e-lib.sh
source "$root/scripts/e2e-lib.sh"

start_broker() {
  NBA_BROKER_STORAGE=sqlite "$root/deploy/dev-broker.sh" start "$port" 3 "$work/broker" 2>>"$work/broker.out"
  broker=$(cat "$work/broker/tansu.pid")
  pids+=("$broker")
}
echo "== tansu on sqlite storage, 127.0.0.1:$port"
start_broker
export NBA_BROKERS="127.0.0.1:$port"
export NBA_DEPLOYMENT="$root/deploy/examples/retail/deployment.toml"
# A short session and rebalance timeout: tansu 0.6.0 keeps a member killed
# without leaving in its group until the rebalance a restarted member starts
# gives up waiting for it (README: "Members that die").
export NBA_KAFKA_CONFIG="fetch.wait.max.ms=10,session.timeout.ms=6000,heartbeat.interval.ms=1000,max.poll.interval.ms=30000"

# The stages (the updaters share their model, the default); stage i serves
# /metrics on port+101+i.
names=(consumer aggregator-a aggregator-b updater-a updater-b)
binaries=(nba-consumer nba-feature-aggregator nba-feature-aggregator nba-model-updater nba-model-updater)
stage_pids=()
start_stage() {
  local i=$1
  NBA_METRICS_ADDR="127.0.0.1:$((port + 101 + i))" "$bin/${binaries[$i]}" >>"$work/${names[$i]}.log" 2>&1 &
  stage_pids[i]=$!
}
faults_cleanup() {
  local status=$?
  for p in "${stage_pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  (exit "$status")
  e2e_cleanup
}
trap faults_cleanup EXIT
# Seconds until stage i's /readyz says 200 (at most 120).
ready_after() {
  local i=$1 start=$SECONDS
  until curl -sf "http://127.0.0.1:$((port + 101 + i))/readyz" >/dev/null; do
    [ $((SECONDS - start)) -lt 120 ] || { echo "${names[$i]} not ready after 120 s" >&2; return 1; }
    sleep 0.2
  done
  echo $((SECONDS - start))
}
for i in "${!names[@]}"; do start_stage "$i"; done
for i in "${!names[@]}"; do ready_after "$i" >/dev/null; done

echo "== sending $events interactions; killing stages while they work through them"
"$bin/nba" simulate --events "$events" --seed "$seed" 2>&1 | grep -v CONFWARN | tail -1
broker_kill_at=$((kills / 2))
for k in $(seq 1 "$kills"); do
  sleep $((2 + RANDOM % 4))
  victim=$((RANDOM % ${#names[@]}))
  kill -KILL "${stage_pids[$victim]}"
  wait "${stage_pids[$victim]}" 2>/dev/null || true
  sleep 1
  start_stage "$victim"
  echo "kill $k: ${names[$victim]} (kill -9), restarted; ready after $(ready_after "$victim") s"
  if [ "$k" = "$broker_kill_at" ]; then
    kill -KILL "$broker"
    wait "$broker" 2>/dev/null || true
    sleep 2
    start_broker
    echo "broker killed (kill -9) and restarted on its sqlite storage"
  fi
done

echo "== the lag drains; nba audit reads every topic"
ok=
for _ in $(seq 1 60); do
  "$bin/nba" audit --json >"$work/audit.out" 2>&1 || true
  if grep -q '"problems":\[\]' "$work/audit.out"; then ok=1; break; fi
  sleep 5
done
grep -E "^raw " "$work/audit.out" || true
if [ -z "$ok" ]; then
  grep -oE '"problems":\[[^]]*\]' "$work/audit.out" >&2 || cat "$work/audit.out" >&2
  echo "faults: the audit found problems after the kills" >&2
  exit 1
fi
echo "== stopping the stages (SIGTERM: drain and commit)"
for i in "${!names[@]}"; do
  kill -TERM "${stage_pids[$i]}"
  wait "${stage_pids[$i]}" || { echo "${names[$i]} did not stop cleanly; see its log" >&2; exit 1; }
done
stage_pids=()
echo "faults OK"
