"""How a record is one Redis string: a 12-byte version, a tag, a payload.

::

    <12 bytes: the version, big-endian> <1 tag byte> <payload>

    tag  b  bytes, the payload as is
         s  str, the payload is its UTF-8 (surrogates allowed, so every str round-trips)
         c  any other value, the payload is ``codec.encode(value)``
         t  tombstone (a deleted key), no payload
         B, S, C  as b, s, c for a value written with a ttl (``records.Expiring``):
            8 bytes of its expiry (ms, big-endian) come before the payload

Big-endian makes byte order equal version order.  A ``str`` or ``bytes``
subclass (an ``Enum`` mixin, a class with its own ``__str__``) is stored as
its characters or bytes and read back as plain ``str``/``bytes``.  Bytes that
do not parse as a record (too short, an unknown tag, a payload the codec
cannot decode) are *unreadable*: ``decode_many`` gives None for them and
counts them (a store's read then raises UnreadableRecordError); nothing is
ever unpickled.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import repeat
from operator import getitem
from typing import Any, Protocol

from cvstore._records import decode_plain
from cvstore.core.records import TOMBSTONE, Expiring, Record

__all__ = (
    "HEAD",
    "Codec",
    "JSONCodec",
    "RecordCodec",
    "check_version",
)

HEAD = 12  # bytes of the version, before the tag
VERSION_LIMIT = 1 << (8 * HEAD)
TAG_BYTES, TAG_STR, TAG_CODEC, TAG_TOMBSTONE = b"b", b"s", b"c", b"t"
ORD_BYTES, ORD_STR, ORD_CODEC, ORD_TOMBSTONE = ord("b"), ord("s"), ord("c"), ord("t")
EXPIRING = frozenset(b"BSC")  # the tags of values written with a ttl
EXPIRY = 8  # bytes of the expiry after such a tag
TAGS = frozenset((ORD_BYTES, ORD_STR, ORD_CODEC, ORD_TOMBSTONE)) | EXPIRING
_VERSIONS = slice(0, HEAD)  # a record's version bytes
_PAYLOAD = slice(HEAD + 1, None)  # a record's payload
_new_record = tuple.__new__  # Record(v, x) without NamedTuple's Python-level __new__


class Codec(Protocol):
    """Turns values other than str and bytes into bytes and back."""

    def encode(self, value: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


class JSONCodec:
    """Values as JSON text (UTF-8): dicts, lists, numbers, bools, None.

    Round trips change what JSON cannot tell apart: tuples come back as lists,
    dict keys as str.  Pass ``RedisStore(..., codec=JSONCodec())``.
    """

    def encode(self, value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def decode(self, data: bytes) -> Any:
        return json.loads(data)

    def __repr__(self) -> str:
        return "JSONCodec()"


def check_version(version: Any) -> None:
    if isinstance(version, bool) or not isinstance(version, int):
        raise TypeError(f"record version must be int, got {type(version).__name__}")
    if not 0 <= version < VERSION_LIMIT:
        raise ValueError(f"record version must be in [0, 2**96), got {version!r}")


class Unreadable(Exception):
    """Bytes under the prefix that are not a record this codec can read."""


class RecordCodec:
    """Encodes records to bytes and back for one store (with its optional value codec)."""

    def __init__(self, codec: Codec | None) -> None:
        self.codec = codec

    def head(self, version: int, tag: int) -> bytes:
        """The 13 bytes before the payload of a record of `version` with `tag`."""
        return ((version << 8) | tag).to_bytes(HEAD + 1, "big")

    def encode(self, record: Any) -> bytes:
        version, value = record
        if type(version) is not int or not 0 <= version < VERSION_LIMIT:
            check_version(version)
        cls = type(value)
        if cls is bytes:
            return ((version << 8) | ORD_BYTES).to_bytes(HEAD + 1, "big") + value
        if cls is str:
            return ((version << 8) | ORD_STR).to_bytes(HEAD + 1, "big") + value.encode(
                "utf-8", "surrogatepass"
            )
        head = version.to_bytes(HEAD, "big")
        if value is TOMBSTONE:
            return head + TAG_TOMBSTONE
        if cls is Expiring:
            inner = self.encode((version, value.value))
            if inner[HEAD] == ORD_TOMBSTONE:
                raise TypeError("a tombstone cannot expire")
            return (
                head
                + bytes((inner[HEAD] - 32,))  # the upper-case tag
                + int(value.expires).to_bytes(EXPIRY, "big")
                + inner[HEAD + 1 :]
            )
        if isinstance(value, bytes):  # a subclass: its bytes, not its __bytes__
            return head + TAG_BYTES + bytes(memoryview(value))
        if isinstance(value, str):  # a subclass: its characters, not its __str__
            return head + TAG_STR + str.encode(value, "utf-8", "surrogatepass")
        if self.codec is None:
            raise TypeError(
                f"value must be bytes or str, got {cls.__name__}; "
                "pass codec=JSONCodec() (or your own codec) to RedisStore to store other types"
            )
        payload = self.codec.encode(value)
        if type(payload) is not bytes:
            raise TypeError(
                f"codec.encode must return bytes, got {type(payload).__name__} from {self.codec!r}"
            )
        return head + TAG_CODEC + payload

    def encode_many(self, records: list[Any]) -> list[bytes]:
        encode = self.encode
        return [encode(record) for record in records]

    def decode(self, raw: bytes, where: bytes) -> Record:
        """The record in `raw`; Unreadable if it is not one (TypeError: a codec record, no codec)."""
        if len(raw) <= HEAD:
            raise Unreadable(f"malformed record in {where!r}: {raw[:40]!r}")
        tag = raw[HEAD]
        version = int.from_bytes(raw[:HEAD], "big")
        if tag in EXPIRING:
            if len(raw) < HEAD + 1 + EXPIRY:
                raise Unreadable(f"malformed record in {where!r}: {raw[:40]!r}")
            expires = int.from_bytes(raw[HEAD + 1 : HEAD + 1 + EXPIRY], "big")
            plain = raw[:HEAD] + bytes((tag + 32,)) + raw[HEAD + 1 + EXPIRY :]
            return _new_record(Record, (version, Expiring(self.decode(plain, where)[1], expires)))
        if tag == ORD_BYTES:
            return _new_record(Record, (version, raw[HEAD + 1 :]))
        if tag == ORD_STR:
            try:
                return _new_record(
                    Record, (version, raw[HEAD + 1 :].decode("utf-8", "surrogatepass"))
                )
            except UnicodeDecodeError:
                raise Unreadable(f"malformed str record in {where!r}: {raw[:40]!r}") from None
        if tag == ORD_TOMBSTONE:
            return _new_record(Record, (version, TOMBSTONE))
        if tag == ORD_CODEC:
            if self.codec is None:
                raise TypeError(
                    f"the record in {where!r} was written with a codec; "
                    "pass the same codec= to RedisStore to read it"
                )
            try:
                value = self.codec.decode(raw[HEAD + 1 :])
            except Exception as exc:  # the codec's own error: bad bytes, not a bug here
                raise Unreadable(f"the codec cannot decode the record in {where!r}: {exc}") from exc
            return _new_record(Record, (version, value))
        raise Unreadable(f"malformed record in {where!r}: {raw[:40]!r}")

    def decode_many(
        self, raws: list[Any], keys: list[bytes], prefix: bytes
    ) -> tuple[list[Record | None], int]:
        """(records, how many were unreadable) of MGET replies; None where there is none."""
        if type(raws) is list:
            # bytes, str and tombstone records (the usual batch): decoded in C
            plain = decode_plain(raws, TOMBSTONE)
            if plain is not None:
                return plain, 0
        if None not in raws and raws and min(map(len, raws)) > HEAD:
            # every key has a record: decode by column with C-level map when
            # the records are all bytes (or all str) values
            tags = set(map(getitem, raws, repeat(HEAD)))
            if len(tags) == 1 and (tag := tags.pop()) in (ORD_BYTES, ORD_STR):
                # (getitem of a slice is typed as a Sequence; of bytes it is bytes)
                versions = map(int.from_bytes, map(getitem, raws, repeat(_VERSIONS)), repeat("big"))  # type: ignore[arg-type]
                payloads: Iterator[bytes] = map(getitem, raws, repeat(_PAYLOAD))
                if tag == ORD_STR:
                    try:
                        values = list(
                            map(bytes.decode, payloads, repeat("utf-8"), repeat("surrogatepass"))
                        )
                    except UnicodeDecodeError:
                        pass  # one bad record: the loop below finds it
                    else:
                        return list(
                            map(_new_record, repeat(Record, len(raws)), zip(versions, values))
                        ), 0
                else:
                    return list(
                        map(_new_record, repeat(Record, len(raws)), zip(versions, payloads))
                    ), 0
        # inline fast path of decode for bytes, str and tombstones
        from_bytes, new = int.from_bytes, _new_record
        out: list[Record | None] = []
        add = out.append
        bad = 0
        for raw, key in zip(raws, keys):
            if raw is None:
                add(None)
                continue
            tag = raw[HEAD] if len(raw) > HEAD else -1
            if tag == ORD_BYTES:
                add(new(Record, (from_bytes(raw[:HEAD], "big"), raw[HEAD + 1 :])))
            elif tag == ORD_STR:
                try:
                    value = raw[HEAD + 1 :].decode("utf-8", "surrogatepass")
                except UnicodeDecodeError:
                    add(None)
                    bad += 1
                    continue
                add(new(Record, (from_bytes(raw[:HEAD], "big"), value)))
            elif tag == ORD_TOMBSTONE:
                add(new(Record, (from_bytes(raw[:HEAD], "big"), TOMBSTONE)))
            else:
                try:
                    add(self.decode(raw, prefix + key))
                except Unreadable:
                    add(None)
                    bad += 1
        return out, bad
