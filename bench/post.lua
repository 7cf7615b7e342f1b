-- wrk script: POST signed release payloads, each request with a unique X-GitHub-Delivery.
-- The bodies file (from bench/prep.py) holds "<signature> <body>" lines; the delivery id is not signed.
-- Environment: BENCH_BODIES (path), BENCH_RUN (a run tag, so that ids are unique across runs),
-- BENCH_CLOSE=1 (send `Connection: close`: wrk then opens a new TCP connection per request, as GitHub does).

local threads = {}
local next_id = 1

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  bodies, sigs = {}, {}
  local path = os.getenv("BENCH_BODIES")
  local f = assert(io.open(path, "r"), "cannot open " .. tostring(path))
  for line in f:lines() do
    local sig, body = line:match("^(%S+) (.*)$")
    if sig then
      table.insert(sigs, sig)
      table.insert(bodies, body)
    end
  end
  f:close()
  run = os.getenv("BENCH_RUN") or "run"
  counter = 0
  headers = {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "GitHub-Hookshot/bench",
    ["Accept"] = "*/*",
    ["X-GitHub-Event"] = "release",
    ["X-GitHub-Hook-ID"] = "424242",
    ["X-GitHub-Hook-Installation-Target-ID"] = "186853002",
    ["X-GitHub-Hook-Installation-Target-Type"] = "repository",
  }
  if os.getenv("BENCH_CLOSE") == "1" then
    headers["Connection"] = "close"
  end
end

function request()
  counter = counter + 1
  local i = (counter % #bodies) + 1
  headers["X-GitHub-Delivery"] = run .. "-" .. tid .. "-" .. counter
  headers["X-Hub-Signature-256"] = sigs[i]
  return wrk.format("POST", "/webhooks/github", headers, bodies[i])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d errors_connect=%d errors_read=%d errors_write=%d"
      .. " errors_status=%d errors_timeout=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.1f\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
