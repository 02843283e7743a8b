"""The RESP builder of batch commands against a plain encoder written from the protocol.

RESP: a command is an array of bulk strings, ``*<count>\\r\\n`` then, for each
argument, ``$<length>\\r\\n<bytes>\\r\\n``.  ``Command`` builds the same bytes
from columns with joins; these tests check it byte for byte, for columns of
one length (the joined fast path) and of mixed lengths, with and without a
prefix, and against hiredis's packer where it is installed.
"""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvstore.stores.redis.resp import PACKED_BYTES, Command, packed


def plain_resp(args: list[bytes]) -> bytes:
    out = [b"*" + str(len(args)).encode() + b"\r\n"]
    for arg in args:
        out.append(b"$" + str(len(arg)).encode() + b"\r\n" + arg + b"\r\n")
    return b"".join(out)


# a command: a list of parts, each one argument or a (prefix, column) pair
binary = st.binary(max_size=40)
fixed_column = st.integers(0, 30).flatmap(
    lambda n: st.lists(st.binary(min_size=n, max_size=n), max_size=20)
)
column = st.tuples(binary, st.one_of(fixed_column, st.lists(binary, max_size=20)))
parts = st.lists(st.one_of(binary, column), max_size=8)


def build(command_parts) -> tuple[Command, list[bytes]]:
    command, args = Command(), []
    for part in command_parts:
        if isinstance(part, bytes):
            command.arg(part)
            args.append(part)
        else:
            prefix, items = part
            command.column(items, prefix=prefix)
            args.extend(prefix + item for item in items)
    return command, args


@given(parts)
def test_matches_the_protocol_byte_for_byte(command_parts):
    command, args = build(command_parts)
    assert b"".join(command.chunks()) == plain_resp(args)
    assert len(command) == len(args)


@given(parts)
def test_matches_hiredis(command_parts):
    hiredis = pytest.importorskip("hiredis")
    command, args = build(command_parts)
    if args:  # hiredis refuses a command without arguments
        assert b"".join(command.chunks()) == hiredis.pack_command(tuple(args))


def test_long_arguments_and_headers():
    big = [b"x" * 5000, b"y" * 5000]
    command, args = build([b"MSET", (b"k:", [b"a" * 2000, b"b" * 2000]), (b"", big)])
    assert b"".join(command.chunks()) == plain_resp(args)


def test_one_chunk_per_column_with_the_short_arguments_folded_in():
    # the point of the builder: a column is joined once, not per argument, and
    # the short arguments around it ride in its chunk (no small writes)
    items = [b"%08d" % i for i in range(1000)]
    command = Command()
    command.arg(b"MGET")
    command.column(items, prefix=b"p:r:")
    assert command.chunks() == [plain_resp([b"MGET", *(b"p:r:" + item for item in items)])]
    script = Command()
    for arg in (b"EVALSHA", b"sha", b"1001", b"counter"):
        script.arg(arg)
    script.column(items, prefix=b"p:r:")
    script.arg(b"put")
    script.arg(b"")
    script.column([b"value %d" % i for i in range(1000)], prefix=b"head")
    chunks = script.chunks()
    assert len(chunks) == 2
    assert chunks[0].endswith(b"$3\r\nput\r\n$0\r\n\r\n")


def test_an_empty_column_adds_nothing():
    command = Command()
    command.arg(b"PING")
    command.column([], prefix=b"p:")
    assert b"".join(command.chunks()) == b"*1\r\n$4\r\nPING\r\n" and len(command) == 1


# ------------------------------------------------- packed: one write per request


@given(st.lists(parts, max_size=6), st.lists(st.integers(0, 3 * PACKED_BYTES), max_size=3))
def test_packed_is_every_commands_bytes_in_order(requests, big_sizes):
    commands = [build(p)[0] for p in requests]
    for size in big_sizes:  # commands with long arguments among the short ones
        big = Command()
        big.arg(b"SET")
        big.arg(b"x" * size)
        commands.insert(size % (len(commands) + 1), big)
    chunks = packed(commands)
    assert b"".join(chunks) == b"".join(c for cmd in commands for c in cmd.chunks())
    originals = [len(c) for cmd in commands for c in cmd.chunks()]
    for chunk in chunks:  # joined only up to the limit; a longer chunk is one of the originals
        assert len(chunk) <= PACKED_BYTES or len(chunk) in originals
    # nothing left apart that fits together
    for a, b in pairwise(chunks):
        assert len(a) + len(b) > PACKED_BYTES


def test_a_fenced_read_is_one_write():
    fence = Command()
    fence.arg(b"GET")
    fence.arg(b"p:m:epoch")
    read = Command()
    read.arg(b"MGET")
    read.column([b"key"], prefix=b"p:r:")
    chunks = packed([fence, read, fence])
    assert len(chunks) == 1
    assert chunks[0] == plain_resp([b"GET", b"p:m:epoch"]) + plain_resp(
        [b"MGET", b"p:r:key"]
    ) + plain_resp([b"GET", b"p:m:epoch"])


def test_packed_leaves_a_large_chunk_uncopied():
    class Built:  # a command whose chunks the test holds on to
        def __init__(self, chunks):
            self._chunks = chunks

        def chunks(self):
            return self._chunks

    big = b"*2\r\n$4\r\nMGET\r\n$%d\r\n" % PACKED_BYTES + b"k" * PACKED_BYTES + b"\r\n"
    small = b"*2\r\n$3\r\nGET\r\n$1\r\ne\r\n"
    out = packed([Built([small]), Built([big]), Built([small])])
    assert out == [small, big, small]
    assert out[1] is big


@given(
    st.lists(st.one_of(binary, st.binary(min_size=1020, max_size=1030)), min_size=1, max_size=12)
)
def test_a_command_of_short_arguments_packed_at_once_matches_the_protocol(args):
    # Command.of: a single key's request (a put's script call, a get's MGET) in one join
    command = Command.of(args)
    assert command.chunks() == [plain_resp(args)] and len(command) == len(args)
    assert packed([command]) == [plain_resp(args)]
