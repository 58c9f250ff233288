#!/usr/bin/env bash
# End-to-end over TLS and SASL, with zstd-compressed input: the three stages,
# `nba simulate` and `nba audit` as real librdkafka clients with
# security.protocol=sasl_ssl against tansu with authentication required.
#
# tansu 0.6.0 requires SASL (SCRAM-SHA-256 or SCRAM-SHA-512; it offers no
# PLAIN or OAUTHBEARER) with --authentication, but does not serve TLS (its --cert/--key are read and not
# used), so stunnel (Debian's stunnel4) terminates TLS on loopback in front of
# it, and tansu advertises stunnel's port: every client connection, bootstrap
# and broker, goes through TLS and then SASL. The CA is made here and named
# with ssl.ca.location.
#
# Also checks that the settings compose: the stages share one --config file
# (kafka-config with the protocol, mechanism and user) and take the password
# from NBA_KAFKA_CONFIG, as a ConfigMap and a Secret would give them; and that
# a wrong password, a CA that is not trusted and a mechanism the broker does
# not offer are refused.
#
#   NBA_E2E_SECURE_EVENTS  interactions to send (default 5000: tansu on sqlite
#                          storage, which keeps the users, is slow to serve
#                          many small batches to clients over TLS)
#   NBA_E2E_SECURE_PORT    tansu's port (default 19192; stunnel listens on the next)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
events=${NBA_E2E_SECURE_EVENTS:-5000}
port=${NBA_E2E_SECURE_PORT:-19192}
tls_port=$((port + 1))
stunnel=$(command -v stunnel4 || command -v stunnel || true)
[ -n "$stunnel" ] || { echo "e2e-security needs stunnel: apt-get install stunnel4" >&2; exit 1; }
command -v openssl >/dev/null || { echo "e2e-security needs openssl: apt-get install openssl" >&2; exit 1; }
tansu=$("$root/scripts/install-tansu.sh")
E2E_NAME=e2e-security
# shellcheck source=scripts/e2e-lib.sh
source "$root/scripts/e2e-lib.sh"
cd "$work" # tansu opens a sqlite path relative to its working directory

echo "== a CA and a certificate for 127.0.0.1"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=nba e2e CA" \
  -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
  -extfile san.ext -out server.pem 2>/dev/null
# A second CA, which signed nothing here: a client that trusts only it must refuse the broker.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=other CA" \
  -keyout other.key -out other.pem 2>/dev/null

echo "== tansu without authentication: users and topics (sqlite, kept for the next start)"
"$tansu" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
  --storage-engine sqlite://tansu.db --silent >tansu-setup.log 2>&1 &
setup=$!
wait_for_port "$port"
"$tansu" user create alice alice-secret --mechanism scram512 --broker "tcp://127.0.0.1:$port"
"$tansu" user create bob bob-secret --mechanism scram256 --broker "tcp://127.0.0.1:$port"
"$bin/nba" topics create --brokers "127.0.0.1:$port" --partitions 3 >>tansu-setup.log 2>&1
kill -TERM "$setup"
wait "$setup" || true

echo "== tansu with SASL required on :$port, stunnel (TLS) on :$tls_port in front of it"
"$tansu" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$tls_port" \
  --storage-engine sqlite://tansu.db --authentication --silent >tansu.log 2>&1 &
pids+=($!)
cat >stunnel.conf <<EOF
foreground = yes
pid =
[kafka]
accept = 127.0.0.1:$tls_port
connect = 127.0.0.1:$port
cert = $work/server.pem
key = $work/server.key
EOF
"$stunnel" stunnel.conf >stunnel.log 2>&1 &
pids+=($!)
wait_for_port "$port"
wait_for_port "$tls_port"

# One file for every stage (a ConfigMap) with a section per stage, the
# password from the environment (a Secret). fetch.wait.max.ms=10: tansu 0.6.0
# answers a fetch no sooner than half the client's wait (see e2e-lib.sh).
#
# tansu grants every SASL session 60 s, so each connection re-authenticates
# (KIP-368) about once a minute during the run; tansu 0.6.0 as published
# refused that ("Unsupported SASL mechanism"), which install-tansu.sh patches.
# Such a failure is checked for in the stages' logs at the end.
cat >nba.toml <<EOF
brokers = "127.0.0.1:$tls_port"
kafka-config = ["security.protocol=sasl_ssl", "ssl.ca.location=$work/ca.pem", "sasl.mechanism=SCRAM-SHA-512", "sasl.username=alice", "fetch.wait.max.ms=10"]

[consumer]
dedup-window = "1h"

[aggregator]
changelog-interval = "500ms"

[updater]
model-publish-ms = 500
kafka-config = ["client.id=nba-updater-e2e"]
EOF
export NBA_DEPLOYMENT="$root/deploy/examples/bank/deployment.toml"

