"""The Lua script that does every write of a RedisStore, atomically on the server.

Versioned writes: ``put`` replaces a record only if the new version is
strictly newer than the stored one (a tombstone is a record like any other)
and, for each record it refuses, returns the version that refused it (the
writer stamps again above it).  It reads the stored records of a call with
one ``MGET``, compares versions as two 48-bit integers (read from the stored
string in place by one ``struct.unpack`` call: exact in Lua's doubles, no
string made per record, and unlike Lua's string ``<``, which calls
``strcoll``, independent of the server's locale), checks every record before
writing any, then writes the newer ones with one ``MSET``.

Fencing: every call carries the client's layout epoch (0 for a client that
keeps its own membership) and is refused, before anything is read or
written, by a node that holds another epoch (``CVSTORE-FENCED have want``).
The ``layout`` operation installs a new layout with a compare-and-set on the
epoch.

Data that is not cvstore's is contained: a stored string that is not a
record (too short, an unknown tag) is replaced by a write and counted; a key
of another type under the prefix (a hash, a list) is never overwritten,
deleted or read as a record; a counter that does not hold an integer is left
for the client to recompute instead of failing the write.

A call names each key once (the client splits a batch at a repeated key).
A batch whose records share one version passes it once (ARGV[2]) and the
script unpacks it once rather than per record.  The client sends the script
by SHA (EVALSHA) and loads it once when the server does not know it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ("SCRIPT", "SCRIPT_BATCH", "SCRIPT_SHA", "spans")

# Records per script call (also bounds Lua's unpack()).  Measured with
# bench_redis_cluster.py, 3 servers: 1,000 a call gave put_many 63-66 % of raw
# MSET, 500 gave 74-78 %, 250 gave 83-97 %, 100 gave 85-91 %.  Smaller calls
# run more instructions (callgrind: +8 %) but keep each call's Lua strings in
# cache, and the server starts on the first call while the rest still arrive.
SCRIPT_BATCH = 250

SCRIPT = r"""
-- Every call: KEYS[1] the node's layout epoch key, KEYS[2] a counter (or the
-- layout), KEYS[3..] what the operation works on; ARGV[1] the operation,
-- ARGV[2] the client's layout epoch ('0': a client that keeps its own
-- membership, not fenced), ARGV[3..] the operation's arguments.
local op = ARGV[1]
local unpack_version = struct.unpack

-- the node's layout epoch (0 without one, or if the key holds something else)
local function node_epoch()
  local raw = redis.pcall('GET', KEYS[1])
  if type(raw) == 'string' then return tonumber(raw) or 0 end
  return 0
end

-- fencing: a client whose epoch is not the node's is refused before anything
-- is read or written; it loads the newer layout, or brings the node up to date
local want = tonumber(ARGV[2]) or 0
if want ~= 0 and op ~= 'layout' and op ~= 'setcount' then
  local have = node_epoch()
  if have ~= want then
    return redis.error_reply('CVSTORE-FENCED ' .. have .. ' ' .. want)
  end
end

-- add n to a counter, unless it holds something other than an integer (the
-- client recomputes it then); never fails the script
local function bump(key, n)
  if n == 0 then return end
  local c = redis.pcall('GET', key)
  if c == false or (type(c) == 'string' and string.match(c, '^%-?%d+$')) then
    redis.call('INCRBY', key, n)
  end
end

