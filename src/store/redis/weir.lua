-- weir's atomic transitions on Redis: one script, one operation per call (ARGV[1]),
-- its input as JSON (ARGV[2]). KEYS[1] is the key prefix of one tenant ("ns:{tenant}:"),
-- so a call touches one hash slot; ARGV[3], when given, is a global registry key that a
-- standalone server updates in the same call (a cluster's client does it around it).
-- Payloads (events, runs, definitions) arrive as strings and are stored as they are:
-- nothing here re-encodes JSON.
local P = KEYS[1]
local op = ARGV[1]
local a = cjson.decode(ARGV[2])
local REG = ARGV[3]
local NUL = "\0"

local function member(e) return e[1] .. NUL .. e[2] .. NUL .. e[3] end

-- A lease record: token|claimed|expires|took|gone|owner.
local function parse_lease(l)
  local token, claimed, expires, took, gone, owner =
    string.match(l, "^(%d+)|(%-?%d+)|(%-?%d+)|(%-?%d*)|(%d)|(.*)$")
  return { token = token, claimed = claimed, expires = expires, took = took, gone = gone, owner = owner }
end
local function lease_text(l)
  return l.token .. "|" .. l.claimed .. "|" .. l.expires .. "|" .. l.took .. "|" .. l.gone .. "|" .. l.owner
end

-- Marks whether the entry under a lease on member m was removed; false if none is held.
local function set_gone(m, gone)
  local l = redis.call("HGET", P .. "lease", m)
  if not l then return false end
  local p = parse_lease(l)
  p.gone = gone
  redis.call("HSET", P .. "lease", m, lease_text(p))
  return true
end

local function enqueue(e)
  local m = member(e)
  if not set_gone(m, "0") then
    redis.call("ZADD", P .. "q", tonumber(e[1]), m)
  end
end

local function dequeue(e)
  local m = member(e)
  redis.call("ZREM", P .. "q", m)
  set_gone(m, "1")
end

-- Ends the lease on member m; the entry goes back to the queue unless it was removed.
local function drop_lease(m, requeue)
  local l = redis.call("HGET", P .. "lease", m)
  if not l then return end
  local p = parse_lease(l)
  redis.call("HDEL", P .. "lease", m)
  redis.call("ZREM", P .. "lexp", m)
  if requeue and p.gone == "0" then
    local due = string.match(m, "^(%-?%d+)")
    redis.call("ZADD", P .. "q", tonumber(due), m)
  end
end

local function holds(m, token)
  local l = redis.call("HGET", P .. "lease", m)
  if not l then return nil end
  local p = parse_lease(l)
  if p.token ~= tostring(token) then return nil end
  return p
end

local function waits_add(list)
  for _, k in ipairs(list) do
    local set = P .. "w:" .. k[1] .. NUL .. k[2] .. NUL .. k[3]
    if redis.call("SADD", set, k[4] .. NUL .. k[5]) == 1 then
      redis.call("HINCRBY", P .. "wp:" .. k[1], k[2], 1)
    end
  end
end

local function waits_remove(list)
  for _, k in ipairs(list) do
    local set = P .. "w:" .. k[1] .. NUL .. k[2] .. NUL .. k[3]
    if redis.call("SREM", set, k[4] .. NUL .. k[5]) == 1 then
      if redis.call("HINCRBY", P .. "wp:" .. k[1], k[2], -1) <= 0 then
        redis.call("HDEL", P .. "wp:" .. k[1], k[2])
      end
    end
  end
end

local function run_text(rev, status, json) return rev .. " " .. status .. "\n" .. json end
local function run_head(v)
  local rev, status = string.match(v, "^(%d+) (%S+)\n")
  return tonumber(rev), status
end

-- Moves run id of function fn (and user u, if indexed) from status old to new.
local function move_status(id, fn, u, old, new)
  redis.call("ZREM", P .. "rst:" .. old, id)
  redis.call("ZADD", P .. "rst:" .. new, 0, id)
  redis.call("ZREM", P .. "rfs:" .. fn .. NUL .. old, id)
  redis.call("ZADD", P .. "rfs:" .. fn .. NUL .. new, 0, id)
  redis.call("HINCRBY", P .. "counts", fn .. NUL .. old, -1)
  redis.call("HINCRBY", P .. "counts", fn .. NUL .. new, 1)
  if u then
    redis.call("ZREM", P .. "urs:" .. u .. NUL .. old, id)
    redis.call("ZADD", P .. "urs:" .. u .. NUL .. new, 0, id)
    redis.call("HINCRBY", P .. "ucounts", u .. NUL .. old, -1)
    redis.call("HINCRBY", P .. "ucounts", u .. NUL .. new, 1)
  end
end

-- A new run: {id, fn, status, user?, replay?, json, enq, wadd}.
local function new_run(r)
  redis.call("HSET", P .. "runs", r.id, run_text(1, r.status, r.json))
  redis.call("ZADD", P .. "r", 0, r.id)
  redis.call("ZADD", P .. "rfn:" .. r.fn, 0, r.id)
  redis.call("ZADD", P .. "rst:" .. r.status, 0, r.id)
  redis.call("ZADD", P .. "rfs:" .. r.fn .. NUL .. r.status, 0, r.id)
  redis.call("HINCRBY", P .. "counts", r.fn .. NUL .. r.status, 1)
  if r.user then
    redis.call("ZADD", P .. "ru:" .. r.user, 0, r.id)
    redis.call("ZADD", P .. "urs:" .. r.user .. NUL .. r.status, 0, r.id)
    redis.call("HINCRBY", P .. "ucounts", r.user .. NUL .. r.status, 1)
  end
  if r.replay then redis.call("ZADD", P .. "rrep:" .. r.replay, 0, r.id) end
  for _, e in ipairs(r.enq) do enqueue(e) end
  waits_add(r.wadd)
end

-- Event meta: ingested(0/1)|duplicate_of|run,run,...
local function meta_parse(m)
  local ing, dup, runs = string.match(m, "^(%d)|([^|]*)|(.*)$")
  return ing, dup, runs
end
local function meta_add_run(id, run_id)
  local m = redis.call("HGET", P .. "evm", id)
  if not m then return end
  local ing, dup, runs = meta_parse(m)
  if runs == "" then runs = run_id else runs = runs .. "," .. run_id end
  redis.call("HSET", P .. "evm", id, ing .. "|" .. dup .. "|" .. runs)
end

local function register()
  if REG and REG ~= "" then redis.call("SADD", REG, a.tenant) end
end

if op == "append" then
  local out = {}
  local seen = {}
  local users = {}
  local order = {}
  for i, ev in ipairs(a.events) do
    local dup = nil
    if ev.idem then
      if seen[ev.idem] then
        dup = seen[ev.idem]
      else
        local prev = redis.call("HGET", P .. "idem", ev.idem)
        if prev then dup = prev else
          redis.call("HSET", P .. "idem", ev.idem, ev.id)
          seen[ev.idem] = ev.id
        end
      end
    end
    redis.call("HSET", P .. "ev", ev.id, ev.json)
    if dup then
      redis.call("HSET", P .. "evm", ev.id, "1|" .. dup .. "|")
    else
      redis.call("HSET", P .. "evm", ev.id, "0||")
      if tonumber(ev.ts) > a.now then
        redis.call("ZADD", P .. "delayed", tonumber(ev.ts), ev.id)
      else
        redis.call("ZADD", P .. "inbox", 0, ev.id)
      end
    end
    redis.call("ZADD", P .. "evs", 0, ev.id)
    redis.call("ZADD", P .. "evn:" .. ev.name, 0, ev.id)
    if ev.user then
      redis.call("ZADD", P .. "uev:" .. ev.user, 0, ev.id)
      if not users[ev.user] then
        users[ev.user] = { n = 0 }
        table.insert(order, ev.user)
      end
      users[ev.user].n = users[ev.user].n + 1
      users[ev.user].obj = ev.uobj
    end
    out[i] = dup or ""
  end
  for _, u in ipairs(order) do
    local k = P .. "u:" .. u
    local old = redis.call("HGET", k, "ls")
    local ls = a.now
    if old and tonumber(old) > ls then ls = tonumber(old) end
    redis.call("HINCRBY", k, "ev", users[u].n)
    redis.call("HSET", k, "obj", users[u].obj, "ls", string.format("%d", ls))
    redis.call("ZADD", P .. "useen", ls, u)
  end
  register()
  return out
end

if op == "ingest" then
  local queued = 0
  for _, ev in ipairs(a.events) do
    local m = redis.call("HGET", P .. "evm", ev.id)
    if m then
      local ing, dup, runs = meta_parse(m)
      if ing == "0" then
        local ids = {}
        for _, r in ipairs(ev.runs) do
          new_run(r)
          queued = queued + #r.enq
          table.insert(ids, r.id)
        end
        redis.call("HSET", P .. "evm", ev.id, "1|" .. dup .. "|" .. table.concat(ids, ","))
        redis.call("ZREM", P .. "inbox", ev.id)
        redis.call("ZREM", P .. "delayed", ev.id)
      end
    end
  end
  if queued > 0 then register() end
  return queued
end

if op == "write" then
  if a.lease then
    if not holds(member(a.lease.e), a.lease.token) then return { "lost" } end
  end
  local cur = redis.call("HGET", P .. "runs", a.id)
  if not cur then return { "missing" } end
  local rev, status = run_head(cur)
  if rev ~= a.rev then return { "conflict" } end
  if a.run then
    rev = rev + 1
    redis.call("HSET", P .. "runs", a.id, run_text(rev, a.run.status, a.run.json))
    if status ~= a.run.status then move_status(a.id, a.run.fn, a.run.user, status, a.run.status) end
  end
  for _, e in ipairs(a.deq) do dequeue(e) end
  for _, e in ipairs(a.enq) do enqueue(e) end
  waits_remove(a.wrem)
  waits_add(a.wadd)
  if a.lease then drop_lease(member(a.lease.e), true) end
  if #a.enq > 0 then register() end
  return { "ok", rev }
end

if op == "claim" then
  local out = {}
  local n = 0
  local exp = redis.call("ZRANGEBYSCORE", P .. "lexp", "-inf", a.now, "LIMIT", 0, a.limit)
  for _, m in ipairs(exp) do
    local p = parse_lease(redis.call("HGET", P .. "lease", m))
    p.took = p.claimed
    p.token = tostring(redis.call("INCR", P .. "seq"))
    p.claimed = string.format("%d", a.now)
    p.expires = string.format("%d", a.now + a.lease_ms)
    p.owner = a.owner
    redis.call("HSET", P .. "lease", m, lease_text(p))
    redis.call("ZADD", P .. "lexp", a.now + a.lease_ms, m)
    n = n + 1
    table.insert(out, { m, p.token, p.claimed, p.expires, p.took })
  end
  local held = redis.call("HLEN", P .. "lease")
  local take = math.min(a.take, a.cap - held, a.limit - n)
  if take > 0 then
    local due = redis.call("ZRANGEBYSCORE", P .. "q", "-inf", a.now, "LIMIT", 0, take)
    for _, m in ipairs(due) do
      redis.call("ZREM", P .. "q", m)
      local p = {
        token = tostring(redis.call("INCR", P .. "seq")),
        claimed = string.format("%d", a.now),
        expires = string.format("%d", a.now + a.lease_ms),
        took = "", gone = "0", owner = a.owner,
      }
      redis.call("HSET", P .. "lease", m, lease_text(p))
      redis.call("ZADD", P .. "lexp", a.now + a.lease_ms, m)
      table.insert(out, { m, p.token, p.claimed, p.expires, "" })
      n = n + 1
    end
  end
  -- Each claimed entry with its run, read after the claim.
  for _, c in ipairs(out) do
    local run = string.match(c[1], "^%-?%d+%z(.*)%z")
    local v = redis.call("HGET", P .. "runs", run)
    table.insert(c, v or "")
  end
  return out
end

if op == "peek" then
  local q = redis.call("ZRANGEBYSCORE", P .. "q", "-inf", "+inf", "WITHSCORES", "LIMIT", 0, 1)
  local l = redis.call("ZRANGEBYSCORE", P .. "lexp", "-inf", "+inf", "WITHSCORES", "LIMIT", 0, 1)
  return {
    redis.call("HLEN", P .. "lease"),
    q[2] or "", l[2] or "",
    redis.call("ZCOUNT", P .. "q", "-inf", a.now),
    redis.call("ZCOUNT", P .. "lexp", "-inf", a.now),
  }
end

if op == "renew" then
  local out = {}
  for i, l in ipairs(a.leases) do
    local m = member(l.e)
    local p = holds(m, l.token)
    if p then
      if tonumber(p.expires) < a["until"] then
        p.expires = string.format("%d", a["until"])
        redis.call("HSET", P .. "lease", m, lease_text(p))
        redis.call("ZADD", P .. "lexp", a["until"], m)
      end
      -- Held, but its entry removed meanwhile (the run moved on): the step should stop.
      out[i] = (p.gone == "1") and 0 or 1
    else
      out[i] = 0
    end
  end
  return out
end

if op == "release" then
  for _, l in ipairs(a.leases) do
    local m = member(l.e)
    if holds(m, l.token) then
      if a.remove then
        redis.call("ZREM", P .. "q", m)
        drop_lease(m, false)
      else
        drop_lease(m, true)
      end
    end
  end
  return 0
end

if op == "put_function" then
  local v = redis.call("HINCRBY", P .. "fnver", a.id, 1)
  local rec = '{"id":' .. cjson.encode(a.id) .. ',"version":' .. v .. ',"def":' .. a.def ..
    ',"created_at":' .. string.format("%d", a.now) .. '}'
  redis.call("HSET", P .. "fn", a.id .. NUL .. v, rec)
  redis.call("HSET", P .. "fnlatest", a.id, v)
  register()
  return v
end

if op == "meta_if" then
  local cur = redis.call("HGET", P .. "meta", a.key)
  if a.expected then
    if cur ~= a.expected then return 0 end
  elseif cur then
    return 0
  end
  redis.call("HSET", P .. "meta", a.key, a.value)
  return 1
end

if op == "create_replay" then
  for _, ev in ipairs(a.events) do
    redis.call("HSET", P .. "ev", ev.id, ev.json)
    redis.call("HSET", P .. "evm", ev.id, "1||")
    redis.call("ZADD", P .. "evs", 0, ev.id)
    redis.call("ZADD", P .. "evn:" .. ev.name, 0, ev.id)
  end
  local items = P .. "ritems:" .. a.id
  redis.call("DEL", items)
  for _, it in ipairs(a.items) do redis.call("RPUSH", items, it) end
  redis.call("HSET", P .. "replays", a.id, a.state)
  redis.call("HSET", P .. "rpmeta", a.id, (a.running and "1" or "0") .. " " .. a.done)
  redis.call("ZADD", P .. "rps", 0, a.id)
  if a.running then redis.call("SADD", P .. "rprun", a.id) else redis.call("SREM", P .. "rprun", a.id) end
  register()
  return 1
end

if op == "advance_replay" then
  local m = redis.call("HGET", P .. "rpmeta", a.id)
  if not m then return 0 end
  local running, done = string.match(m, "^(%d) (%d+)$")
  if running ~= "1" or tonumber(done) ~= a.expected then return 0 end
  redis.call("HSET", P .. "replays", a.id, a.state)
  redis.call("HSET", P .. "rpmeta", a.id, (a.running and "1" or "0") .. " " .. a.done)
  if a.running then redis.call("SADD", P .. "rprun", a.id) else redis.call("SREM", P .. "rprun", a.id) end
  local queued = 0
  for _, r in ipairs(a.runs) do
    new_run(r)
    queued = queued + #r.enq
    meta_add_run(r.event, r.id)
  end
  if queued > 0 then register() end
  return 1
end

if op == "erase" then
  for _, ev in ipairs(a.events) do
    if ev.idem and redis.call("HGET", P .. "idem", ev.idem) == ev.id then
      redis.call("HDEL", P .. "idem", ev.idem)
    end
    redis.call("HSET", P .. "ev", ev.id, ev.json)
  end
  local conflicts = {}
  for _, r in ipairs(a.runs) do
    local cur = redis.call("HGET", P .. "runs", r.id)
    if cur then
      local rev, status = run_head(cur)
      if rev == r.rev then
        redis.call("HSET", P .. "runs", r.id, run_text(rev + 1, status, r.json))
      else
        table.insert(conflicts, r.id)
      end
    end
  end
  if a.finish and #conflicts == 0 then
    local k = P .. "u:" .. a.user
    if redis.call("EXISTS", k) == 1 then
      redis.call("HDEL", k, "obj")
      redis.call("HSET", k, "er", string.format("%d", a.now))
    end
  end
  return conflicts
end

return redis.error_reply("weir: unknown operation " .. tostring(op))