echo "== what is refused: a wrong password, an untrusted CA, a mechanism tansu does not offer"
refused() {
  local what=$1 cause=$2
  shift 2
  if "$bin/nba" audit --brokers "127.0.0.1:$tls_port" -X security.protocol=sasl_ssl "$@" \
    --timeout 5s --wait-secs 1 >"refused-$what.log" 2>&1; then
    echo "a client with $what was let in" >&2
    exit 1
  fi
  # The message says why, not only "Broker transport failure".
  grep -q "last error: .*$cause" "refused-$what.log" \
    || { echo "refused $what without saying '$cause':" >&2; cat "refused-$what.log" >&2; exit 1; }
  echo "refused: $what ($cause)"
}
refused "a wrong password" "SASL SCRAM authentication failed" -X ssl.ca.location="$work/ca.pem" \
  -X sasl.mechanism=SCRAM-SHA-512 -X sasl.username=alice -X sasl.password=wrong
refused "an untrusted CA" "certificate verify failed" -X ssl.ca.location="$work/other.pem" \
  -X sasl.mechanism=SCRAM-SHA-512 -X sasl.username=alice -X sasl.password=alice-secret
# The client makes its token and authenticates; tansu knows no OAUTHBEARER.
refused "OAUTHBEARER" "SASL authentication error" -X ssl.ca.location="$work/ca.pem" \
  -X sasl.mechanism=OAUTHBEARER -X enable.sasl.oauthbearer.unsecure.jwt=true \
  -X sasl.oauthbearer.config=principal=nba

echo "== the three stages: SCRAM-SHA-512 over TLS, one --config file plus NBA_KAFKA_CONFIG"
metrics_port=$((port + 100))
for stage in nba-consumer nba-feature-aggregator nba-model-updater; do
  metrics_port=$((metrics_port + 1))
  NBA_CONFIG="$work/nba.toml" NBA_KAFKA_CONFIG="sasl.password=alice-secret" \
    NBA_METRICS_ADDR="127.0.0.1:$metrics_port" "$bin/$stage" >"$stage.log" 2>&1 &
  pids+=($!)
done
NBA_CONFIG="$work/nba.toml" NBA_KAFKA_CONFIG="sasl.password=alice-secret" \
  "$bin/nba-model-updater" --print-config | grep -E '^kafka-config' | tee print-config.out
grep -q 'sasl.password=\*\*\*\*' print-config.out || { echo "--print-config did not mask the password" >&2; exit 1; }
grep -q 'client.id=nba-updater-e2e' print-config.out || { echo "the [updater] section's kafka-config was not added" >&2; exit 1; }

stages_started=$SECONDS
# simulate EVENTS SEED: interactions (and 5 bad records), zstd-compressed, as bob.
simulate() {
  echo "== $1 interactions, zstd-compressed, as bob (SCRAM-SHA-256)"
  "$bin/nba" simulate --brokers "127.0.0.1:$tls_port" --events "$1" --malformed 5 --seed "$2" \
    -X security.protocol=sasl_ssl -X ssl.ca.location="$work/ca.pem" -X sasl.mechanism=SCRAM-SHA-256 \
    -X sasl.username=bob -X sasl.password=bob-secret -X compression.type=zstd 2>&1 | tail -2
}
# audit RAW DEAD_LETTERS: every topic read as alice; the counts must match.
audit() {
  echo "== auditing over TLS and SASL"
  "$bin/nba" audit --brokers "127.0.0.1:$tls_port" --expect-raw "$1" --expect-dead-letters "$2" \
    --wait-secs 300 --timeout 120s -X security.protocol=sasl_ssl -X ssl.ca.location="$work/ca.pem" \
    -X sasl.mechanism=SCRAM-SHA-512 -X sasl.username=alice -X sasl.password=alice-secret \
    -X fetch.wait.max.ms=10 | tail -4
}

start=$(date +%s.%N)
simulate "$events" 11
audit $((events + 5)) 5
end=$(date +%s.%N)
awk -v n="$events" -v s="$start" -v e="$end" \
  'BEGIN { printf "e2e-security throughput: %d interactions over TLS and SCRAM (zstd input, tansu on sqlite) through three stages and audited in %.1f s = %.0f events/s\n", n, e - s, n / (e - s) }'

# Past the 60 s sessions tansu grants, every connection of the stages has
# re-authenticated: they must still take, decide and publish.
wait_until=$((stages_started + 70))
echo "== waiting $((wait_until - SECONDS > 0 ? wait_until - SECONDS : 0)) s: the stages' SASL sessions end and re-authenticate"
while [ "$SECONDS" -lt "$wait_until" ]; do sleep 1; done
simulate 1000 12
audit $((events + 1000 + 10)) 10

stop_stages 2
if grep -l "Unsupported SASL mechanism" nba-*.log; then
  echo "the broker refused a stage's re-authentication (is tansu patched? see install-tansu.sh)" >&2
  exit 1
fi
echo "e2e-security OK"
