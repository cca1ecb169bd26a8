#!/usr/bin/env bash
# Load benchmark: builds the release binary and the floor (examples/floor.rs: a bare hyper 1 server
# that reads the body and answers fixed JSON), then for each scenario starts a fresh server on a
# loopback port, drives it with wrk (bounded in time) and prints requests/s, p50/p99 latency and the
# share of the floor's requests/s. Scenarios run back to back in one invocation so their figures can be
# compared; on a shared 2-core machine compare ratios from one run, never absolute numbers across runs.
#
# usage: scripts/load.sh [-c CONNECTIONS] [-d SECONDS] [-t THREADS] [SCENARIO ...]
# scenarios: floor (the bare hyper server), fallback (AUTH_MODE=none, unknown tag),
#            balance (account.balance from SQLite), oidc (google-oidc, a valid token each request),
#            oidc-nocache (the same with AUTH_TOKEN_CACHE_SIZE=0: RSA verification on every request),
#            deployed (as deployed: google-oidc with a cached token, account.balance, RUST_LOG=info),
#            deployed-warn (the same with RUST_LOG=warn: no per-call log line),
#            verified (deployed with ACCOUNT_ACCESS=verified: the request carries demo-user-1's signed
#            end-user ID token in payload.userIdToken, verified once and then cached like the agent's),
#            traced (deployed with the trace headers Cloud Run adds to every request and
#            GOOGLE_CLOUD_PROJECT set as cloudbuild.yaml sets it, so every line links its trace)
#            (default: floor fallback balance oidc deployed deployed-warn verified traced)
# Every service scenario logs JSON at RUST_LOG=info (as Cloud Build deploys it) unless it says otherwise.
# SCENARIO@base runs SCENARIO with the binary named by BASELINE (e.g. a copy of the previous commit's
# build), for before/after figures from one run. Honours CARGO_TARGET_DIR; SKIP_BUILD=1 builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

connections=64 duration=6 threads=2
while getopts "c:d:t:" opt; do
  case $opt in
    c) connections=$OPTARG ;;
    d) duration=$OPTARG ;;
    t) threads=$OPTARG ;;
    *) sed -n '2,21p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 2; }
target=${CARGO_TARGET_DIR:-target}
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet --bin cx-webhook --example floor
bin=$target/release/cx-webhook
floor=$target/release/examples/floor
work=$(mktemp -d)
trap 'kill "${pid:-}" "${idp_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

# name | fixture | extra environment for the server (space separated K=V) | Authorization header |
# log message that says the server is ready for load, and how many times (default once) | text the
# first answer must contain (so that no scenario measures a refusal or a "please sign in")
declare -A fixture env auth ready ready_count expect traceparent cloud_trace
fixture[floor]=tests/fixtures/account-balance.json; env[floor]=""; auth[floor]=""
fixture[fallback]=tests/fixtures/unknown-tag.json; env[fallback]=""; auth[fallback]=""
ready[fallback]="listening"
fixture[balance]=tests/fixtures/account-balance.json; env[balance]=""; auth[balance]=""
ready[balance]="listening"
balance_text="The balance of account A1001 is"
expect[balance]=$balance_text
oidc_ready="fetched the issuer's signing keys"
for name in oidc oidc-nocache; do fixture[$name]=tests/fixtures/unknown-tag.json; ready[$name]=$oidc_ready; done
for name in deployed deployed-warn verified traced; do
  fixture[$name]=tests/fixtures/account-balance.json; ready[$name]=$oidc_ready; expect[$name]=$balance_text
