"""A batch command in RESP (the Redis protocol), built from columns with a few joins.

redis-py's packer, and hiredis's, look at every argument in turn: measured
here, packing one 2,003-argument script call (1,000 keys and 1,000 records)
took 250-320 µs, as much as the server spends running it.  A batch's
arguments are columns of byte strings that usually share one length (keys of
one size, values of one size) and one prefix (the store's key prefix, the
batch's version head).  Then the whole column is one ``bytes.join`` whose
separator carries the next argument's length header and prefix: 10-50 µs.

The command comes out as one chunk per column, the short arguments around a
column folded into its join: the joined columns are not copied again into one
buffer, and every chunk is a large write (each write on a loopback socket
costs a system call and wakes the server to read a partial command).
``packed`` joins the short chunks of a request's commands for the same
reason: redis-py sends each chunk it is given with a ``sendall`` of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain, repeat

__all__ = ("Command", "packed")

_CRLF = b"\r\n"
# Neighbouring chunks that fit together in this many bytes go out as one
# write; larger chunks (a batch's columns) go as they are, never copied.
PACKED_BYTES = 64 * 1024
_BULK = b"$%d\r\n%b\r\n"  # one bulk string: its length, then it
_HEADERS = [b"$%d\r\n" % n for n in range(1024)]  # bulk-string headers of short arguments


def _header(length: int) -> bytes:
    return _HEADERS[length] if length < 1024 else b"$%d\r\n" % length


def _join_column(before: bytes, prefix: bytes, items: Sequence[bytes], after: bytes) -> bytes:
    """``before``, then ``prefix + item`` for each item as bulk strings, then ``after``."""
    lengths = set(map(len, items))
    if len(lengths) == 1:
        # "\r\n$<n>\r\n<prefix>" between items: the join's separator
        head = _header(len(prefix) + lengths.pop()) + prefix
        if len(items) == 1:
            return before + head + items[0] + _CRLF + after
        first = before + head + items[0]
        last = items[-1] + _CRLF + after
        return (_CRLF + head).join([first, *items[1:-1], last])
    if prefix:
        items = [prefix + item for item in items]
    bulks = chain.from_iterable(zip(map(_header, map(len, items)), items, repeat(_CRLF)))
    return b"".join(chain((before,), bulks, (after,)))


class Command:
    """One Redis command as RESP chunks: add arguments, then take ``chunks()``.

    >>> cmd = Command()
    >>> cmd.arg(b"MGET")
    >>> cmd.column([b"a", b"b"], prefix=b"k:")
    >>> cmd.chunks()
    [b'*3\\r\\n$4\\r\\nMGET\\r\\n$3\\r\\nk:a\\r\\n$3\\r\\nk:b\\r\\n']
    """

    __slots__ = ("_count", "_parts")

    def __init__(self) -> None:
        # in order: one argument's bytes, or a column as (prefix, items)
        self._parts: list[bytes | tuple[bytes, Sequence[bytes]]] = []
        self._count = 0

    @classmethod
    def of(cls, args: Sequence[bytes]) -> Command:
        """A command of short arguments, packed at once (a single key's request).

        >>> Command.of([b"GET", b"k"]).chunks()
        [b'*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n']
        """
        cmd = cls()
        cmd._parts.append(b"".join([_BULK % (len(arg), arg) for arg in args]))
        cmd._count = len(args)
        return cmd

    def arg(self, value: bytes) -> None:
        """Append one argument."""
        self._parts.append(_header(len(value)) + value + _CRLF)
        self._count += 1

    def column(self, items: Sequence[bytes], prefix: bytes = b"") -> None:
        """Append ``prefix + item`` for each of `items`, as separate arguments."""
        if items:
            self._parts.append((prefix, items))
            self._count += len(items)

    def __len__(self) -> int:
        """How many arguments so far."""
        return self._count

    def chunks(self) -> list[bytes]:
        """The command's bytes, in order: one chunk per column (or one if none)."""
        chunks: list[bytes] = []
        short = [b"*%d\r\n" % self._count]  # short arguments not yet in a chunk
        column: tuple[bytes, bytes, Sequence[bytes]] | None = None  # waiting for what follows it
        for part in self._parts:
            if isinstance(part, bytes):
                short.append(part)
                continue
            if column is None:  # the arguments so far go before the first column
                column = (b"".join(short), *part)
            else:  # those between two columns go after the first of them
                chunks.append(_join_column(*column, b"".join(short)))
                column = (b"", *part)
            short = []
        if column is None:
            return [b"".join(short)]
        chunks.append(_join_column(*column, b"".join(short)))
        return chunks


def packed(commands: Iterable[Command]) -> list[bytes]:
    """The chunks of `commands`, in order, with neighbours joined up to ``PACKED_BYTES``.

    A request of several short commands (a fenced read: the epoch, the MGET,
    the epoch again) is one write, not three system calls; a chunk larger
    than ``PACKED_BYTES`` stays a chunk of its own.
    """
    if type(commands) is list and len(commands) == 1:  # one command: its chunks as they are
        chunks = commands[0].chunks()
        if len(chunks) == 1:
            return chunks
    out: list[bytes] = []
    run: list[bytes] = []  # short chunks waiting to be joined
    size = 0
    for cmd in commands:
        for chunk in cmd.chunks():
            if run and size + len(chunk) > PACKED_BYTES:
                out.append(b"".join(run))
                run, size = [], 0
            run.append(chunk)
            size += len(chunk)
    if run:
        out.append(b"".join(run))
    return out
