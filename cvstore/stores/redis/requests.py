"""What a Redis store says to its server and what the replies mean, with no I/O.

Every store operation is a ``Request`` (the commands to send, and how to
read their replies into the operation's result) or, when it takes several
round trips (a SCAN), a generator of requests that is sent each request's
result and returns the operation's.  The sync ``RedisStore`` and the asyncio
``AsyncRedisStore`` send the same requests and read the same replies, so
both speak exactly the same protocol: one wire format, one script, one
codec, one prefix layout.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

from cvstore._records import all_bytes, plain_batch
from cvstore.core.records import Record
from cvstore.errors import FencedError, StoreError, UnreadableRecordError
from cvstore.stores.redis.codec import (
    EXPIRING,
    EXPIRY,
    HEAD,
    TAGS,
    VERSION_LIMIT,
    RecordCodec,
    Unreadable,
    check_version,
)
from cvstore.stores.redis.resp import Command
from cvstore.stores.redis.script import SCRIPT_BATCH, SCRIPT_SHA, spans
from cvstore.stores.redis.stats import StoreStats

# Redis refuses a longer string (proto-max-bulk-len, 512 MiB by default); a
# cluster refuses such values before any store is called (max_value_bytes).
MAX_RECORD_BYTES = 512 * 1024 * 1024
# Payload bytes per write script call (besides SCRIPT_BATCH records): a batch
# of large values goes in several calls, so no one call makes a server read
# and copy more than this before it answers (that wait is bounded by the
# store's timeout, and a server drops a client whose request passes 1 GiB,
# client-query-buffer-limit).  A record larger than this goes alone.
CALL_BYTES = 16 * 1024 * 1024


__all__ = ("Request", "Requests", "Steps", "as_bytes", "command", "glob_escape")

T = TypeVar("T")
Steps = Generator["Request[Any]", Any, T]  # sent each request's result, returns the operation's

SCAN_COUNT = 1000  # SCAN / HSCAN COUNT hint
MGET_BATCH = 10_000  # keys per MGET
# The keys a store keeps beside its records and hints: <prefix>m:records, m:hints, m:epoch, m:layout
_META_SUFFIXES = (b"m:records", b"m:hints", b"m:epoch", b"m:layout")
_SHA = SCRIPT_SHA.encode()


class Request(NamedTuple, Generic[T]):
    """Commands for one round trip, and how their replies become the result."""

    op: str  # the operation's name, for errors and stats
    commands: list[Command]
    parse: Callable[[list[Any]], T]


def command(*args: bytes) -> Command:
    """A command of short arguments."""
    cmd = Command()
    for arg in args:
        cmd.arg(arg)
    return cmd


def as_bytes(key: Any, what: str = "key") -> bytes:
    if type(key) is bytes:
        return key
    if isinstance(key, bytes):
        return bytes(memoryview(key))
    if isinstance(key, str):
        return str.encode(key)
    raise TypeError(f"{what} must be bytes or str, got {type(key).__name__}")


def glob_escape(text: bytes) -> bytes:
    """`text` as a literal in a SCAN MATCH pattern."""
    out = bytearray()
    for byte in text:
        if byte in b"*?[]\\":
            out += b"\\"
        out.append(byte)
    return bytes(out)


def _count_of(raw: Any) -> int | None:
    """A counter's value, None if it holds something other than an integer (0 when absent)."""
    if raw is None:
        return 0
    try:
        return max(0, int(raw))
    except (TypeError, ValueError):
        return None


