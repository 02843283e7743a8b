"""The write script's checks of what it reads: which stored strings are records, which are newer.

The script reads a stored string's version and tag with one ``string.byte``
call: a string is a record when it has 12 version bytes and a known tag
(``b s c t``; ``B S C`` with the 8 bytes of an expiry); any other string
under the prefix is replaced by a write and counted as unreadable.  A
record's version is compared with the new one as two 48-bit halves.
"""

from __future__ import annotations

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from cvstore.core.records import Record
from cvstore.stores.redis import RedisStore

TAGS = b"bsctBSC"
VERSION = (1_733_000_000_000 << 48) | (7 << 32) | 12345


def _is_record(stored: bytes) -> bool:
    if len(stored) < 13 or stored[12] not in TAGS:
        return False
    return stored[12] in b"bsct" or len(stored) >= 21


@settings(max_examples=60, deadline=None)
@given(
    stored=st.lists(
        st.tuples(
            st.integers(0, (1 << 96) - 1) | st.integers(0, 3) | st.just((5 << 48) | 9),
            st.sampled_from(list(TAGS) + [0, ord("a"), ord("T"), 255]),
            st.integers(0, 12),  # bytes after the tag
        )
        | st.binary(max_size=13),  # too short, or anything
        min_size=1,
        max_size=6,
    ),
    version=st.integers(0, (1 << 96) - 1) | st.integers(0, 3) | st.just((5 << 48) | 9),
    one=st.booleans(),
)
def test_stored_strings_are_compared_or_replaced_as_a_model_says(
    redis_server, stored, version, one
):
    store = RedisStore(redis_server.url(), prefix="hypothesis:script:")
    client = redis.Redis.from_url(redis_server.url())
    try:
        store.clear()
        keys = [b"k%d" % i for i in range(len(stored))]
        raws = []
        for key, item in zip(keys, stored):
            if isinstance(item, tuple):
                v, tag, extra = item
                raw = v.to_bytes(12, "big") + bytes([tag]) + b"\x07" * extra
            else:
                raw = item
            client.set(b"hypothesis:script:r:" + key, raw)
            raws.append(raw)
        # one version for the batch (read once by the script) or one per record
        versions = [version] * len(keys) if one else [version + (i % 2) for i in range(len(keys))]
        if not one:
            versions = [min(v, (1 << 96) - 1) for v in versions]
        before = store.stats()["unreadable"]
        refused = store.write_many(keys, [Record(v, b"new") for v in versions])
        expected = [
            int.from_bytes(raw[:12], "big")
            if _is_record(raw) and int.from_bytes(raw[:12], "big") >= v
            else None
            for raw, v in zip(raws, versions)
        ]
        assert refused == expected
        assert store.stats()["unreadable"] - before == sum(not _is_record(r) for r in raws)
        held = [client.get(b"hypothesis:script:r:" + k) for k in keys]
        for raw, v, was, now in zip(raws, versions, expected, held):
            assert now == (raw if was is not None else v.to_bytes(12, "big") + b"bnew")
    finally:
        store.clear()
        store.close()
        client.close()


def test_every_tag_and_length_at_the_edges(redis_store):
    # a stored version above the new one: a record refuses the write, anything else is replaced
    client = redis.Redis.from_url(redis_store.address)
    stored_version = (9 << 48) | 1
    cases = {}
    for tag in [*TAGS, ord("a"), ord("T"), 0, 255]:
        for extra in (0, 7, 8):  # an expiring tag needs 8 bytes after it
            cases[b"k-%d-%d" % (tag, extra)] = (
                stored_version.to_bytes(12, "big") + bytes([tag]) + b"\x01" * extra
            )
    cases[b"twelve"] = stored_version.to_bytes(12, "big")
    cases[b"empty"] = b""
    for key, raw in cases.items():
        client.set(redis_store.prefix.encode() + b"r:" + key, raw)
    client.close()
    keys = list(cases)
    held = {k: stored_version if _is_record(raw) else None for k, raw in cases.items()}
    # the high half equal, then the high half lower (what was replaced now holds 9 << 48)
    for version in (9 << 48, (8 << 48) | ((1 << 48) - 1)):
        refused = redis_store.write_many(keys, [Record(version, b"new")] * len(keys))
        assert refused == [held[k] for k in keys]
        held = {k: held[k] if held[k] is not None else version for k in keys}
    assert redis_store.stats()["unreadable"] == sum(not _is_record(r) for r in cases.values())


class _Text(str):
    def __str__(self) -> str:
        return "not this"


@pytest.mark.parametrize(
    "values",
    [
        [b"a", b"", b"\x00\xff" * 50],  # bytes: one column behind one head
        ["a", "", "h\u00e9\udc80"],  # str, surrogates kept
        [b"a", "b", b"c"],  # mixed: record by record
        [_Text("x"), "y", "z"],  # a str subclass: stored as its characters
        [b"a", 7, b"c"],  # a codec value among bytes: the codec's error, nothing sent
    ],
)
def test_a_batch_of_one_version_is_stored_as_record_by_record(redis_store, values):
    keys = [b"a", b"b", b"c"]
    records = [Record(VERSION, v) for v in values]
    if any(type(v) not in (bytes, str) and not isinstance(v, str) for v in values):
        with pytest.raises(TypeError, match="value must be bytes or str, got int"):
            redis_store.write_many(keys, records)
        assert redis_store.get_many(keys) == [None] * 3
        return
    assert redis_store.write_many(keys, records) == [None] * 3
    got = redis_store.get_many(keys)
    assert got == [Record(VERSION, v) for v in values]
    assert [type(r.value) for r in got] == [bytes if isinstance(v, bytes) else str for v in values]


def test_a_bool_among_a_batch_s_versions_is_refused_not_read_as_1(redis_store):
    keys = [b"a", b"b"]
    with pytest.raises(TypeError, match="record version must be int, got bool"):
        redis_store.write_many(keys, [Record(1, b"x"), Record(True, b"y")])
    assert redis_store.get_many(keys) == [None, None]
    # versions equal as numbers but not the same object: one version all the same
    big = VERSION + 1
    twin = int(str(big))
    assert twin is not big
    assert redis_store.write_many(keys, [Record(big, b"x"), Record(twin, b"y")]) == [None, None]
    assert redis_store.get_many(keys) == [Record(big, b"x"), Record(big, b"y")]
