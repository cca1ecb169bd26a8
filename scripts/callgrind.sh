#!/usr/bin/env bash
# Instructions per call under valgrind's callgrind: the floor (examples/floor.rs, a bare hyper 1 server)
# and the service as deployed (google-oidc with a cached token, account.balance, RUST_LOG=info, JSON
# logs). Instruction counts repeat on a noisy shared machine where times do not.
#
# Each server runs under callgrind; examples/post_loop sends WARMUP calls (start-up, the key fetch, the
# first RSA verification and the caches fill), the counters are zeroed (callgrind_control -z), COUNT
# more calls go over one keep-alive connection, and the counters are dumped (callgrind_control -d).
# So the figure is the steady-state cost of one call, client outside valgrind, start-up excluded.
# Prints instructions per call, the ratio to the floor, and the top functions by inclusive cost.
#
# usage: scripts/callgrind.sh [-n COUNT] [-w WARMUP] [-k TOP] [SCENARIO ...]
# scenarios: floor, deployed, deployed-warn (RUST_LOG=warn), balance (AUTH_MODE=none), verified
#            (deployed with ACCOUNT_ACCESS=verified and demo-user-1's ID token in the payload),
#            traced (deployed with the trace headers Cloud Run adds to every request and
#            GOOGLE_CLOUD_PROJECT set, as cloudbuild.yaml sets it: the log line links the trace)
#            (default: floor deployed)
# The binaries are built with symbols (CARGO_PROFILE_RELEASE_STRIP=false), otherwise as released.
# Honours CARGO_TARGET_DIR. KEEP=DIR keeps the callgrind files there for callgrind_annotate;
# BIN=PATH profiles another build of the service (e.g. the previous commit's); SKIP_BUILD=1 builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

count=2000 warmup=300 top=30
while getopts "n:w:k:" opt; do
  case $opt in
    n) count=$OPTARG ;;
    w) warmup=$OPTARG ;;
    k) top=$OPTARG ;;
    *) sed -n '2,20p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
for tool in valgrind callgrind_control callgrind_annotate; do
  command -v $tool >/dev/null || { echo "$tool is needed: apt-get install -y valgrind" >&2; exit 2; }
done

target=${CARGO_TARGET_DIR:-target}
export CARGO_PROFILE_RELEASE_STRIP=false
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet --bin cx-webhook --example floor --example post_loop
[ -n "${SKIP_BUILD:-}" ] || cargo build --quiet --example dev_idp
bin=${BIN:-$target/release/cx-webhook}
floor=${FLOOR:-$target/release/examples/floor}
client=$target/release/examples/post_loop
work=$(mktemp -d)
keep=${KEEP:-}
trap 'kill "${pid:-}" "${idp_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