-- which of KEYS[first..] MGET read as false although they exist: keys of
-- another type (not cvstore's), as a set of positions 1..#olds
local function foreign_of(olds, first)
  local missing = {}
  for i = 1, #olds do
    if olds[i] == false then missing[#missing + 1] = KEYS[first + i - 1] end
  end
  local foreign = {}
  if #missing > 0 and redis.call('EXISTS', unpack(missing)) > 0 then
    for i = 1, #olds do
      if olds[i] == false and redis.call('EXISTS', KEYS[first + i - 1]) == 1 then
        foreign[i] = true
      end
    end
  end
  return foreign
end

-- which records ARGV[first..] replace olds[1..], the records stored under
-- names[1 + shift..].  Returns the reply ({unreadable records replaced, then
-- for each record refused: its position and the 12-byte version that refused
-- it, '' for a key that is not cvstore's}), the (name, record) pairs to
-- write and how many names are new.  `one` is the 12-byte version every
-- record carries (a cluster batch has one), or '' if each record's own
-- version must be read.
--
-- A stored string is a record if it has 12 version bytes and a known tag
-- (s, b, c, t; S, B, C with the 8 bytes of an expiry): string.byte reads the
-- tag (nil for a string too short to hold one), then one struct.unpack
-- reads the version in place as two 48-bit numbers (exact in Lua's doubles),
-- compared high halves first.  Against one string.byte call returning all
-- 13 bytes and Lua arithmetic joining them, this costs the server about 400
-- fewer instructions a record (bench/server_instructions.py).
local byte = string.byte
local function choose(names, shift, olds, first, one, foreign)
  local argv = ARGV
  local reply, writes, created, unreadable, nw = {0}, {}, 0, 0, 0
  local nh, nl
  if one ~= '' then nh, nl = unpack_version('>I6I6', one) end
  for i = 1, #olds do
    local new, old = argv[first + i - 1], olds[i]
    local ok = true
    if old == false then
      if foreign[i] then
        ok = false
        reply[#reply + 1] = i
        reply[#reply + 1] = ''
      else
        created = created + 1
      end
    else
      local tag = byte(old, 13)
      if tag == 98 or tag == 115 or tag == 116 or tag == 99
          or ((tag == 66 or tag == 83 or tag == 67) and #old >= 21) then
        if one == '' then nh, nl = unpack_version('>I6I6', new) end
        local oh, ol = unpack_version('>I6I6', old)
        if oh > nh then
          ok = false
        elseif oh == nh then
          ok = nl > ol
        end
        if not ok then
          reply[#reply + 1] = i
          reply[#reply + 1] = string.sub(old, 1, 12)
        end
      else  -- not a record (too short, an unknown tag): replaced, counted
        unreadable = unreadable + 1
        created = created + 1
      end
    end
    if ok then
      writes[nw + 1] = names[i + shift]
      writes[nw + 2] = new
      nw = nw + 2
    end
  end
  reply[1] = unreadable
  return reply, writes, created
end

if op == 'put' then
  -- KEYS[2] record counter, KEYS[3..] record keys; ARGV[3] the records'
  -- common version or '', ARGV[4..] records.  A record written with a ttl
  -- gets no server-side expiry: once expired it stays, as a tombstone does,
  -- until repair() purges it (see core/repair.py); MSET clears any expiry a
  -- key had from an older cvstore.
  local olds = redis.call('MGET', unpack(KEYS, 3))
  local reply, writes, created = choose(KEYS, 2, olds, 4, ARGV[3], foreign_of(olds, 3))
  if #writes > 0 then redis.call('MSET', unpack(writes)) end
  bump(KEYS[2], created)
  return reply
elseif op == 'hput' then
  -- KEYS[2] hint counter, KEYS[3] the owner's hash; ARGV[3] as for put,
  -- ARGV[4..n+3] records, then ARGV[n+4..2n+3] their fields (keys)
  local n = (#ARGV - 3) / 2
  local olds = redis.pcall('HMGET', KEYS[3], unpack(ARGV, n + 4))
  if olds.err then return redis.error_reply('cvstore: ' .. KEYS[3] .. ' is not a hint hash') end
  local reply, writes, created = choose(ARGV, n + 3, olds, 4, ARGV[3], {})
  if #writes > 0 then redis.call('HSET', KEYS[3], unpack(writes)) end
  bump(KEYS[2], created)
  return reply
elseif op == 'purge' then
  -- KEYS[2] record counter, KEYS[3..] record keys; ARGV[3..] their 12-byte
  -- versions: delete each record whose version is still exactly the one given
  local n = 0
  for i = 3, #KEYS do
    local old = redis.pcall('GET', KEYS[i])
    if type(old) == 'string' and string.sub(old, 1, 12) == ARGV[i] then
      n = n + redis.call('DEL', KEYS[i])
    end
  end
  bump(KEYS[2], -n)
  return n
elseif op == 'heads' then
  -- KEYS[3..] record keys: the first 21 bytes of each record (version, tag
  -- and, for a value with a ttl, its expiry), false where there is none, 0
  -- for a key of another type; the values stay on the server
  local out = {}
  for i = 3, #KEYS do
    local head = redis.pcall('GETRANGE', KEYS[i], 0, 20)
    if type(head) ~= 'string' then out[i - 2] = 0
    elseif head == '' then out[i - 2] = false
    else out[i - 2] = head end
  end
  return out
elseif op == 'del' then
  -- KEYS[2] record counter, KEYS[3..] record keys: delete the records
  -- (strings) among them; a key of another type is not cvstore's and stays
  local n = 0
  for i = 3, #KEYS do
    if redis.call('TYPE', KEYS[i])['ok'] == 'string' then
      n = n + redis.call('DEL', KEYS[i])
    end
  end
  bump(KEYS[2], -n)
  return n
elseif op == 'hdel' then
  -- KEYS[2] hint counter, KEYS[3] the owner's hash; ARGV[3..] fields
  local n = redis.pcall('HDEL', KEYS[3], unpack(ARGV, 3))
  if type(n) ~= 'number' then return 0 end
  bump(KEYS[2], -n)
  return n
elseif op == 'hdelif' then
  -- KEYS[2] hint counter, KEYS[3] the owner's hash; ARGV[3..n+2] fields, then
  -- ARGV[n+3..2n+2] their 12-byte versions: drop each hint still exactly that
  -- version (a newer hint written since it was read stays); replies how
  -- many of them hold a hint of another version
  local n = (#ARGV - 2) / 2
  local removed, spared = 0, 0
  for i = 3, n + 2 do
    local old = redis.pcall('HGET', KEYS[3], ARGV[i])
    if type(old) == 'string' then
      if string.sub(old, 1, 12) == ARGV[i + n] then
        removed = removed + redis.call('HDEL', KEYS[3], ARGV[i])
      else
        spared = spared + 1
      end
    end
  end
  bump(KEYS[2], -removed)
  return spared
elseif op == 'setcount' then
  -- KEYS[2] a counter; ARGV[3] what it held when the client read it, ARGV[4]
  -- the recomputed count: set only if nobody changed it meanwhile
  local c = redis.pcall('GET', KEYS[2])
  if c == ARGV[3] or (ARGV[3] == '' and c == false) then
    redis.call('SET', KEYS[2], ARGV[4])
    return 1
  end
  return 0
elseif op == 'layout' then
  -- KEYS[2] the layout; ARGV[3] the epoch the client expects the node to
  -- hold, ARGV[4] the new epoch, ARGV[5] the new layout: compare and set.
  -- Replies with the epoch and layout the node holds afterwards.
  local have = node_epoch()
  if have == tonumber(ARGV[3]) then
    redis.call('SET', KEYS[1], ARGV[4])
    redis.call('SET', KEYS[2], ARGV[5])
    return {tonumber(ARGV[4]), ARGV[5]}
  end
  local held = redis.pcall('GET', KEYS[2])
  if type(held) ~= 'string' then held = false end
  return {have, held}
end
return redis.error_reply('cvstore: unknown operation ' .. tostring(op))
"""
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()


def spans(names: Sequence[bytes], size: int) -> list[tuple[int, int]]:
    """Split `names` into runs of at most `size` in which no name repeats.

    The write script reads every stored record of a call before it writes, so
    one call must not see a key twice; a repeat starts the next call (the
    calls run in order, so the later record is compared with the earlier).
    """
    if len(set(names)) == len(names):  # the usual case: no repeats
        return [(i, min(i + size, len(names))) for i in range(0, len(names), size)]
    out = []
    start, seen = 0, set[bytes]()
    for i, name in enumerate(names):
        if name in seen or i - start == size:
            out.append((start, i))
            start, seen = i, set()
        seen.add(name)
    if start < len(names):
        out.append((start, len(names)))
    return out
