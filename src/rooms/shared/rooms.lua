-- Everything a room does in Redis, as one script: Redis runs a script alone,
-- so each operation sees and leaves the room whole, whichever instance calls.
-- Scripts do not roll back, so each operation checks everything before it
-- writes anything.
--
-- KEYS: one room's keys (all in the hash slot of `{CODE}`), then the global
-- index of open rooms:
--   meta      hash: epoch, seq (last event id), joins, owner, locked, pass, streams,
--             bytes (of the frames the events keep)
--   members   hash: token -> JSON {n name, nj name as JSON, s session, o order,
--             k skeleton, f folded, u capitals, st streamed, l leases, c open leases}
--   names     hash: "n|name", "k|skeleton", "f|folded", "u|capitals" -> token
--   removed   set:  "t|token", "s|session", "n|name", "k|skeleton", "f|folded",
--                   "u|capitals"
--   (skeleton, folded and capitals: the name's comparison keys, from Rust)
--   events    stream: entry id "<id>-0", fields f (the SSE frame), ms (when),
--             and e (the token whose membership the event ended)
--   idem      hash: "token|key" -> id of the message sent under that key (the
--             client's key, or for a message sent without one "!" and a
--             random one of the instance's, so that a resend stores it once)
--   idemq     list: "id|token|key", oldest first, to forget keys with history
--   presence  zset of leases, scored by when they lapse (ms):
--             "s|token|instance" an instance's streams of a member,
--             "a|token" a member who never streamed, kept by activity,
--             "r" a new room's time to get its first stream
--   holds     hash: "token|instance" -> "1" streams open, "0" in grace
--   rooms     (global) zset: code -> when its keys lapse
--   history   (global) hash: code -> bytes its events keep, "*" -> all rooms'
--
-- ARGV: code, at (RFC 3339 for events), history (events), unclaimed ms,
-- grace ms, lease ms, history bytes per room, history bytes in all,
-- operation, then the operation's own arguments.
--
-- Replies: { "ok", ... } or { refusal } where a refusal names a RoomError.

local K_META, K_MEMBERS, K_NAMES, K_REMOVED, K_EVENTS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_IDEM, K_IDEMQ, K_PRESENCE, K_HOLDS = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local K_ROOMS, K_HISTORY = KEYS[10], KEYS[11]
local ROOM_KEYS = { K_META, K_MEMBERS, K_NAMES, K_REMOVED, K_EVENTS, K_IDEM, K_IDEMQ, K_PRESENCE, K_HOLDS }

local CODE, AT = ARGV[1], ARGV[2]
local HISTORY, UNCLAIMED = tonumber(ARGV[3]), tonumber(ARGV[4])
local GRACE, LEASE = tonumber(ARGV[5]), tonumber(ARGV[6])
local HISTORY_BYTES, MAX_HISTORY_BYTES = tonumber(ARGV[7]), tonumber(ARGV[8])
local OP = ARGV[9]
local function arg(n) return ARGV[9 + n] end

-- Keys outlive the last lease by this much, so that a room every instance
-- abandoned (they crashed) leaves nothing behind.
local KEEP_AFTER = 2000

local clock = redis.call('TIME')
local NOW = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)

local function get_member(token)
  local raw = redis.call('HGET', K_MEMBERS, token)
  if raw then return cjson.decode(raw) end
  return nil
end

local function put_member(token, member)
  redis.call('HSET', K_MEMBERS, token, cjson.encode(member))
end

local function oldest_id()
  local first = redis.call('XRANGE', K_EVENTS, '-', '+', 'COUNT', 1)
  if first[1] then return tonumber(string.match(first[1][1], '^(%d+)')) end
  return tonumber(redis.call('HGET', K_META, 'seq')) + 1
end

-- Forgets the idempotency keys of messages history no longer holds.
local function forget_keys()
  local oldest = oldest_id()
  while true do
    local head = redis.call('LINDEX', K_IDEMQ, 0)
    if not head then break end
    local id, field = string.match(head, '^(%d+)|(.*)$')
    if tonumber(id) >= oldest then break end
    redis.call('LPOP', K_IDEMQ)
    redis.call('HDEL', K_IDEM, field)
  end
end

-- The id of a stream entry, as a number (ids stay far below 2^53).
local function entry_id(entry)
  return tonumber(string.match(entry[1], '^(%d+)'))
end

-- Bytes of an entry's frame: what the history bounds count.
local function frame_size(entry)
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'f' then return #fields[i + 1] end
  end
  return 0
end

-- What the room's history keeps grew (or shrank) by `delta` bytes; so did
-- every room's together.
local function count_bytes(delta)
  redis.call('HINCRBY', K_META, 'bytes', delta)
  redis.call('HINCRBY', K_HISTORY, CODE, delta)
  return redis.call('HINCRBY', K_HISTORY, '*', delta)
end

-- Rooms whose keys lapsed (every instance serving them crashed) leave the
-- index, and their bytes the sum.
local function forget_lapsed()
  local lapsed = redis.call('ZRANGEBYSCORE', K_ROOMS, '-inf', NOW)
  for _, code in ipairs(lapsed) do
    local bytes = redis.call('HGET', K_HISTORY, code)
    if bytes then
      redis.call('HINCRBY', K_HISTORY, '*', -tonumber(bytes))
      redis.call('HDEL', K_HISTORY, code)
    end
  end
  if #lapsed > 0 then redis.call('ZREMRANGEBYSCORE', K_ROOMS, '-inf', NOW) end
end

-- Lets the oldest events go while the room keeps more than HISTORY events or
-- HISTORY_BYTES, or every room together more than MAX_HISTORY_BYTES (a room's
-- new event then pushes out its own oldest), as rooms in memory do; the
-- newest always stays. The idempotency keys of messages let go go too.
local function trim()
  local len = redis.call('XLEN', K_EVENTS)
  local bytes = tonumber(redis.call('HGET', K_META, 'bytes') or '0')
  local total = tonumber(redis.call('HGET', K_HISTORY, '*') or '0')
  if total > MAX_HISTORY_BYTES then
    forget_lapsed()
    total = tonumber(redis.call('HGET', K_HISTORY, '*') or '0')
  end
  local drop, freed = 0, 0
  local batch, i, from, size = {}, 1, '-', 1
  while len - drop > 1 do
    if len - drop <= HISTORY and bytes - freed <= HISTORY_BYTES
      and total - freed <= MAX_HISTORY_BYTES then
      break
    end
    if i > #batch then
      batch = redis.call('XRANGE', K_EVENTS, from, '+', 'COUNT', size)
      if #batch == 0 then break end
      i, size = 1, size * 2
      from = string.format('%d-0', entry_id(batch[#batch]) + 1)
    end
    freed = freed + frame_size(batch[i])
    drop, i = drop + 1, i + 1
  end
  if drop > 0 then
    redis.call('XTRIM', K_EVENTS, 'MAXLEN', len - drop)
    count_bytes(-freed)
    forget_keys()
  end
end

-- Appends an event; its id comes from the room's counter, here, so every
-- instance sees one order. The frame is byte for byte what Event::new writes.
local function publish(kind, name_json, text_json, ended)
  local id = redis.call('HINCRBY', K_META, 'seq', 1)
  local digits = string.format('%d', id)
  local json = '{"id":' .. digits .. ',"kind":"' .. kind .. '","name":' .. name_json
  if text_json then json = json .. ',"text":' .. text_json end
  json = json .. ',"at":"' .. AT .. '"}'
  local frame = 'id: ' .. digits .. '\nevent: ' .. kind .. '\ndata: ' .. json .. '\n\n'
  if ended then
    redis.call('XADD', K_EVENTS, digits .. '-0', 'f', frame, 'ms', NOW, 'e', ended)
  else
    redis.call('XADD', K_EVENTS, digits .. '-0', 'f', frame, 'ms', NOW)
  end
  count_bytes(#frame)
  trim()
  return id
end

-- Every key of the room lapses a little after its last lease, and the index
-- says so too.
local function keep()
  local last = redis.call('ZRANGE', K_PRESENCE, -1, -1, 'WITHSCORES')
  local lapse = (last[2] and tonumber(last[2]) or NOW) + KEEP_AFTER
  for _, key in ipairs(ROOM_KEYS) do
    redis.call('PEXPIREAT', key, lapse)
  end
  redis.call('ZADD', K_ROOMS, lapse, CODE)
  -- The index lapses with the last room in it (each scored by its lapse),
  -- and so does the count of their bytes.
  local latest = redis.call('ZRANGE', K_ROOMS, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', K_ROOMS, latest[2])
  redis.call('PEXPIREAT', K_HISTORY, latest[2])
end

local function close_room()
  local bytes = redis.call('HGET', K_HISTORY, CODE)
  if bytes then
    redis.call('HINCRBY', K_HISTORY, '*', -tonumber(bytes))
    redis.call('HDEL', K_HISTORY, CODE)
  end
  redis.call('DEL', unpack(ROOM_KEYS))
  redis.call('ZREM', K_ROOMS, CODE)
  local latest = redis.call('ZRANGE', K_ROOMS, -1, -1, 'WITHSCORES')
  if latest[2] then
    redis.call('PEXPIREAT', K_ROOMS, latest[2])
    redis.call('PEXPIREAT', K_HISTORY, latest[2])
  else
    redis.call('DEL', K_HISTORY)
  end
end

-- A room lives while some member's streams hold it, or while it is new.
local function live()
  return tonumber(redis.call('HGET', K_META, 'streams') or '0') > 0
    or redis.call('ZSCORE', K_PRESENCE, 'r') ~= false
end

-- Ends a membership: everyone hears of it (`kind` is leave or remove), and an
-- owner who goes hands the room to whoever has been there longest.
local function remove_member(token, kind)
  local member = get_member(token)
  if not member then return end
  redis.call('HDEL', K_MEMBERS, token)
  redis.call('HDEL', K_NAMES, 'n|' .. member.n, 'k|' .. member.k, 'f|' .. member.f,
    'u|' .. (member.u or ''))
  redis.call('ZREM', K_PRESENCE, 'a|' .. token)
  if kind == 'remove' then
    redis.call('SADD', K_REMOVED, 't|' .. token, 's|' .. member.s, 'n|' .. member.n,
      'k|' .. member.k, 'f|' .. member.f, 'u|' .. (member.u or ''))
  end
  publish(kind, member.nj, nil, token)
  if redis.call('HGET', K_META, 'owner') == token then
    local next_token, next_member = '', nil
    local all = redis.call('HGETALL', K_MEMBERS)
    for i = 1, #all, 2 do
      local candidate = cjson.decode(all[i + 1])
      if not next_member or candidate.o < next_member.o then
        next_token, next_member = all[i], candidate
      end
    end
    redis.call('HSET', K_META, 'owner', next_token)
    if next_member then publish('owner', next_member.nj, nil, nil) end
  end
end

-- Takes away one instance's lease on a member ("token|instance").
local function drop_lease(hold)
  local state = redis.call('HGET', K_HOLDS, hold)
  if not state then return end
  redis.call('HDEL', K_HOLDS, hold)
  redis.call('ZREM', K_PRESENCE, 's|' .. hold)
  redis.call('HINCRBY', K_META, 'streams', -1)
  local token = string.match(hold, '^([^|]+)')
  local member = get_member(token)
  if member then
    member.l = member.l - 1
    if state == '1' then member.c = member.c - 1 end
    put_member(token, member)
  end
end

-- A member nothing holds any more has left.
local function leave_if_unheld(token)
  local member = get_member(token)
  if member and member.l <= 0 and not redis.call('ZSCORE', K_PRESENCE, 'a|' .. token) then
    remove_member(token, 'leave')
  end
end

-- Lets lapsed leases go: members they held leave (once: whoever reaps first
-- removes them, and the next finds nothing), and a room nothing holds closes.
-- False when the room closed.
local function reap()
  local due = redis.call('ZRANGEBYSCORE', K_PRESENCE, '-inf', NOW)
  local tokens = {}
  for _, lease in ipairs(due) do
    local kind, rest = string.match(lease, '^(%a)|?(.*)$')
    if kind == 's' then
      drop_lease(rest)
      tokens[#tokens + 1] = string.match(rest, '^([^|]+)')
    else
      redis.call('ZREM', K_PRESENCE, lease)
      if kind == 'a' then tokens[#tokens + 1] = rest end
    end
  end
  for _, token in ipairs(tokens) do leave_if_unheld(token) end
  if not live() then
    close_room()
    return false
  end
  if #due > 0 then keep() end
  return true
end

local function refusal_for(token)
  if redis.call('HEXISTS', K_MEMBERS, token) == 1 then return nil end
  if redis.call('SISMEMBER', K_REMOVED, 't|' .. token) == 1 then return 'Removed' end
  return 'NotMember'
end

-- Why `token` may not do what only the owner may, if it may not.
local function refusal_for_owner(token)
  local refused = refusal_for(token)
  if refused then return refused end
  if redis.call('HGET', K_META, 'owner') ~= token then return 'NotOwner' end
  return nil
end

-- Activity keeps a member who never streamed for another idle period.
local function touch(token)
  local member = get_member(token)
  if member and member.st == 0 then
    redis.call('ZADD', K_PRESENCE, NOW + UNCLAIMED, 'a|' .. token)
    keep()
  end
end

local function admit(token, name, name_json, skeleton, folded, capitals, session)
  local order = redis.call('HINCRBY', K_META, 'joins', 1)
  put_member(token, { n = name, nj = name_json, s = session, o = order, k = skeleton,
    f = folded, u = capitals, st = 0, l = 0, c = 0 })
  redis.call('HSET', K_NAMES, 'n|' .. name, token, 'k|' .. skeleton, token, 'f|' .. folded, token,
    'u|' .. capitals, token)
  redis.call('ZADD', K_PRESENCE, NOW + UNCLAIMED, 'a|' .. token)
  if redis.call('HGET', K_META, 'owner') == '' then
    redis.call('HSET', K_META, 'owner', token)
  end
  publish('join', name_json, nil, nil)
end

-- An instance's streams of a member are open: lease them for LEASE ms.
local function hold_open(token, instance)
  local member = get_member(token)
  local hold = token .. '|' .. instance
  local state = redis.call('HGET', K_HOLDS, hold)
  if not state then
    member.l = member.l + 1
    redis.call('HINCRBY', K_META, 'streams', 1)
  end
  if state ~= '1' then member.c = member.c + 1 end
  member.st = 1
  put_member(token, member)
  redis.call('HSET', K_HOLDS, hold, '1')
  redis.call('ZADD', K_PRESENCE, NOW + LEASE, 's|' .. hold)
  redis.call('ZREM', K_PRESENCE, 'a|' .. token, 'r')
end

-- The kept entries after `after`, which comes as the client sent it: the
-- digits of any u64. Lua's numbers are doubles (exact to 2^53, and 1e14
-- prints as `1e+14`), so the id is compared with the room's newest as digits,
-- and only an id below it, as small as the room's own, is calculated with.
-- Past the newest there is nothing to send (the caller answers `reset`).
local function entries_after(after)
  local seq = redis.call('HGET', K_META, 'seq')
  if #after > #seq or (#after == #seq and after >= seq) then return {} end
  return redis.call('XRANGE', K_EVENTS, string.format('%d-0', tonumber(after) + 1), '+')
end


-- The room as a member sees it: my name, whether I own it, locked, last id,
-- members (token, name, order, open leases), with `history` the kept events,
-- the owner's token, the room's epoch, and whether it is private.
local function view(token, history)
  local me = get_member(token)
  local meta = redis.call('HMGET', K_META, 'owner', 'locked', 'seq', 'epoch', 'pass')
  local members = {}
  local all = redis.call('HGETALL', K_MEMBERS)
  for i = 1, #all, 2 do
    local member = cjson.decode(all[i + 1])
    members[#members + 1] = all[i]
    members[#members + 1] = member.n
    members[#members + 1] = member.o
    members[#members + 1] = member.c
  end
  local events = {}
  if history then events = redis.call('XRANGE', K_EVENTS, '-', '+') end
  return { 'ok', me.n, meta[1] == token and 1 or 0, tonumber(meta[2]), tonumber(meta[3]), members,
    events, meta[1], meta[4], (meta[5] and meta[5] ~= '') and 1 or 0 }
end

----------------------------------------------------------------------------

if OP == 'create' then
  -- token, name, name json, skeleton, folded, session, passphrase hash, most rooms, epoch,
  -- capitals
  if redis.call('EXISTS', K_META) == 1 then
    -- The same create sent again after its connection closed (its reply was
    -- lost): the room with this attempt's random epoch and creator is it.
    if redis.call('HGET', K_META, 'epoch') == arg(9)
      and redis.call('HEXISTS', K_MEMBERS, arg(1)) == 1 then
      return { 'ok' }
    end
    return { 'Taken' }
  end
  forget_lapsed()
  if redis.call('ZCARD', K_ROOMS) >= tonumber(arg(8)) then return { 'TooManyRooms' } end
  -- As in memory (history.rs): a new room needs room for one room's history
  -- (or half the total, if that is less).
  local held = tonumber(redis.call('HGET', K_HISTORY, '*') or '0')
  if held > MAX_HISTORY_BYTES - math.min(HISTORY_BYTES, math.floor(MAX_HISTORY_BYTES / 2)) then
    return { 'HistoryFull' }
  end
  redis.call('HSET', K_META, 'epoch', arg(9), 'seq', 0, 'joins', 0, 'owner', '', 'locked', 0,
    'streams', 0, 'bytes', 0)
  if arg(7) ~= '' then redis.call('HSET', K_META, 'pass', arg(7)) end
  redis.call('ZADD', K_PRESENCE, NOW + UNCLAIMED, 'r')
  admit(arg(1), arg(2), arg(3), arg(4), arg(5), arg(10), arg(6))
  keep()
  return { 'ok' }
end

if redis.call('EXISTS', K_META) == 0 or not reap() then
  if OP == 'removed' then return { 'ok', 0 } end
  return { 'NotFound' }
end

if OP == 'exists' then
  return { 'ok' }

elseif OP == 'join' then
  -- token, name, name json, skeleton, folded, session, identified, existing,
  -- passphrase checked for (epoch), most members, capitals
  local token, name, skeleton, folded, session = arg(1), arg(2), arg(4), arg(5), arg(6)
  local capitals = arg(11)
  local identified, existing = arg(7) == '1', arg(8)
  -- Each join brings a fresh random token: finding it a member, this is the
  -- same join sent again after its connection closed (its reply was lost).
  if redis.call('HEXISTS', K_MEMBERS, token) == 1 then return { 'ok', token, 1 } end
  if existing ~= '' and redis.call('HEXISTS', K_MEMBERS, existing) == 1 then
    return { 'ok', existing, 0 }
  end
  if identified then
    local same = redis.call('HGET', K_NAMES, 'n|' .. name)
    if same then return { 'ok', same, 0 } end
  end
  if (existing ~= '' and redis.call('SISMEMBER', K_REMOVED, 't|' .. existing) == 1)
    or redis.call('SISMEMBER', K_REMOVED, 's|' .. session) == 1
    or (identified and redis.call('SISMEMBER', K_REMOVED, 'n|' .. name) == 1) then
    return { 'Removed' }
  end
  local meta = redis.call('HMGET', K_META, 'locked', 'pass', 'epoch')
  if meta[1] == '1' then return { 'Locked' } end
  if meta[2] and arg(9) ~= meta[3] then return { 'WrongPassphrase' } end
  if redis.call('HEXISTS', K_NAMES, 'k|' .. skeleton) == 1
    or redis.call('HEXISTS', K_NAMES, 'f|' .. folded) == 1
    or redis.call('HEXISTS', K_NAMES, 'u|' .. capitals) == 1 then
    return { 'NameTaken' }
  end
  if redis.call('SISMEMBER', K_REMOVED, 'k|' .. skeleton) == 1
    or redis.call('SISMEMBER', K_REMOVED, 'f|' .. folded) == 1
    or redis.call('SISMEMBER', K_REMOVED, 'u|' .. capitals) == 1 then
    return { 'NameRemoved' }
  end
  if redis.call('HLEN', K_MEMBERS) >= tonumber(arg(10)) then return { 'RoomFull' } end
  admit(token, name, arg(3), skeleton, folded, capitals, session)
  keep()
  return { 'ok', token, 1 }

elseif OP == 'removed' then
  -- token (or empty), session
  local token = arg(1)
  local removed = (token ~= '' and redis.call('SISMEMBER', K_REMOVED, 't|' .. token) == 1)
    or redis.call('SISMEMBER', K_REMOVED, 's|' .. arg(2)) == 1
  return { 'ok', removed and 1 or 0 }

elseif OP == 'passphrase' then
  local meta = redis.call('HMGET', K_META, 'epoch', 'pass')
  return { 'ok', meta[1], meta[2] or '' }

elseif OP == 'check' then
  local refused = refusal_for(arg(1))
  if refused then return { refused } end
  return { 'ok' }

elseif OP == 'lock' then
  -- token, '1' to lock or '0' to unlock
  local token = arg(1)
  local refused = refusal_for_owner(token)
  if refused then return { refused } end
  if redis.call('HGET', K_META, 'locked') ~= arg(2) then
    redis.call('HSET', K_META, 'locked', arg(2))
    publish(arg(2) == '1' and 'lock' or 'unlock', get_member(token).nj, nil, nil)
  end
  return { 'ok' }

elseif OP == 'remove' then
  -- token, then the skeleton, folded and capitals keys of the name to remove
  local token = arg(1)
  local refused = refusal_for_owner(token)
  if refused then return { refused } end
  local target = redis.call('HGET', K_NAMES, 'k|' .. arg(2))
    or redis.call('HGET', K_NAMES, 'f|' .. arg(3))
    or redis.call('HGET', K_NAMES, 'u|' .. arg(4))
  if not target then return { 'NoSuchMember' } end
  if target == token then return { 'CannotRemoveOwner' } end
  remove_member(target, 'remove')
  -- The first removal makes the `removed` set, which has no expiry of its
  -- own: it must lapse with the rest of the room, or a later room drawing
  -- the same code would inherit the bans.
  keep()
  return { 'ok' }

elseif OP == 'view' then
  -- token, '1' with the history (the room page, which counts as activity)
  local token = arg(1)
  local refused = refusal_for(token)
  if refused then return { refused } end
  if arg(2) == '1' then touch(token) end
  return view(token, arg(2) == '1')

elseif OP == 'publish' then
  -- token, text as JSON, "token|key" or empty
  local token, field = arg(1), arg(3)
  local refused = refusal_for(token)
  if refused then return { refused } end
  if field ~= '' then
    local id = redis.call('HGET', K_IDEM, field)
    if id then return { 'ok', tonumber(id), 0 } end
  end
  local id = publish('message', get_member(token).nj, arg(2), nil)
  if field ~= '' then
    local fresh = redis.call('EXISTS', K_IDEMQ) == 0
    redis.call('HSET', K_IDEM, field, id)
    redis.call('RPUSH', K_IDEMQ, id .. '|' .. field)
    forget_keys()
    if fresh then keep() end
  end
  touch(token)
  return { 'ok', id, 1 }

elseif OP == 'sent' then
  -- "token|key"
  local id = redis.call('HGET', K_IDEM, arg(1))
  return { 'ok', id and tonumber(id) or -1 }

elseif OP == 'leave' then
  local token = arg(1)
  local refused = refusal_for(token)
  if refused then return { refused } end
  remove_member(token, 'leave')
  return { 'ok' }

elseif OP == 'open' then
  -- token, instance, replay after this id (or empty for none)
  local token = arg(1)
  local refused = refusal_for(token)
  if refused then return { refused } end
  hold_open(token, arg(2))
  keep()
  local meta = redis.call('HMGET', K_META, 'epoch', 'seq')
  local events = {}
  if arg(3) ~= '' then events = entries_after(arg(3)) end
  return { 'ok', meta[1], tonumber(meta[2]), oldest_id(), events }

elseif OP == 'close' then
  -- token, instance: the instance's last stream of the member closed
  local token, hold = arg(1), arg(1) .. '|' .. arg(2)
  local state = redis.call('HGET', K_HOLDS, hold)
  if not state then return { 'ok' } end
  if GRACE <= 0 then
    drop_lease(hold)
    leave_if_unheld(token)
    if not live() then
      close_room()
      return { 'ok' }
    end
  else
    local member = get_member(token)
    if member and state == '1' then
      member.c = member.c - 1
      put_member(token, member)
    end
    redis.call('HSET', K_HOLDS, hold, '0')
    redis.call('ZADD', K_PRESENCE, NOW + GRACE, 's|' .. hold)
  end
  keep()
  return { 'ok' }

elseif OP == 'refresh' then
  -- instance, then the tokens whose streams it holds open; answers with those
  -- that are members no more
  local instance, gone = arg(1), {}
  local n = 2
  while arg(n) do
    local token = arg(n)
    if redis.call('HEXISTS', K_MEMBERS, token) == 0 then
      gone[#gone + 1] = token
    elseif redis.call('HGET', K_HOLDS, token .. '|' .. instance) == '1' then
      -- The usual case, and a big room has thousands: only the deadline moves.
      redis.call('ZADD', K_PRESENCE, NOW + LEASE, 's|' .. token .. '|' .. instance)
    else
      hold_open(token, instance)
    end
    n = n + 1
  end
  keep()
  return { 'ok', gone }
end

return { 'NoSuchOperation' }
