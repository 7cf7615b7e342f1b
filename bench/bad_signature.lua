-- wrk script: POST release payloads signed with a secret the server does not have (401 wrong_secret), each with
-- its own X-GitHub-Delivery and one of BENCH_HOOKS hook ids, paced to about BENCH_RATE requests a second over all
-- connections (wrk waits `delay()` ms before each request of a connection; the answer's time comes on top, so the
-- rate reached is a little under the target: wrk's summary says what it was).
-- Environment: BENCH_RATE (default 2000), BENCH_CONNECTIONS (wrk's -c, to share the rate out), BENCH_HOOKS (1000).

local threads = {}
local next_id = 1

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local rate = tonumber(os.getenv("BENCH_RATE") or "2000")
  local connections = tonumber(os.getenv("BENCH_CONNECTIONS") or "20")
  interval = connections * 1000 / rate
  hooks = tonumber(os.getenv("BENCH_HOOKS") or "1000")
  counter = 0
  body = '{"action":"published","release":{"id":1,"tag_name":"v1.0.0"},"repository":{"full_name":"o/r"}}'
  headers = {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "GitHub-Hookshot/bench",
    ["X-GitHub-Event"] = "release",
    ["X-Hub-Signature-256"] = "sha256=" .. string.rep("0", 64),
  }
end

function delay()
  return interval
end

function request()
  counter = counter + 1
  headers["X-GitHub-Delivery"] = "bad-" .. tid .. "-" .. counter
  headers["X-GitHub-Hook-ID"] = tostring(100000 + (counter * 7 + tid) % hooks)
  return wrk.format("POST", "/webhooks/github", headers, body)
end

function done(summary, latency, requests)
  io.write(string.format("WRK_RESULT requests=%d duration_us=%d errors_status=%d\n",
    summary.requests, summary.duration, summary.errors.status))
end
