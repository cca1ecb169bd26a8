#!/usr/bin/env bash
# No lost log line on SIGTERM under load: starts the service as deployed (google-oidc with a local
# key set from examples/dev_idp, account.balance, RUST_LOG=info JSON logs), drives it with wrk, sends
# SIGTERM while wrk is still sending, and then compares what wrk saw answered with the log:
# - every call wrk counted as answered has its "webhook call" line (none lost at exit);
# - there are not more lines than answered calls plus the calls that can be in flight at the signal
#   (one per connection) (none doubled);
# - the service exited 0 and logged its shutdown.
# Exits 1 when a check fails. scripts/load.sh checks the same line count after a run that ended
# before the signal; this is the case where the signal lands in the middle of the traffic.
#
# usage: scripts/sigterm-load.sh [-c CONNECTIONS] [-s SECONDS_BEFORE_SIGTERM]   (default 64, 3)
# Honours CARGO_TARGET_DIR; SKIP_BUILD=1 builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

connections=64 before=3
while getopts "c:s:" opt; do
  case $opt in
    c) connections=$OPTARG ;;
    s) before=$OPTARG ;;
    *) sed -n '2,13p' "$0"; exit 2 ;;
  esac
done

command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 2; }
target=${CARGO_TARGET_DIR:-target}
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet --bin cx-webhook
[ -n "${SKIP_BUILD:-}" ] || cargo build --quiet --example dev_idp
bin=$target/release/cx-webhook
work=$(mktemp -d)
trap 'kill "${pid:-}" "${idp_pid:-}" "${wrk_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

# shellcheck source=scripts/dev-idp.sh
. scripts/dev-idp.sh
start_dev_idp "$work" "$target"
fixture=tests/fixtures/account-balance.json

log=$work/server.log
env -i PATH="$PATH" "${idp_env[@]}" AUTH_MODE=google-oidc ACCOUNT_ACCESS=open BIND=127.0.0.1 PORT=0 \
  LOG_FORMAT=json RUST_LOG=info DATABASE_PATH="$work/cx.db" "$bin" >"$log" 2>&1 &
pid=$!
addr=""
for _ in $(seq 100); do
  addr=$(grep -so '"address":"[^"]*"' "$log" | head -1 | cut -d'"' -f4) \
    && [ -n "$addr" ] && grep -qF '"message":"fetched the issuer'"'"'s signing keys"' "$log" && break
  addr=""
  sleep 0.1
done
[ -n "$addr" ] || { echo "the service did not start:" >&2; cat "$log" >&2; exit 1; }

# wrk runs well past the signal: its connections fail once the service is gone.
FIXTURE=$fixture AUTH_HEADER=$token \
  wrk -t2 -c"$connections" -d"$((before + 4))s" -s scripts/wrk-post.lua "http://$addr/webhook" \
  >"$work/wrk.out" 2>&1 &
wrk_pid=$!
sleep "$before"
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
wait "$wrk_pid" || true
wrk_pid=""

line=$(grep '^RESULT' "$work/wrk.out") || { echo "no wrk summary:" >&2; cat "$work/wrk.out" >&2; exit 1; }
answered=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$line")
lines=$(grep -c '"message":"webhook call"' "$log" || true)
other=$(grep -c '"message":"webhook call refused"' "$log" || true)
echo "signal after ${before} s; answered calls (wrk): $answered; \"webhook call\" lines: $lines;" \
  "refused-call lines: $other; exit status: $status"
grep -o '"message":"[^"]*shutting down[^"]*"\|"message":"all connections closed"\|"message":"grace period over[^"]*"' "$log" | sed 's/^/  /'
failed=0
[ "$answered" -gt 0 ] || { echo "FAIL: no call was answered before the signal" >&2; failed=1; }
[ "$lines" -ge "$answered" ] || { echo "FAIL: $((answered - lines)) answered calls have no log line" >&2; failed=1; }
[ "$lines" -le $((answered + connections)) ] || { echo "FAIL: more log lines than calls" >&2; failed=1; }
[ "$status" = 0 ] || { echo "FAIL: the service exited with $status" >&2; failed=1; }
grep -qF '"message":"all connections closed"' "$log" || { echo "FAIL: no orderly shutdown in the log" >&2; failed=1; }
[ "$failed" = 0 ] && echo "ok: no log line lost"
exit "$failed"
