-- wrk script for scripts/booking-load.sh: booking.create calls, each a new Dialogflow turn for a new
-- vehicle, for the slots in $SLOTS ("YYYY-MM-DD HH MM" separated by ","), taken in turn. Thread i
-- sends to the i-th address of $ADDRS ("host:port,host:port,...", cycled), so one wrk run spreads
-- its load over several instances and reports one latency histogram. Prints one summary line.
local template = assert(io.open(assert(os.getenv("FIXTURE")), "rb")):read("*a")
local addrs, slots, threads = {}, {}, {}
for a in string.gmatch(assert(os.getenv("ADDRS")), "[^,]+") do addrs[#addrs + 1] = a end
for s in string.gmatch(assert(os.getenv("SLOTS")), "[^,]+") do slots[#slots + 1] = s end
local next_thread = 0

function setup(thread)
  local host, port = string.match(addrs[(next_thread % #addrs) + 1], "([^:]+):(%d+)")
  thread.addr = wrk.lookup(host, port)[1]
  thread:set("tid", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

local n, letters = 0, "ABCDEFGHJKLMNPRSTUVWXYZ"
booked, taken, unavailable, other = 0, 0, 0, 0

function request()
  n = n + 1
  local y, m, d, hh, mm = string.match(slots[(n % #slots) + 1], "(%d+)-(%d+)-(%d+) (%d+) (%d+)")
  local l1 = math.floor(n / 10000) % #letters + 1
  local l2 = math.floor(n / (10000 * #letters)) % #letters + 1
  local vehicle = string.format("MH%02d%s%s%04d", 10 + tid, letters:sub(l1, l1), letters:sub(l2, l2), n % 10000)
  local body = template
    :gsub("__VEHICLE__", vehicle)
    :gsub("__RID__", string.format("load-%d-%d", tid, n))
    :gsub("__Y__", tonumber(y)):gsub("__M__", tonumber(m)):gsub("__D__", tonumber(d))
    :gsub("__HH__", tonumber(hh)):gsub("__MM__", tonumber(mm))
  return wrk.format("POST", "/webhook", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status ~= 200 then other = other + 1
  elseif string.find(body, '"booking_status":"confirmed"', 1, true) then booked = booked + 1
  elseif string.find(body, "was just taken", 1, true) then taken = taken + 1
  elseif string.find(body, "take bookings right now", 1, true) then unavailable = unavailable + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  local b, t, u, o = 0, 0, 0, 0
  for _, th in ipairs(threads) do
    b = b + th:get("booked"); t = t + th:get("taken")
    u = u + th:get("unavailable"); o = o + th:get("other")
  end
  local seconds = summary.duration / 1e6
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    "RESULT rps=%.0f p50_ms=%.1f p99_ms=%.1f requests=%d booked=%d taken=%d unavailable=%d other=%d errors=%d\n",
    summary.requests / seconds, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, b, t, u, o, errors))
end
