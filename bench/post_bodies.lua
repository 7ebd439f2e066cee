-- Usage: wrk -t1 -c64 -d8s -s bench/post_bodies.lua URL -- BODIES_FILE
-- POSTs one urlencoded form per request, each body from its own line of BODIES_FILE, in order.
-- Requests are formatted once in init() so that wrk's own CPU stays low. When the file runs out
-- it starts again from the top and done() says so: for Confide that means repeated form tokens.

local requests = {}
local threads = {}
-- Globals, so that done() can read them from each thread with thread:get().
count = 0
sent = 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local path = args[1]
  if path == nil then
    error("post_bodies.lua: pass the bodies file after --")
  end
  for line in io.lines(path) do
    if #line > 0 then
      count = count + 1
      local headers = {}
      headers["Content-Type"] = "application/x-www-form-urlencoded"
      requests[count] = wrk.format("POST", nil, headers, line)
    end
  end
  if count == 0 then
    error("post_bodies.lua: no bodies in " .. path)
  end
end

function request()
  sent = sent + 1
  return requests[(sent - 1) % count + 1]
end

function done(summary, latency, requests_)
  for _, thread in ipairs(threads) do
    local n = thread:get("sent")
    local size = thread:get("count")
    io.write(string.format("bodies: sent %d of %d\n", n, size))
  end
end
