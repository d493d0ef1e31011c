-- wrk script for benchmarks/serving.py: POST JSON bodies in turn, count non-2xx answers, and
-- print the latency distribution and the counters as one JSON line when the run ends.
--
--   wrk -t2 -c16 -d15s --latency --timeout 10s -s _wrk_post.lua URL -- BODIES_FILE [OFFSET]
--
-- BODIES_FILE holds one JSON document a line; each wrk thread starts at its own line and sends
-- them in turn (so the servers do not see one body over and over). The last line of wrk's
-- output is "WRK_JSON {...}" with latencies in microseconds.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local bodies = {}
local n = 0
local i = 0
non2xx = 0

function init(args)
  local f = assert(io.open(args[1], "r"), "cannot open " .. tostring(args[1]))
  for line in f:lines() do
    if #line > 0 then
      n = n + 1
      bodies[n] = line
    end
  end
  f:close()
  assert(n > 0, "no bodies in " .. args[1])
  local offset = tonumber(args[2] or "0") or 0
  i = (offset + id * 7919) % n
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  i = i % n + 1
  return wrk.format(nil, nil, nil, bodies[i])
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do
    bad = bad + (t:get("non2xx") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, '
      .. '"write": %d, "status": %d, "timeout": %d, "non2xx": %d, "p50_us": %d, "p90_us": %d, '
      .. '"p99_us": %d, "p999_us": %d, "max_us": %d, "mean_us": %.1f, "threads": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, bad, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean, #threads))
end
