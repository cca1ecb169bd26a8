#!/usr/bin/env bash
# Checks that the published tool document is what the server does, with the tools the ecosystem uses:
#   1. openapi-spec-validator (PyPI) validates GET /openapi.json as OpenAPI 3.0;
#   2. schemathesis (PyPI) runs against the live server from that document: for every operation, no
#      5xx (not_a_server_error), every answer conforms to its declared schema, status code and
#      content type. Bounded: at most $MAX_EXAMPLES cases per operation, $MAX_TIME seconds overall.
# Everything listens on 127.0.0.1 only: the server (AUTH_MODE=none, a fresh seeded database in a
# temporary directory) and a fake weather provider (so the weather tool answers without the network).
# Exits non-zero on any failure; the server, the fake and the temporary directory go away on exit.
#
# usage: scripts/schemathesis.sh [BINARY]   (default: cargo build --locked, then target/debug/cx-webhook)
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== the tool surface: openapi-spec-validator and schemathesis against the live server"
MAX_EXAMPLES=${MAX_EXAMPLES:-20}
MAX_TIME=${MAX_TIME:-60}
fail() { echo "schemathesis: FAIL: $*" >&2; exit 1; }

binary=${1:-}
if [ -z "$binary" ]; then
  cargo build --locked --quiet --bin cx-webhook
  binary=target/debug/cx-webhook
fi
[ -x "$binary" ] || fail "$binary is not an executable"

# The Python tools: from $SCHEMATHESIS_VENV when given, else installed with pip as .ci/run installs
# its own (their scripts land in Python's scripts directory, which may not be on PATH yet).
if [ -n "${SCHEMATHESIS_VENV:-}" ]; then
  PATH="$SCHEMATHESIS_VENV/bin:$PATH"
else
  PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
  if ! command -v schemathesis >/dev/null || ! command -v openapi-spec-validator >/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
      schemathesis openapi-spec-validator
  fi
fi
schemathesis --version
command -v curl >/dev/null || fail "curl is missing"

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A fake Open-Meteo: every name is found (Mumbai's coordinates), conditions are fixed.
meteo_port=$(free_port)
python3 - "$meteo_port" <<'PY' &
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/v1/search"):
            body = {"results": [{"name": "Mumbai", "latitude": 19.07, "longitude": 72.88,
                                 "country": "India", "admin1": "Maharashtra"}]}
        else:
            body = {"current": {"time": "2031-03-14T10:30", "temperature_2m": 29.4,
                                "weather_code": 2, "wind_speed_10m": 12.3}}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
pids+=($!)

port=$(free_port)
BIND=127.0.0.1 PORT=$port AUTH_MODE=none DATABASE_PATH="$work/cx-webhook.db" \
  WEATHER_GEOCODING_URL="http://127.0.0.1:$meteo_port/v1/search" \
  WEATHER_FORECAST_URL="http://127.0.0.1:$meteo_port/v1/forecast" \
  RUST_LOG=error "$binary" serve >"$work/server.log" 2>&1 &
pids+=($!)
base="http://127.0.0.1:$port"

for _ in $(seq 1 100); do
  curl -fsS "$base/health" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$base/health" >/dev/null || { cat "$work/server.log" >&2; fail "the server did not start"; }

echo "-- openapi-spec-validator: $base/openapi.json"
curl -fsS "$base/openapi.json" -o "$work/openapi.json"
openapi-spec-validator "$work/openapi.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["openapi"].startswith("3.0."), d["openapi"]' "$work/openapi.json" ||
  fail "the document is not OpenAPI 3.0"

echo "-- schemathesis: every operation, at most $MAX_EXAMPLES examples each, $MAX_TIME s overall"
# Run from the temporary directory: schemathesis keeps a .schemathesis/ cache in its working directory.
(cd "$work" && timeout --kill-after=10 $((MAX_TIME + 60)) \
  schemathesis run "$base/openapi.json" \
    --url "$base" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --max-examples "$MAX_EXAMPLES" \
    --max-time "$MAX_TIME" \
    --request-timeout 10 \
    --seed 15 \
    --workers 1) ||
  { echo "server log:" >&2; tail -n 50 "$work/server.log" >&2; fail "schemathesis found failures (see above)"; }

echo "schemathesis: OK"
