#!/usr/bin/env bash
# Booking benchmark (issue 11, item 8): booking.create throughput and p50/p99 latency under slot
# contention, PostgreSQL behind three instances versus SQLite behind one, in one run. Every request
# is a new Dialogflow turn for a new vehicle (scripts/booking-create.lua), sent by wrk with three
# threads and C connections; with PostgreSQL thread i talks to instance i, so the three instances
# share the load and wrk reports one latency histogram. Each scenario starts fresh servers on
# loopback ports, PostgreSQL on a fresh database.
#
# usage: TEST_POSTGRES_URL=postgresql://... scripts/booking-load.sh [-c CONNECTIONS] [-d SECONDS] [SCENARIO ...]
# scenarios: hot    (every create for one slot: a handful confirmed, the rest told it was just taken)
#            spread (creates round-robin over every slot of the next 50 open days: mostly confirmed)
#            (default: hot spread)
# PROFILE=debug uses the debug build (the release build's fat LTO takes 10+ minutes on a small
# machine); SKIP_BUILD=1 builds nothing. Compare rows of one run, not absolute numbers across runs.
set -euo pipefail
cd "$(dirname "$0")/.."

connections=48 duration=8
while getopts "c:d:" opt; do
  case $opt in
    c) connections=$OPTARG ;;
    d) duration=$OPTARG ;;
    *) sed -n '2,15p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
scenarios=("$@"); [ ${#scenarios[@]} -gt 0 ] || scenarios=(hot spread)

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 2; }
command -v psql >/dev/null || { echo "psql is needed (postgresql-client)" >&2; exit 2; }
base=${TEST_POSTGRES_URL:?set TEST_POSTGRES_URL to a PostgreSQL URL whose role may CREATE DATABASE}
profile=${PROFILE:-release}
target=${CARGO_TARGET_DIR:-target}
if [ -z "${SKIP_BUILD:-}" ]; then
  if [ "$profile" = release ]; then cargo build --release --quiet --bin cx-webhook
  else cargo build --quiet --bin cx-webhook; fi
fi
bin=$target/$profile/cx-webhook
work=$(mktemp -d)
pids=()
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done; pids=(); }
trap 'stop_all; rm -rf "$work"' EXIT

# Slots as "YYYY-MM-DD HH MM": days that D-PUN-01 is open (not Sunday), counted in Asia/Kolkata.
slots() { # $1: how many open days, $2: first day ahead, $3: times (space separated HH:MM) or "all"
  python3 - "$@" <<'PY'
import sys, datetime, zoneinfo
n, first, times = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
today = datetime.datetime.now(zoneinfo.ZoneInfo("Asia/Kolkata")).date()
ts = [f"{9 + i // 2:02d}:{30 * (i % 2):02d}" for i in range(18)] if times == "all" else times.split()
out, d = [], today + datetime.timedelta(days=first)
while n > 0:
    if d.weekday() != 6:
        out += [f"{d.isoformat()} {t[:2]} {t[3:]}" for t in ts]
        n -= 1
    d += datetime.timedelta(days=1)
print(",".join(out))
PY
}

# Starts one server with the given environment (K=V ...); prints its address.
start() {
  local log=$work/server-$RANDOM.log
  env -i PATH="$PATH" AUTH_MODE=none BIND=127.0.0.1 PORT=0 LOG_FORMAT=json RUST_LOG=warn,cx_webhook=info "$@" \
    "$bin" >"$log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 200); do
    local addr
    addr=$(grep '"message":"listening"' "$log" 2>/dev/null | grep -o '"address":"[^"]*"' | cut -d'"' -f4 || true)
    if [ -n "$addr" ]; then echo "$addr"; return; fi
    sleep 0.05
  done
  echo "the server did not start: $(cat "$log")" >&2; exit 1
}

fresh_pg() {
  local name=cxw_bench_$(date +%s)_$RANDOM
  psql -q "$base" -c "CREATE DATABASE $name" >/dev/null
  python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$base" "$name"
}

run() { # scenario store
  local scenario=$1 store=$2 addrs=() slots_list
  case $scenario in
    hot) slots_list=$(slots 1 3 "10:30") ;;
    spread) slots_list=$(slots 50 1 all) ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
  esac
  local dir=$work/$scenario-$store; mkdir -p "$dir"
  case $store in
    pg3)
      local url; url=$(fresh_pg)
      for i in 1 2 3; do
        mkdir -p "$dir/$i"
        addrs+=("$(start DATABASE_PATH="$dir/$i/cx.db" BOOKING_STORE=postgres BOOKING_DATABASE_URL="$url")")
      done ;;
    sqlite1) addrs+=("$(start DATABASE_PATH="$dir/cx.db")") ;;
  esac
  local result
  result=$(FIXTURE=scripts/booking-create.template.json SLOTS="$slots_list" \
    ADDRS=$(IFS=,; echo "${addrs[*]}") \
    wrk -t3 -c"$connections" -d"${duration}s" --timeout 10s -s scripts/booking-create.lua \
    "http://${addrs[0]}/webhook" | grep '^RESULT' | sed 's/^RESULT //')
  printf '%-7s %-8s %s\n' "$scenario" "$store" "$result"
  stop_all
}

echo "booking.create, $connections connections, ${duration}s each, $profile build, $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
for scenario in "${scenarios[@]}"; do
  for store in pg3 sqlite1; do run "$scenario" "$store"; done
done
