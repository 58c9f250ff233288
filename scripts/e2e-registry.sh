#!/usr/bin/env bash
# End-to-end with a real schema registry: Karapace 3.15.0 (Confluent-compatible;
# its source is in ../shared/vendor, installed once into a venv) on tansu. The
# registry already holds three other teams' subjects (ids 1 to 3, which nba's
# fixed ids would clash with). The three stages register nba's schemas and
# frame their outputs with the registry's ids; a producer nba did not write
# (confluent-kafka's registry-aware AvroSerializer, scripts/registry_client.py)
# sends interactions under its own version of the schema, with an optional
# field nba does not know; nba reads every one (none dead-lettered), `nba
# audit` finds nothing lost, and confluent-kafka's AvroDeserializer reads every
# next-best-action by looking its id up in the registry.
#
#   NBA_E2E_REGISTRY_EVENTS  interactions to send (default 5000)
#   NBA_E2E_REGISTRY_PORT    tansu's port (default 19292; Karapace on the next)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
events=${NBA_E2E_REGISTRY_EVENTS:-5000}
port=${NBA_E2E_REGISTRY_PORT:-19292}
registry_port=$((port + 1))
broker="127.0.0.1:$port"
registry="http://127.0.0.1:$registry_port"
tools=${NBA_TOOLS_DIR:-$HOME/.cache/nba-tools}
vendor=${NBA_SHARED_DIR:-$root/../shared}/vendor
[ -x "$vendor/install-karapace.sh" ] \
  || { echo "e2e-registry needs Karapace's source: $vendor/install-karapace.sh (set NBA_SHARED_DIR)" >&2; exit 1; }
karapace=$("$vendor/install-karapace.sh" "$tools/karapace-3.15.0")
python="$tools/registry-client/bin/python"
if [ ! -x "$python" ]; then
  python3 -m venv "$tools/registry-client"
  "$tools/registry-client/bin/pip" install -q "confluent-kafka[avro,schemaregistry]==2.16.1" cramjam >&2
fi
E2E_NAME=e2e-registry
# shellcheck source=scripts/e2e-lib.sh
source "$root/scripts/e2e-lib.sh"

echo "== tansu on $broker, Karapace on $registry"
"$root/deploy/dev-broker.sh" start "$port" 3 "$work/broker"
pids+=("$(cat "$work/broker/tansu.pid")")
"$("$root/scripts/install-tansu.sh")" topic create _schemas --partitions 1 --broker "tcp://$broker" >/dev/null
cat >"$work/karapace.json" <<JSON
{"bootstrap_uri": "$broker", "host": "127.0.0.1", "port": $registry_port,
 "advertised_hostname": "127.0.0.1", "topic_name": "_schemas", "replication_factor": 1,
 "karapace_registry": true, "karapace_rest": false, "master_eligibility": true,
 "group_id": "schema-registry-e2e", "client_id": "sr-e2e"}
JSON
"$karapace" "$work/karapace.json" >"$work/karapace.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do
  curl -sf "$registry/subjects" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf "$registry/subjects" >/dev/null || { echo "Karapace did not start" >&2; exit 1; }

echo "== other teams' subjects first: ids 1 to 3 are theirs"
for team in payments search ledger; do
  curl -sf -X POST -H "Content-Type: application/vnd.schemaregistry.v1+json" \
    --data "{\"schema\": \"{\\\"type\\\": \\\"record\\\", \\\"name\\\": \\\"$team\\\", \\\"fields\\\": [{\\\"name\\\": \\\"x\\\", \\\"type\\\": \\\"int\\\"}]}\"}" \
    "$registry/subjects/$team-value/versions"
  echo
done

echo "== the three stages with --schema-registry-url"
export NBA_BROKERS="$broker" NBA_SCHEMA_REGISTRY_URL="$registry"
export NBA_DEPLOYMENT="$root/deploy/examples/bank/deployment.toml"
for stage in nba-consumer nba-feature-aggregator nba-model-updater; do
  "$bin/$stage" >"$work/$stage.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 1 100); do
  [ "$(curl -s "$registry/subjects" | grep -o 'nba\.' | wc -l)" -ge 8 ] && break
  sleep 0.2
done
curl -s "$registry/subjects"
echo
interaction_id=$(curl -sf "$registry/subjects/nba.interactions-value/versions/latest" | grep -oE '"id":[0-9]+' | grep -oE '[0-9]+')
[ "$interaction_id" -gt 3 ] || { echo "nba.Interaction has id $interaction_id: it must not take another team's" >&2; exit 1; }

echo "== $events interactions from confluent-kafka's AvroSerializer, with a field nba does not know"
"$bin/nba" simulate --events "$events" --seed 5 --output "$work/sim.avro" | tail -1
sent=$("$python" -W ignore "$root/scripts/registry_client.py" produce "$work/sim.avro" "$broker" "$registry")
echo "sent $sent; the producer's schema: $(curl -sf "$registry/subjects/nba.interactions.raw-value/versions/latest" | grep -oE '"id":[0-9]+')"

echo "== auditing (nba reads the registry's ids too)"
"$bin/nba" audit --expect-raw "$events" --expect-dead-letters 0 --wait-secs 300 --json | tee "$work/audit.out" | tail -3
nbas=$(grep -oE '"next_best_actions":[0-9]+' "$work/audit.out" | grep -oE '[0-9]+$')

echo "== confluent-kafka's AvroDeserializer reads every next-best-action"
read=$("$python" -W ignore "$root/scripts/registry_client.py" consume "$broker" "$registry" "$nbas")
echo "AvroDeserializer read $read of $nbas next-best-actions"
[ "$read" = "$nbas" ] || exit 1

echo "== recording the topics; the backtest reads the registry's ids too"
"$bin/nba" record --topic nba.interactions.raw --topic nba.decision-requests \
  --topic nba.next-best-actions --topic nba.rewards -o "$work/live.avro"
"$bin/nba" backtest "$work/live.avro" --json | tail -1 >"$work/backtest.out"
decisions=$(grep -oE '"decision_count":[0-9]+' "$work/backtest.out" | grep -oE '[0-9]+$')
echo "backtest decisions: $decisions; live next-best-actions: $nbas"
[ "$decisions" = "$nbas" ] || { echo "the backtest made $decisions decisions, the live run $nbas" >&2; exit 1; }

stop_stages 2
echo "e2e-registry OK"
