-- wrk script: POST the file named by $FIXTURE as JSON, optionally with $AUTH_HEADER as Authorization
-- and $TRACEPARENT and $CLOUD_TRACE as the trace headers Cloud Run adds, and print one
-- machine-readable summary line.
local path = assert(os.getenv("FIXTURE"), "set FIXTURE to a request body file")
local f = assert(io.open(path, "rb"))
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("AUTH_HEADER")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
for header, var in pairs({ ["traceparent"] = "TRACEPARENT", ["X-Cloud-Trace-Context"] = "CLOUD_TRACE" }) do
  local value = os.getenv(var)
  if value and value ~= "" then
    wrk.headers[header] = value
  end
end

done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT rps=%.0f p50_ms=%.3f p99_ms=%.3f requests=%d errors=%d\n",
    summary.requests / seconds, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, bad))
end
