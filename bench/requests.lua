-- Usage: wrk -t1 -c16 -d8s -s bench/requests.lua URL -- [method=POST] [bodies=FILE] [cookie=TEXT]
--        [type=application/json]
-- Sends METHOD to URL, each request with the next body from FILE (one per line, cycling), and
-- counts the responses by status. done() prints one line, "statuses: 200=N 401=M ...", which the
-- bench reads to check that every response was the one it meant to measure.
-- Requests are formatted once in init() so that wrk's own CPU stays low.

local requests = {}
local threads = {}
-- Globals, so that done() can read them from each thread with thread:get().
count = 0
sent = 0
statuses = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local options = {method = "GET", type = "application/json"}
  for _, arg in ipairs(args) do
    local key, value = string.match(arg, "^(%a+)=(.*)$")
    if key == nil then
      error("requests.lua: arguments are key=value, not " .. arg)
    end
    options[key] = value
  end
  local headers = {}
  if options.cookie ~= nil then
    headers["Cookie"] = options.cookie
  end
  if options.bodies == nil then
    count = 1
    requests[1] = wrk.format(options.method, nil, headers, nil)
    return
  end
  headers["Content-Type"] = options.type
  for line in io.lines(options.bodies) do
    if #line > 0 then
      count = count + 1
      requests[count] = wrk.format(options.method, nil, headers, line)
    end
  end
  if count == 0 then
    error("requests.lua: no bodies in " .. options.bodies)
  end
end

function request()
  sent = sent + 1
  return requests[(sent - 1) % count + 1]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests_)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + n
    end
  end
  local keys = {}
  for status, _ in pairs(total) do
    table.insert(keys, status)
  end
  table.sort(keys)
  local parts = {}
  for _, status in ipairs(keys) do
    table.insert(parts, string.format("%d=%d", status, total[status]))
  end
  io.write("statuses: " .. table.concat(parts, " ") .. "\n")
end