scenarios=("$@"); [ ${#scenarios[@]} -gt 0 ] || scenarios=(floor deployed)

# shellcheck source=scripts/dev-idp.sh
. scripts/dev-idp.sh
start_dev_idp "$work" "$target"

if [[ " ${scenarios[*]} " =~ \ verified\  ]]; then verified_fixture "$work" "$work/verified.json"; fi
declare -A per_call
for name in "${scenarios[@]}"; do
  auth=$token fixture=tests/fixtures/account-balance.json headers=()
  # shellcheck disable=SC2206
  case $name in
    floor) extra=(); program=$floor ;;
    deployed) extra=(AUTH_MODE=google-oidc "${idp_env[@]}"); program=$bin ;;
    deployed-warn) extra=(AUTH_MODE=google-oidc "${idp_env[@]}" RUST_LOG=warn); program=$bin ;;
    balance) extra=(); program=$bin; auth="" ;;
    verified) extra=(AUTH_MODE=google-oidc "${idp_env[@]}" ACCOUNT_ACCESS=verified "${end_user_env[@]}")
      program=$bin fixture=$work/verified.json ;;
    traced) extra=(AUTH_MODE=google-oidc "${idp_env[@]}" GOOGLE_CLOUD_PROJECT=carconnect-demo); program=$bin
      headers=("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        "x-cloud-trace-context: 4bf92f3577b34da6a3ce929d0e0e4736/67667974448284343;o=1") ;;
    *) echo "unknown scenario: $name" >&2; exit 2 ;;
  esac
  log="$work/$name.log" out="$work/$name.callgrind"
  # ACCOUNT_ACCESS=open: account.balance is to require a verified end user by default and the
  # fixture carries none; open keeps the balance scenarios measuring the same path as before.
  # At RUST_LOG=warn nothing says where the server listens: give it a free port and poll /health.
  port=0
  if [[ " ${extra[*]} " == *" RUST_LOG=warn "* ]]; then
    for _ in $(seq 50); do
      port=$((10000 + RANDOM % 20000)) # below the ephemeral range (32768 and up)
      (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
    done
  fi
  env -i PATH="$PATH" AUTH_MODE=none ACCOUNT_ACCESS=open BIND=127.0.0.1 PORT=$port LOG_FORMAT=json RUST_LOG=info \
    DATABASE_PATH="$work/$name.db" "${extra[@]}" \
    valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no --compress-strings=no \
    "$program" >"$log" 2>"$work/$name.valgrind" &
  pid=$!
  addr=""
  for _ in $(seq 600); do
    addr=$( { sed -n "s/^listening on //p" "$log"; grep -so "\"address\":\"[^\"]*\"" "$log" | cut -d"\"" -f4; } | head -1 || true)
    if [ -z "$addr" ] && [ "$port" != 0 ] && curl -sf -o /dev/null "http://127.0.0.1:$port/health"; then
      addr=127.0.0.1:$port
    fi
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || { echo "server for $name did not start:" >&2; cat "$log" "$work/$name.valgrind" >&2; exit 1; }
  # The key set is fetched in the background: the warm-up retries until a call is accepted.
  for _ in $(seq 100); do
    "$client" "$addr" /webhook "$fixture" 1 "$auth" 2>/dev/null && break
    sleep 0.2
  done
  "$client" "$addr" /webhook "$fixture" "$warmup" "$auth" "${headers[@]}"
  callgrind_control -z "$pid" >/dev/null
  "$client" "$addr" /webhook "$fixture" "$count" "$auth" "${headers[@]}"
  callgrind_control -d "$pid" >/dev/null
  kill -TERM "$pid"; wait "$pid" || true; pid=""
  # The dump written by -d is the one with a part number; the exit dump is the plain file.
  dump=$(ls "$out".* 2>/dev/null | sort | tail -1 || true)
  [ -n "$dump" ] || { echo "$name: no callgrind dump" >&2; cat "$work/$name.valgrind" >&2; exit 1; }
  total=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p; s/^totals: *\([0-9]*\).*/\1/p' "$dump" | head -1)
  per_call[$name]=$((total / count))
  [ -n "$keep" ] && mkdir -p "$keep" && cp "$dump" "$keep/$name.callgrind"
  echo
  echo "== $name: ${per_call[$name]} instructions per call ($total over $count calls)"
  echo "   top functions by inclusive cost (share of all instructions in the measured calls):"
  callgrind_annotate --inclusive=yes --threshold=100 "$dump" 2>/dev/null \
    | awk '/^-+$/ { n++; next } n >= 3 && NF' \
    | sed -E 's/ \[[^]]*\]$//; s/^ *([0-9,]+) \( *([0-9.]+%)\) +(\?\?\?|[^:]*):/\1 \2 /' \
    | head -n "$top" \
    | awk '{ ir = $1; pct = $2; $1 = ""; $2 = ""; sub(/^ +/, ""); printf "   %7s  %.110s\n", pct, $0 }' \
    || true # head stops reading early: the SIGPIPE upstream is not a failure (pipefail)
done

echo
printf '%-16s %14s %9s\n' scenario "instr/call" "x floor"
for name in "${scenarios[@]}"; do
  ratio=""
  [ -n "${per_call[floor]:-}" ] && ratio=$(awk -v a="${per_call[$name]}" -v b="${per_call[floor]}" 'BEGIN { printf "%.2f", a / b }')
  printf '%-16s %14s %9s\n' "$name" "${per_call[$name]}" "$ratio"
done
