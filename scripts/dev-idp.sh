# Sourced by the benchmark scripts (load.sh, cold-start.sh, sigterm-load.sh), not run.
#
# start_dev_idp WORK TARGET: starts the debug build of examples/dev_idp (a local stand-in for Google's
# key set, on loopback) with its settings in WORK/idp.env, waits until it serves, and sets
#   idp_pid  its process (the caller kills it on exit),
#   idp_env  its AUTH_* settings for `serve`, as an array,
#   token    "Bearer <a service-agent ID token valid for an hour>".
start_dev_idp() {
  local work=$1 target=$2
  "$target/debug/examples/dev_idp" >"$work/idp.env" 2>&1 &
  idp_pid=$!
  for _ in $(seq 100); do grep -q '^TOKEN=' "$work/idp.env" && break; sleep 0.1; done
  grep -q '^TOKEN=' "$work/idp.env" || { echo "dev_idp did not start:" >&2; cat "$work/idp.env" >&2; exit 1; }
  # shellcheck disable=SC2207
  idp_env=($(grep '^AUTH_' "$work/idp.env"))
  token="Bearer $(sed -n 's/^TOKEN=//p' "$work/idp.env")"
}
