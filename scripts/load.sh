#!/usr/bin/env bash
# Load benchmark: builds the release binary, then for each scenario starts a fresh server on a loopback
# port, drives it with wrk (bounded in time) and prints requests/s and p50/p99 latency. Scenarios run
# back to back in one invocation so their figures can be compared; on a shared 2-core machine compare
# ratios from one run, never absolute numbers across runs.
#
# usage: scripts/load.sh [-c CONNECTIONS] [-d SECONDS] [-t THREADS] [SCENARIO ...]
# scenarios: fallback, balance (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."

connections=64 duration=10 threads=2
while getopts "c:d:t:" opt; do
  case $opt in
    c) connections=$OPTARG ;;
    d) duration=$OPTARG ;;
    t) threads=$OPTARG ;;
    *) sed -n '2,9p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 2; }
cargo build --release --quiet
bin=target/release/cx-webhook
work=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

# name | fixture | extra environment for the server (space separated K=V)
declare -A fixture env
fixture[fallback]=tests/fixtures/unknown-tag.json; env[fallback]=""
fixture[balance]=tests/fixtures/account-balance.json; env[balance]=""
all=(fallback balance)
scenarios=("$@"); [ ${#scenarios[@]} -gt 0 ] || scenarios=("${all[@]}")

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
    addr=$(grep -so '"address":"[^"]*"' "$log" | head -1 | cut -d'"' -f4) && [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || { echo "server for $name did not start:" >&2; cat "$log" >&2; exit 1; }
  FIXTURE="${fixture[$name]}" AUTH_HEADER="${AUTH_HEADER:-}" \
    wrk -t"$threads" -c"$connections" -d"${duration}s" -s scripts/wrk-post.lua "http://$addr/webhook" \
    >"$work/$name.wrk"
  line=$(grep '^RESULT' "$work/$name.wrk")
  get() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$line"; }
  printf '%-22s %10s %10s %10s %10s\n' "$name" "$(get rps)" "$(get p50_ms)" "$(get p99_ms)" "$(get errors)"
  kill -TERM "$pid"; wait "$pid" || true; pid=""
done
