#!/usr/bin/env bash
# Cold start: milliseconds from exec to the first answered call, as deployed (google-oidc against a
# local key set from examples/dev_idp, account.balance, RUST_LOG=info JSON logs), the database file
# already present (created beforehand with `cx-webhook db init --seed`, as the image ships it). The
# first call counts only when it is a 200: a call refused while the key set is still being fetched,
# or one sent before the port listens, is retried at once. The floor (examples/floor.rs) is measured
# the same way for comparison (no auth, nothing to open).
#
# usage: scripts/cold-start.sh [-n RUNS]     (default 10; prints each scenario's median, min and max)
# The client is bash itself (/dev/tcp), retrying at once until a call is answered 200.
# Honours CARGO_TARGET_DIR; SKIP_BUILD=1 builds nothing; BIN=PATH measures another build of the service.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=10
while getopts "n:" opt; do
  case $opt in
    n) runs=$OPTARG ;;
    *) sed -n '2,10p' "$0"; exit 2 ;;
  esac
done

target=${CARGO_TARGET_DIR:-target}
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet --bin cx-webhook --example floor
[ -n "${SKIP_BUILD:-}" ] || cargo build --quiet --example dev_idp
bin=${BIN:-$target/release/cx-webhook}
floor=$target/release/examples/floor
work=$(mktemp -d)
trap 'kill "${pid:-}" "${idp_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

# shellcheck source=scripts/dev-idp.sh
. scripts/dev-idp.sh
start_dev_idp "$work" "$target"
fixture=tests/fixtures/account-balance.json
export LC_ALL=C # ${#body} counts bytes
body=$(<"$fixture")

env -i PATH="$PATH" DATABASE_PATH="$work/cx.db" "$bin" db init --seed >"$work/init.log" 2>&1 \
  || { echo "db init failed:" >&2; cat "$work/init.log" >&2; exit 1; }

free_port() {
  local port
  for _ in $(seq 50); do
    port=$((10000 + RANDOM % 20000)) # below the ephemeral range (32768 and up)
    (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
  return 1
}

# One attempt at a call over bash's /dev/tcp (no process is started per attempt, so the polling
# adds microseconds, not the milliseconds of a fork and exec): true when it was answered 200.
call() {
  local port=$1 auth=$2 status
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf 'POST /webhook HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n%scontent-length: %d\r\nconnection: close\r\n\r\n%s' \
    "${auth:+authorization: $auth$'\r\n'}" "${#body}" "$body" >&3 || { exec 3<&-; return 1; }
  read -r -t 5 status <&3 || status=""
  exec 3<&-
  [[ $status == "HTTP/1.1 200"* ]]
}

# Prints the microseconds from exec to the first 200 of one fresh server.
measure() {
  local name=$1 port start now i auth=""
  port=$(free_port)
  start=${EPOCHREALTIME/./}
  if [ "$name" = floor ]; then
    env -i PATH="$PATH" PORT="$port" "$floor" >"$work/$name.log" 2>&1 &
  else
    auth=$token
    env -i PATH="$PATH" AUTH_MODE=google-oidc "${idp_env[@]}" ACCOUNT_ACCESS=open BIND=127.0.0.1 \
      PORT="$port" LOG_FORMAT=json RUST_LOG=info DATABASE_PATH="$work/cx.db" "$bin" >"$work/$name.log" 2>&1 &
  fi
  pid=$!
  for ((i = 0; i < 200000; i++)); do
    if call "$port" "$auth" 2>/dev/null; then
      now=${EPOCHREALTIME/./}
      kill -TERM "$pid"; wait "$pid" || true; pid=""
      echo $((now - start))
      return
    fi
  done
  echo "$name: no 200 from a fresh server" >&2
  cat "$work/$name.log" >&2
  kill "$pid" 2>/dev/null || true
  exit 1
}

printf '%-10s %9s %9s %9s\n' scenario "median ms" "min ms" "max ms"
for name in floor deployed; do
  samples=()
  for _ in $(seq "$runs"); do samples+=("$(measure "$name")"); done
  printf '%s\n' "${samples[@]}" | sort -n | awk -v name="$name" '
    { v[NR] = $1 }
    END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
          printf "%-10s %9.1f %9.1f %9.1f\n", name, m / 1000, v[1] / 1000, v[NR] / 1000 }'
done