class Requests:
    """The requests of one store: its key names, its codec, its counters.

    `fenced(have, want)` and `refused(op, reason)` make the errors of a node
    holding another layout epoch and of a reply the store cannot accept.
    """

    def __init__(
        self,
        prefix: bytes,
        codec: RecordCodec,
        stats: StoreStats,
        fenced: Callable[[int, int], FencedError],
        refused: Callable[[str, str], StoreError],
    ) -> None:
        self.codec = codec
        self.stats = stats
        self.fenced = fenced
        self.refused = refused
        self.prefix = prefix
        self.records = prefix + b"r:"
        self.hints = prefix + b"h:"
        self.record_count = prefix + b"m:records"
        self.hint_count = prefix + b"m:hints"
        self.epoch_key = prefix + b"m:epoch"
        self.layout_key = prefix + b"m:layout"
        self.records_pattern = glob_escape(self.records) + b"*"
        self.hints_pattern = glob_escape(self.hints) + b"*"

    # ----------------------------------------------------------- helpers

    def check_epoch(self, held: Any, client_epoch: int) -> None:
        """Raise FencedError unless a node's epoch (as read) is the client's."""
        try:
            node_epoch = int(held) if held is not None and not isinstance(held, Exception) else 0
        except ValueError:
            node_epoch = 0
        if node_epoch != client_epoch:
            raise self.fenced(node_epoch, client_epoch)

    def scripts(
        self,
        op: str,
        name: bytes,
        calls: list[tuple[list[bytes], list[bytes]]],
        parse: Callable[[list[Any]], T],
        epoch: int = 0,
    ) -> Request[T]:
        """Script operation `name` once per (keys, arguments) call, in one round trip.

        Each call's keys follow the node's epoch key; its arguments follow the
        operation and the client's layout `epoch` (0: not fenced).
        """
        head = [name, b"%d" % epoch]
        commands = []
        for keys, argv in calls:
            cmd = Command()
            for arg in (b"EVALSHA", _SHA, b"%d" % (len(keys) + 1), self.epoch_key):
                cmd.arg(arg)
            cmd.column(keys)
            cmd.column([*head, *argv])
            commands.append(cmd)
        return Request(op, commands, parse)

    # ----------------------------------------------------------- records

    def unreadable(
        self, keys: Sequence[bytes], raws: list[Any], records: list[Record | None]
    ) -> UnreadableRecordError:
        """The error of a read that met records that do not parse (not a missing record:
        the cluster reads another replica for those keys)."""
        positions = [
            i for i, (raw, rec) in enumerate(zip(raws, records)) if rec is None and raw is not None
        ]
        bad = [keys[i] for i in positions]
        first = raws[positions[0]]
        reason = (
            f"{len(bad)} record(s) do not parse, the first "
            f"{self.records + bad[0]!r:.80}: {first[:40]!r}"
        )
        error = self.refused("get" if len(keys) == 1 else "get_many", reason)
        return UnreadableRecordError(
            str(error), node=error.node, keys=bad, positions=positions, records=records
        )

    def get_many(self, keys: Sequence[bytes], epoch: int = 0) -> Request[list[Record | None]]:
        """MGETs of `keys`; with a layout `epoch`, each MGET reads the node's epoch first.

        An MGET is atomic, so the epoch it reads is the epoch of the records
        it reads: when every MGET's epoch is the client's, the records are
        those of the client's layout; otherwise FencedError.  (The epoch key
        is a plain string: an MGET reads it as it reads records.  A MULTI/EXEC
        transaction would do as well, but a full server refuses the reads
        queued in one.)
        """
        if set(map(type, keys)) != {bytes}:
            keys = [as_bytes(k) for k in keys]
        commands = []
        if len(keys) == 1:  # one key: its request packed at once
            key = self.records + keys[0]
            commands.append(Command.of((b"MGET", self.epoch_key, key) if epoch else (b"MGET", key)))
        for i in range(0, len(keys) if len(keys) > 1 else 0, MGET_BATCH):
            cmd = Command()
            cmd.arg(b"MGET")
            if epoch:
                cmd.arg(self.epoch_key)
            cmd.column(keys[i : i + MGET_BATCH], prefix=self.records)
            commands.append(cmd)

        def parse(replies: list[Any]) -> list[Record | None]:
            if epoch:
                for part in replies:
                    self.check_epoch(part[0], epoch)
                replies = [part[1:] for part in replies]
            raws = replies[0] if len(replies) == 1 else [raw for part in replies for raw in part]
            records, bad = self.codec.decode_many(raws, list(keys), self.records)
            self.stats.moved(len(raws) - raws.count(None) - bad, 0)
            self.stats.bad_data(bad)
            if bad:
                raise self.unreadable(keys, raws, records)
            return records

        return Request("get" if len(keys) == 1 else "get_many", commands, parse)

    def write_many(
        self, keys: Sequence[bytes], records: Sequence[Record], epoch: int = 0
    ) -> Request[list[int | None]]:
        """The write script calls; the result says, per record, None (applied) or what refused it."""
        if len(keys) != len(records):
            raise ValueError(
                f"keys and records must have the same length, got {len(keys)} and {len(records)}"
            )
        op = "put" if len(keys) == 1 else "put_many"
        if type(keys) is not list or not all_bytes(keys):
            keys = [as_bytes(k) for k in keys]
        # A cluster batch writes one version to every key, and its values are
        # usually all bytes or all str: then the records are sent as the
        # values behind one 13-byte head, and the script reads the version once.
        plain = plain_batch(records)
        if plain is not None:
            version, tag, values, longest, total = plain
            if type(version) is int and 0 <= version < VERSION_LIMIT:
                head = self.codec.head(version, tag)
                return self._put(keys, values, head, head[:HEAD], op, epoch, (longest, total))
        return self._put(keys, self.codec.encode_many(list(records)), b"", b"", op, epoch)

    def _put(
        self,
        keys: Sequence[bytes],
        payloads: list[bytes],
        head: bytes,
        version: bytes,
        op: str,
        epoch: int,
        sizes: tuple[int, int] | None = None,
    ) -> Request[list[int | None]]:
        """Script calls that store ``head + payloads[i]`` as the records of ``keys[i]``.

        `version` is the 12-byte version every record carries, or b"" when the
        records' own versions differ; `sizes` the payloads' longest and total
        lengths, if known.
        """
        if sizes is None:
            lengths = list(map(len, payloads))
            sizes = (max(lengths, default=0), sum(lengths))
        longest, total = sizes
        if payloads and longest + len(head) > MAX_RECORD_BYTES:
            size = longest + len(head)
            raise ValueError(
                f"a record must be at most {MAX_RECORD_BYTES:,} bytes (Redis's limit for one "
                f"string, proto-max-bulk-len), got {size:,} bytes; nothing was sent"
            )
        parts = spans(keys, SCRIPT_BATCH)
        if len(payloads) > 1 and total + len(head) * len(payloads) > CALL_BYTES:
            parts = _by_bytes(parts, payloads, len(head), CALL_BYTES)
        commands = []
        fence = b"%d" % epoch
        if len(keys) == 1:  # one key: its script call packed at once (the arguments below)
            args = (b"EVALSHA", _SHA, b"3", self.epoch_key, self.record_count)
            put = (self.records + keys[0], b"put", fence, version, head + payloads[0])
            commands.append(Command.of(args + put))
        for a, b in parts if len(keys) > 1 else ():
            cmd = Command()
            for arg in (b"EVALSHA", _SHA, b"%d" % (b - a + 2), self.epoch_key):
                cmd.arg(arg)
            cmd.arg(self.record_count)
            cmd.column(keys[a:b], prefix=self.records)
            cmd.arg(b"put")
            cmd.arg(fence)
            cmd.arg(version)
            cmd.column(payloads[a:b], prefix=head)
            commands.append(cmd)

        def parse(replies: list[Any]) -> list[int | None]:
            out: list[int | None] = [None] * len(keys)
            bad = 0
            foreign = []
            for (start, _), reply in zip(parts, replies):
                bad += reply[0]
                for i in range(1, len(reply), 2):
                    held = reply[i + 1]
                    if not held:  # a key of another type: not overwritten
                        foreign.append(keys[start + reply[i] - 1])
                    else:
                        out[start + reply[i] - 1] = int.from_bytes(held, "big")
            self.stats.moved(0, len(keys) - len(foreign))
            self.stats.bad_data(bad + len(foreign))
            if foreign:
                raise self.refused(
                    op,
                    f"{len(foreign)} key(s) under the prefix hold values that are not cvstore "
                    f"records (e.g. {self.records + foreign[0]!r}); they were not overwritten",
                )
            return out

        return Request(op, commands, parse)

    def delete_many(self, keys: Iterable[bytes], epoch: int = 0) -> Request[int]:
        """Remove the records of `keys` (keys of other types under the prefix stay)."""
        rkeys = [self.records + as_bytes(k) for k in keys]
        calls: list[tuple[list[bytes], list[bytes]]] = [
            ([self.record_count, *rkeys[i : i + SCRIPT_BATCH]], [])
            for i in range(0, len(rkeys), SCRIPT_BATCH)
        ]
        return self.scripts("delete_many", b"del", calls, sum, epoch)

    def purge_many(self, items: Iterable[tuple[bytes, int]], epoch: int = 0) -> Request[int]:
        """Delete each record whose version is still exactly the given one (atomic)."""
        rkeys, versions = [], []
        for key, version in items:
            if type(version) is not int or not 0 <= version < VERSION_LIMIT:
                check_version(version)
            rkeys.append(self.records + as_bytes(key))
            versions.append(version.to_bytes(HEAD, "big"))
        calls = [
            ([self.record_count, *rkeys[i : i + SCRIPT_BATCH]], versions[i : i + SCRIPT_BATCH])
            for i in range(0, len(rkeys), SCRIPT_BATCH)
        ]
        return self.scripts("purge_many", b"purge", calls, sum, epoch)

    def _scan(self, op: str, pattern: bytes, kind: bytes | None = None) -> Steps[list[bytes]]:
        """Every key matching `pattern` (of type `kind` if given), page by page, by SCAN."""
        cursor = b"0"
        extra = (b"TYPE", kind) if kind is not None else ()
        keys: list[bytes] = []
        while True:
            cursor, page = yield Request(
                op,
                [command(b"SCAN", cursor, b"MATCH", pattern, b"COUNT", b"%d" % SCAN_COUNT, *extra)],
                _one,
            )
            keys.extend(page)
            if cursor in (b"0", 0):
                return keys

    def scan(self) -> Steps[list[tuple[bytes, Record]]]:
        """Every (key, record) under the prefix, by SCAN (never KEYS).

        As Redis's SCAN promises: a key present for the whole scan is listed;
        one written or deleted meanwhile may or may not be; a key may be
        listed twice if the server resizes its table during the scan.  Keys
        of other types are not listed; records that do not parse are skipped
        and counted.
        """
        rkeys = list(
            dict.fromkeys((yield from self._scan("scan", self.records_pattern, b"string")))
        )
        strip = len(self.records)
        out: list[tuple[bytes, Record]] = []
        for i in range(0, len(rkeys), SCAN_COUNT):
            page = rkeys[i : i + SCAN_COUNT]
            cmd = Command()
            cmd.arg(b"MGET")
            cmd.column(page)
            raws = yield Request("scan", [cmd], _one)
            keys = [rkey[strip:] for rkey in page]
            records, bad = self.codec.decode_many(raws, keys, self.records)
            self.stats.bad_data(bad)
            self.stats.moved(len(raws) - raws.count(None) - bad, 0)
            out.extend((k, r) for k, r in zip(keys, records) if r is not None)
        return out

    def scan_versions(
        self, epoch: int = 0
    ) -> Steps[tuple[list[bytes], list[int], list[bool], list[int]]]:
        """Every key, its version, whether it is a tombstone and its expiry (0: none).

        The values stay on the server: SCAN lists the keys, then one script
        call per 250 keys returns the first 21 bytes of each record.  Keys of
        other types and records that do not parse are skipped and counted.
        """
        rkeys = list(dict.fromkeys((yield from self._scan("scan_versions", self.records_pattern))))
        strip = len(self.records)
        keys: list[bytes] = []
        versions: list[int] = []
        tombs: list[bool] = []
        expires: list[int] = []
        from_bytes = int.from_bytes
        bad = 0
        for i in range(0, len(rkeys), SCAN_COUNT):
            page = rkeys[i : i + SCAN_COUNT]
            calls: list[tuple[list[bytes], list[bytes]]] = [
                ([self.record_count, *page[j : j + SCRIPT_BATCH]], [])
                for j in range(0, len(page), SCRIPT_BATCH)
            ]
            heads = yield self.scripts(
                "scan_versions", b"heads", calls, lambda parts: [h for p in parts for h in p], epoch
            )
            for rkey, head in zip(page, heads):
                if head is None:  # deleted since SCAN saw it
                    continue
                if head == 0 or len(head) <= HEAD or head[HEAD] not in TAGS:
                    bad += 1  # another type, or not a record
                    continue
                tag = head[HEAD]
                if tag in EXPIRING and len(head) < HEAD + 1 + EXPIRY:
                    bad += 1
                    continue
                keys.append(rkey[strip:])
                versions.append(from_bytes(head[:HEAD], "big"))
                tombs.append(tag == ord("t"))
                expires.append(
                    from_bytes(head[HEAD + 1 : HEAD + 1 + EXPIRY], "big") if tag in EXPIRING else 0
                )
        self.stats.bad_data(bad)
        return keys, versions, tombs, expires

    def keys(self) -> Steps[list[bytes]]:
        """Every key with a record (tombstones included), by SCAN without reading values."""
        strip = len(self.records)
        found = yield from self._scan("keys", self.records_pattern, b"string")
        return list(dict.fromkeys(rkey[strip:] for rkey in found))

    def count(self) -> Steps[int]:
        """How many records (tombstones included); recomputed when the counter does not parse."""
        raw = yield Request("count", [command(b"GET", self.record_count)], _one)
        parsed = _count_of(raw)
        if parsed is not None:
            return parsed
        found = yield from self._scan("count", self.records_pattern, b"string")
        total = len(set(found))
        yield self._set_count(self.record_count, raw, total)
        return total

    def _set_count(self, counter: bytes, seen: Any, total: int) -> Request[Any]:
        """Replace a counter that did not parse, unless it changed since it was read."""
        self.stats.bad_data(1)
        expected = seen if isinstance(seen, bytes) else b""
        return self.scripts("count", b"setcount", [([counter], [expected, b"%d" % total])], _one)

    # ------------------------------------------------------------- hints

    def hint_key(self, owner: str) -> bytes:
        if not isinstance(owner, str) or not owner:
            raise TypeError(f"owner must be a non-empty str, got {owner!r}")
        return self.hints + owner.encode("utf-8")

    def put_hints(
        self, owner: str, items: Iterable[tuple[bytes, Record]], epoch: int = 0
    ) -> Request[None]:
        """Keep records for node `owner`; a hint replaces the one held for its key only if newer."""
        hkey = self.hint_key(owner)
        fields, records = [], []
        encode = self.codec.encode
        for key, record in items:
            fields.append(as_bytes(key))
            records.append(encode(record))
        calls = [
            ([self.hint_count, hkey], [b"", *records[a:b], *fields[a:b]])
            for a, b in spans(fields, SCRIPT_BATCH)
        ]
        return self.scripts("put_hints", b"hput", calls, _none, epoch)

    def read_hints(self) -> Steps[list[tuple[str, bytes, Record]]]:
        """Every hint held: (owner, key, record); hints that do not parse are skipped and counted."""
        strip = len(self.hints)
        out: list[tuple[str, bytes, Record]] = []
        for hkey in dict.fromkeys(
            (yield from self._scan("read_hints", self.hints_pattern, b"hash"))
        ):
            try:
                owner = hkey[strip:].decode("utf-8")
            except UnicodeDecodeError:
                self.stats.bad_data(1)
                continue
            cursor = b"0"
            while True:
                cursor, flat = yield Request(
                    "read_hints",
                    [command(b"HSCAN", hkey, cursor, b"COUNT", b"%d" % SCAN_COUNT)],
                    _one,
                )
                for key, raw in zip(flat[::2], flat[1::2]):
                    try:
                        record = self.codec.decode(raw, hkey + b" " + key)
                    except (Unreadable, TypeError):
                        self.stats.bad_data(1)
                        continue
                    out.append((owner, key, record))
                if cursor in (b"0", 0):
                    break
        return out

    def delete_hints(self, owner: str, keys: Iterable[bytes], epoch: int = 0) -> Request[None]:
        hkey = self.hint_key(owner)
        fields = [as_bytes(k) for k in keys]
        calls = [
            ([self.hint_count, hkey], fields[i : i + SCRIPT_BATCH])
            for i in range(0, len(fields), SCRIPT_BATCH)
        ]
        return self.scripts("delete_hints", b"hdel", calls, _none, epoch)

    def delete_hints_if(
        self, owner: str, items: Iterable[tuple[bytes, int]], epoch: int = 0
    ) -> Request[int]:
        """Drop each hint for `owner` whose record is still exactly the version given (atomic).

        Replies how many of the keys hold a hint of another version (spared)."""
        hkey = self.hint_key(owner)
        fields, versions = [], []
        for key, version in items:
            if type(version) is not int or not 0 <= version < VERSION_LIMIT:
                check_version(version)
            fields.append(as_bytes(key))
            versions.append(version.to_bytes(HEAD, "big"))
        calls = [
            ([self.hint_count, hkey], [*fields[a:b], *versions[a:b]])
            for a, b in spans(fields, SCRIPT_BATCH)
        ]
        return self.scripts("delete_hints", b"hdelif", calls, sum, epoch)

    def count_hints(self) -> Steps[int]:
        """How many hints are held; O(1), recomputed when the counter does not parse."""
        raw = yield Request("count_hints", [command(b"GET", self.hint_count)], _one)
        parsed = _count_of(raw)
        if parsed is not None:
            return parsed
        hkeys = list(
            dict.fromkeys((yield from self._scan("count_hints", self.hints_pattern, b"hash")))
        )
        total = 0
        if hkeys:
            total = yield Request("count_hints", [command(b"HLEN", k) for k in hkeys], sum)
        yield self._set_count(self.hint_count, raw, total)
        return total

    # ------------------------------------------------------------ layout

    def read_layout(self) -> Request[tuple[int, bytes | None]]:
        def parse(replies: list[Any]) -> tuple[int, bytes | None]:
            held, data = replies[0]
            return _count_of(held) or 0, data

        return Request("read_layout", [command(b"MGET", self.epoch_key, self.layout_key)], parse)

    def swap_layout(
        self, expected: int, epoch: int, data: bytes
    ) -> Request[tuple[int, bytes | None]]:
        calls = [([self.layout_key], [b"%d" % expected, b"%d" % epoch, data])]

        def parse(replies: list[Any]) -> tuple[int, bytes | None]:
            held, layout = replies[0]
            return int(held), layout

        return self.scripts("swap_layout", b"layout", calls, parse)

    # --------------------------------------------------------- lifecycle

    def clear(self, prefix: bytes) -> Steps[int]:
        """Delete this store's keys under `prefix` (records, hints, counters, layout); how many.

        Only keys of those shapes go.  Another store's keys stay even where its
        prefix lies inside this one: ``cvstore:node1:``'s keys do not have this
        layout under ``cvstore:``, and a store nested in the records or hints
        space (prefix ``cvstore:r:``) is known by its counters or layout, whose
        values a record never has (a record starts with its binary version).
        """
        found = list(dict.fromkeys((yield from self._scan("clear", glob_escape(prefix) + b"*"))))
        own_meta = {self.record_count, self.hint_count, self.epoch_key, self.layout_key}
        found = [
            key for key in found if key in own_meta or key.startswith((self.records, self.hints))
        ]
        candidates = [key for key in found if key not in own_meta and key.endswith(_META_SUFFIXES)]
        nested: list[bytes] = []
        if candidates:
            values = yield Request("clear", [command(b"MGET", *candidates)], _one)
            for key, value in zip(candidates, values):
                if isinstance(value, bytes) and (value.isdigit() or value.startswith(b"{")):
                    nested.append(key[: key.rindex(b"m:")])
        if nested:  # spare the keys of the nested stores' shapes (a key of ours named
            # like one, e.g. record "r:x" when "<prefix>r:" is a store, is spared too)
            spared = tuple(n + part for n in nested for part in (b"r:", b"h:", b"m:"))
            found = [key for key in found if not key.startswith(spared)]
        removed = 0
        for i in range(0, len(found), SCAN_COUNT):
            removed += yield Request("clear", [command(b"DEL", *found[i : i + SCAN_COUNT])], _one)
        return removed

    def ping(self) -> Request[bool]:
        return Request("ping", [command(b"PING")], lambda replies: bool(replies[0]))


def _one(replies: list[Any]) -> Any:
    return replies[0]


def _none(replies: list[Any]) -> None:
    return None


def _by_bytes(
    parts: list[tuple[int, int]], payloads: list[bytes], head: int, limit: int
) -> list[tuple[int, int]]:
    """`parts` cut further so no run's records (`head` + payload bytes each) pass `limit`
    bytes; a record larger than that goes alone."""
    out = []
    for a, b in parts:
        start, size = a, 0
        for i in range(a, b):
            n = head + len(payloads[i])
            if size + n > limit and i > start:
                out.append((start, i))
                start, size = i, 0
            size += n
        out.append((start, b))
    return out