done
traceparent[traced]=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
cloud_trace[traced]="4bf92f3577b34da6a3ce929d0e0e4736/67667974448284343;o=1"
# Two key caches: the agent's issuer and the end users'.
ready_count[verified]=2
all=(floor fallback balance oidc deployed deployed-warn verified traced)
scenarios=("$@"); [ ${#scenarios[@]} -gt 0 ] || scenarios=("${all[@]}")

# The oidc scenarios need a key set and a valid token: the dev tool examples/dev_idp serves one on
# loopback (a debug build is enough: it answers one fetch per server start).
if [[ " ${scenarios[*]} " =~ \ (oidc|deployed|verified|traced) ]]; then
  [ -n "${SKIP_BUILD:-}" ] || cargo build --quiet --example dev_idp
  # shellcheck source=scripts/dev-idp.sh
  . scripts/dev-idp.sh
  start_dev_idp "$work" "$target"
  env[oidc]="AUTH_MODE=google-oidc ${idp_env[*]}"
  env[oidc-nocache]="${env[oidc]} AUTH_TOKEN_CACHE_SIZE=0"
  env[deployed]="${env[oidc]}"
  env[deployed-warn]="${env[oidc]} RUST_LOG=warn"
  env[traced]="${env[oidc]} GOOGLE_CLOUD_PROJECT=carconnect-demo"
  for name in oidc oidc-nocache deployed deployed-warn verified traced; do auth[$name]=$token; done
  if [[ " ${scenarios[*]} " =~ \ verified ]]; then
    # The end users' issuer is dev_idp too; its mint signs demo-user-1's token (the owner of
    # A1001, the account the fixture asks for), which goes into the fixture's payload.
    fixture[verified]=$work/verified.json
    verified_fixture "$work" "${fixture[verified]}"
    env[verified]="${env[oidc]} ACCOUNT_ACCESS=verified ${end_user_env[*]}"
  fi
fi

# Every service scenario but verified runs with ACCOUNT_ACCESS=open: account.balance requires a
# verified end user by default, and their fixture carries none; open keeps them measuring the same
# path (the SQLite lookup and the answer) as before that change, and verified measures what proving
# the end user adds to it.
declare -A rps
printf '%-16s %10s %9s %9s %7s %9s\n' scenario "req/s" "p50 ms" "p99 ms" errors "of floor"
for name in "${scenarios[@]}"; do
  base=${name%@base} server=$bin
  if [ "$base" != "$name" ]; then
    [ -x "${BASELINE:-}" ] || { echo "$name: set BASELINE to a cx-webhook binary" >&2; exit 2; }
    server=$BASELINE
    for table in fixture env auth ready ready_count expect traceparent cloud_trace; do eval "$table[\$name]=\${$table[\$base]:-}"; done
  fi
  [ -n "${fixture[$name]:-}" ] || { echo "unknown scenario: $name" >&2; exit 2; }
  log="$work/$name.log"
  if [ "$name" = floor ]; then
    env -i PATH="$PATH" PORT=0 "$floor" >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do grep -q '^listening on ' "$log" && break; sleep 0.1; done
    addr=$(sed -n 's/^listening on //p' "$log")
  elif [[ " ${env[$name]} " == *" RUST_LOG=warn "* ]]; then
    # Nothing at INFO says where it listens or that it is ready: give it a free port, poll for a 200.
    port=""
    for _ in $(seq 50); do
      port=$((10000 + RANDOM % 20000)) # below the ephemeral range (32768 and up)
      (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
    done
    # shellcheck disable=SC2086
    env -i PATH="$PATH" AUTH_MODE=none ACCOUNT_ACCESS=open BIND=127.0.0.1 PORT=$port LOG_FORMAT=json \
      DATABASE_PATH="$work/$name.db" ${env[$name]} "$server" >"$log" 2>&1 &
    pid=$!
    addr=""
    for _ in $(seq 100); do
      [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
        ${auth[$name]:+-H "Authorization: ${auth[$name]}"} --data-binary @"${fixture[$name]}" \
        "http://127.0.0.1:$port/webhook")" = 200 ] && addr=127.0.0.1:$port && break
      sleep 0.1
    done
  else
    # shellcheck disable=SC2086
    env -i PATH="$PATH" AUTH_MODE=none ACCOUNT_ACCESS=open BIND=127.0.0.1 PORT=0 LOG_FORMAT=json RUST_LOG=info \
      DATABASE_PATH="$work/$name.db" ${env[$name]} "$server" >"$log" 2>&1 &
    pid=$!
    addr=""
    for _ in $(seq 100); do
      addr=$(grep -so '"address":"[^"]*"' "$log" | head -1 | cut -d'"' -f4) \
        && [ -n "$addr" ] \
        && [ "$(grep -scF "\"message\":\"${ready[$name]}\"" "$log")" -ge "${ready_count[$name]:-1}" ] && break
      addr=""
      sleep 0.1
    done
  fi
  [ -n "$addr" ] || { echo "server for $name did not start:" >&2; cat "$log" >&2; exit 1; }
  # One request first: a scenario whose requests are refused would measure the wrong path.
  status=$(curl -s -o "$work/$name.first" -w '%{http_code}' -H 'content-type: application/json' \
    ${auth[$name]:+-H "Authorization: ${auth[$name]}"} --data-binary @"${fixture[$name]}" \
    "http://$addr/webhook")
  [ "$status" = 200 ] || { echo "$name: first request got $status:" >&2; cat "$work/$name.first" >&2; exit 1; }
  [ -z "${expect[$name]:-}" ] || grep -qF "${expect[$name]}" "$work/$name.first" \
    || { echo "$name: the first answer lacks \"${expect[$name]}\":" >&2; cat "$work/$name.first" >&2; exit 1; }
  FIXTURE="${fixture[$name]}" AUTH_HEADER="${auth[$name]}" \
    TRACEPARENT="${traceparent[$name]:-}" CLOUD_TRACE="${cloud_trace[$name]:-}" \
    wrk -t"$threads" -c"$connections" -d"${duration}s" -s scripts/wrk-post.lua "http://$addr/webhook" \
    >"$work/$name.wrk"
  line=$(grep '^RESULT' "$work/$name.wrk")
  get() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$line"; }
  rps[$name]=$(get rps)
  share=""
  [ -n "${rps[floor]:-}" ] && share=$(awk -v a="${rps[$name]}" -v b="${rps[floor]}" 'BEGIN { printf "%.0f%%", 100 * a / b }')
  printf '%-16s %10s %9s %9s %7s %9s\n' "$name" "${rps[$name]}" "$(get p50_ms)" "$(get p99_ms)" \
    "$(get errors)" "$share"
  kill -TERM "$pid"; wait "$pid" || true; pid=""
  # Every answered call of a service scenario must have its log line (none lost, none doubled).
  if [ "$base" != floor ] && [ "$base" != deployed-warn ]; then
    calls=$(grep -c '"message":"webhook call"' "$log" || true)
    requests=$(( $(get requests) + 1 ))
    [ "$calls" -ge "$requests" ] || echo "  $name: $calls call lines for at least $requests answered calls" >&2
  fi
done
