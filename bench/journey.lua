-- Usage: wrk -tN -cN -d8s -s bench/journey.lua URL -- DESCRIPTION
-- The reporter's whole post/redirect/get journey with a draft (bench/journey.py says which
-- requests), over and over. Run it with as many threads as connections: wrk gives each thread
-- its own Lua state, so each connection keeps its own draft cookie and its place in the journey.
-- A request that does not answer as the flow should (303 after a POST, 200 after a GET) is
-- counted, and that connection starts a new journey without its cookie.

local threads = {}
journeys = 0
broken = 0
sent = 0

function setup(thread)
  table.insert(threads, thread)
end

local function urlencode(text)
  return (text:gsub("[^%w%-_%.~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local description = "Benchmark report."
local steps = {}
local state = 1
local cookie = nil
local token = nil

function init(args)
  if args[1] ~= nil then
    description = args[1]
  end
  -- { method, path, body or nil }: the journey in order.
  steps = {
    { "GET", "/report" },
    { "POST", "/report", "step=how&how=anonymous" },
    { "GET", "/report/category" },
    { "POST", "/report", "step=category&category=safety" },
    { "GET", "/report/what" },
    { "POST", "/report", "step=what&description=" .. urlencode(description) },
    { "GET", "/report/when" },
    { "POST", "/report", "step=when&occurred=Tuesday+afternoon" },
    { "GET", "/report/where" },
    { "POST", "/report", "step=where&location=Level+2+corridor" },
    { "GET", "/report/follow-up" },
    { "POST", "/report", "step=follow-up&follow_up=no" },
    { "GET", "/report/check" },
    { "POST", "/report/submit", nil }, -- the body is the check page's form token
    { "GET", "/report/confirmation" },
  }
end

function request()
  sent = sent + 1
  local step = steps[state]
  local headers = { ["Accept-Encoding"] = "gzip" }
  if cookie ~= nil then
    headers["Cookie"] = cookie
  end
  local body = step[3]
  if step[1] == "POST" then
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    if body == nil then
      body = "form_token=" .. urlencode(token or "")
    end
  end
  return wrk.format(step[1], step[2], headers, body)
end

local function restart()
  broken = broken + 1
  state = 1
  cookie = nil
  token = nil
end

function response(status, headers, body)
  local step = steps[state]
  local want = 200
  if step[1] == "POST" then
    want = 303
  end
  if status ~= want then
    restart()
    return
  end
  local set = headers["Set-Cookie"]
  if set ~= nil then
    local pair = set:match("^(confide_draft=[^;]+)")
    if pair ~= nil then
      cookie = pair
    end
  end
  if state == 13 then
    token = body:match('name="form_token" value="([^"]+)"')
    if token == nil then
      restart()
      return
    end
  end
  if state == #steps then
    journeys = journeys + 1
    state = 1
    cookie = nil
    token = nil
  else
    state = state + 1
  end
end

function done(summary, latency, requests_)
  local total, bad = 0, 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("journeys")
    bad = bad + thread:get("broken")
  end
  io.write(string.format("journeys: %d complete, %d broken\n", total, bad))
end
