# Sourced by the benchmark scripts (load.sh, cold-start.sh, sigterm-load.sh), not run.
#
# start_dev_idp WORK TARGET: starts the debug build of examples/dev_idp (a local stand-in for Google's
# key set, on loopback) with its settings in WORK/idp.env, waits until it serves, and sets
#   idp_pid  its process (the caller kills it on exit),
#   idp_env  its AUTH_* settings for `serve`, as an array,
#   token    "Bearer <a service-agent ID token valid for an hour>".
# verified_fixture WORK OUT: after start_dev_idp, writes OUT, the account.balance fixture with
#   demo-user-1's end-user ID token (minted by dev_idp) in payload.userIdToken, and sets
#   end_user_env to dev_idp's END_USER_* settings (an array) for a server with ACCOUNT_ACCESS=verified.
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

verified_fixture() {
  local work=$1 out=$2 mint user_token
  mint=$(sed -n 's/^DEV_IDP_URL=//p' "$work/idp.env")/mint
  user_token=$(curl -sf -H 'content-type: application/json' --data '{"sub":"demo-user-1"}' "$mint" \
    | sed -n 's/.*"id_token":"\([^"]*\)".*/\1/p')
  [ -n "$user_token" ] || { echo "no end-user token from $mint" >&2; exit 1; }
  # The fixture's first line is its opening brace: the payload goes right after it.
  awk -v token="$user_token" 'NR == 1 && $0 == "{" { print; print "  \"payload\": {\"userIdToken\": \"" token "\"},"; next } { print }' \
    tests/fixtures/account-balance.json >"$out"
  # shellcheck disable=SC2207
  end_user_env=($(grep '^END_USER_' "$work/idp.env"))
}
