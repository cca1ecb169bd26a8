#!/usr/bin/env bash
# Load benchmark: builds the release binary, then for each scenario starts a fresh server on a loopback
# port, drives it with wrk (bounded in time) and prints requests/s and p50/p99 latency. Scenarios run
# back to back in one invocation so their figures can be compared; on a shared 2-core machine compare
# ratios from one run, never absolute numbers across runs.
#
# usage: scripts/load.sh [-c CONNECTIONS] [-d SECONDS] [-t THREADS] [SCENARIO ...]
# scenarios: fallback (AUTH_MODE=none, unknown tag), balance (account.balance from SQLite),
#            oidc (google-oidc, a valid token each request),
#            oidc-nocache (the same with AUTH_TOKEN_CACHE_SIZE=0: RSA verification on every request)
#            (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."

connections=64 duration=10 threads=2
while getopts "c:d:t:" opt; do
  case $opt in
    c) connections=$OPTARG ;;
    d) duration=$OPTARG ;;
    t) threads=$OPTARG ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 2; }
cargo build --release --quiet
bin=target/release/cx-webhook
work=$(mktemp -d)
trap 'kill "${pid:-}" "${idp_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

# name | fixture | extra environment for the server (space separated K=V) | Authorization header |
# log message that says the server is ready for load
declare -A fixture env auth ready
fixture[fallback]=tests/fixtures/unknown-tag.json; env[fallback]=""; auth[fallback]=""
ready[fallback]="listening"
fixture[balance]=tests/fixtures/account-balance.json; env[balance]=""; auth[balance]=""
ready[balance]="listening"
fixture[oidc]=tests/fixtures/unknown-tag.json; ready[oidc]="fetched Google's signing keys"
fixture[oidc-nocache]=tests/fixtures/unknown-tag.json; ready[oidc-nocache]=${ready[oidc]}
all=(fallback balance oidc oidc-nocache)
scenarios=("$@"); [ ${#scenarios[@]} -gt 0 ] || scenarios=("${all[@]}")

# The oidc scenarios need a key set and a valid token: the dev tool examples/dev_idp serves one on
# loopback (a debug build is enough: it answers one fetch per server start).
if [[ " ${scenarios[*]} " == *" oidc"* ]]; then
  cargo build --quiet --example dev_idp
  target/debug/examples/dev_idp >"$work/idp.env" 2>&1 &
  idp_pid=$!
  for _ in $(seq 100); do grep -q '^TOKEN=' "$work/idp.env" && break; sleep 0.1; done
  grep -q '^TOKEN=' "$work/idp.env" || { echo "dev_idp did not start:" >&2; cat "$work/idp.env" >&2; exit 1; }
  idp_env=$(grep '^AUTH_' "$work/idp.env" | tr '\n' ' ')
  env[oidc]="AUTH_MODE=google-oidc $idp_env"
  env[oidc-nocache]="${env[oidc]} AUTH_TOKEN_CACHE_SIZE=0"
  auth[oidc]="Bearer $(sed -n 's/^TOKEN=//p' "$work/idp.env")"
  auth[oidc-nocache]=${auth[oidc]}
fi

declare -A rps
printf '%-22s %10s %10s %10s %10s\n' scenario "req/s" "p50 ms" "p99 ms" errors
for name in "${scenarios[@]}"; do
  [ -n "${fixture[$name]:-}" ] || { echo "unknown scenario: $name" >&2; exit 2; }
  log="$work/$name.log"
  # shellcheck disable=SC2086
  env -i PATH="$PATH" AUTH_MODE=none BIND=127.0.0.1 PORT=0 LOG_FORMAT=json RUST_LOG=info \
    DATABASE_PATH="$work/$name.db" ${env[$name]} "$bin" >"$log" 2>&1 &
  pid=$!
  addr=""
  for _ in $(seq 100); do
    addr=$(grep -so '"address":"[^"]*"' "$log" | head -1 | cut -d'"' -f4) \
      && [ -n "$addr" ] && grep -qF "\"message\":\"${ready[$name]}\"" "$log" && break
    addr=""
    sleep 0.1
  done
  [ -n "$addr" ] || { echo "server for $name did not start:" >&2; cat "$log" >&2; exit 1; }
  # One request first: a scenario whose requests are refused would measure the wrong path.
  status=$(curl -s -o "$work/$name.first" -w '%{http_code}' -H 'content-type: application/json' \
    ${auth[$name]:+-H "Authorization: ${auth[$name]}"} --data-binary @"${fixture[$name]}" \
    "http://$addr/webhook")
  [ "$status" = 200 ] || { echo "$name: first request got $status:" >&2; cat "$work/$name.first" >&2; exit 1; }
  FIXTURE="${fixture[$name]}" AUTH_HEADER="${auth[$name]}" \
    wrk -t"$threads" -c"$connections" -d"${duration}s" -s scripts/wrk-post.lua "http://$addr/webhook" \
    >"$work/$name.wrk"
  line=$(grep '^RESULT' "$work/$name.wrk")
  get() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$line"; }
  rps[$name]=$(get rps)
  printf '%-22s %10s %10s %10s %10s\n' "$name" "${rps[$name]}" "$(get p50_ms)" "$(get p99_ms)" "$(get errors)"
  kill -TERM "$pid"; wait "$pid" || true; pid=""
done

if [ -n "${rps[fallback]:-}" ]; then
  for name in "${scenarios[@]}"; do
    [ "$name" = fallback ] && continue
    awk -v n="$name" -v a="${rps[$name]}" -v b="${rps[fallback]}" \
      'BEGIN { printf "%s / fallback throughput: %.1f%%\n", n, 100 * a / b }'
  done
fi
