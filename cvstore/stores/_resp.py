"""A batch command in RESP (the Redis protocol), built from columns with a few joins.

redis-py's packer, and hiredis's, look at every argument in turn: measured
here, packing one 2,003-argument script call (1,000 keys and 1,000 records)
took 250-320 µs, as much as the server spends running it.  A batch's
arguments are columns of byte strings that usually share one length (keys of
one size, values of one size) and one prefix (the store's key prefix, the
batch's version head).  Then the whole column is one ``bytes.join`` whose
separator carries the next argument's length header and prefix: 10-50 µs.
The command is kept as a list of a few large chunks, written one after
another, so the joined columns are not copied again into one buffer.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain, repeat

__all__ = ("Command",)

_CRLF = b"\r\n"
_SMALL = 4096  # bytes: a chunk this short is copied rather than written on its own
_HEADERS = [b"$%d\r\n" % n for n in range(1024)]  # bulk-string headers of short arguments


def _header(length: int) -> bytes:
    return _HEADERS[length] if length < 1024 else b"$%d\r\n" % length


class Command:
    """One Redis command as RESP chunks: add arguments, then take ``chunks()``.

    >>> cmd = Command()
    >>> cmd.arg(b"MGET")
    >>> cmd.column([b"a", b"b"], prefix=b"k:")
    >>> b"".join(cmd.chunks())
    b'*3\\r\\n$4\\r\\nMGET\\r\\n$3\\r\\nk:a\\r\\n$3\\r\\nk:b\\r\\n'
    """

    __slots__ = ("_chunks", "_count", "_tail")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._tail = b""  # small pieces not yet in a chunk
        self._count = 0

    def arg(self, value: bytes) -> None:
        """Append one argument."""
        self._tail += _header(len(value)) + value + _CRLF
        self._count += 1

    def column(self, items: Sequence[bytes], prefix: bytes = b"") -> None:
        """Append ``prefix + item`` for each of `items`, as separate arguments."""
        if not items:
            return
        self._count += len(items)
        lengths = set(map(len, items))
        if len(lengths) == 1:
            # "$<n>\r\n<prefix>" before every item: the join's separator
            head = _header(len(prefix) + lengths.pop()) + prefix
            self._chunks.append(self._tail + head)
            self._chunks.append((_CRLF + head).join(items))
            self._tail = _CRLF
            return
        if prefix:
            items = [prefix + item for item in items]
        headers = map(_header, map(len, items))
        self._chunks.append(self._tail)
        self._chunks.append(b"".join(chain.from_iterable(zip(headers, items, repeat(_CRLF)))))
        self._tail = b""

    def __len__(self) -> int:
        """How many arguments so far."""
        return self._count

    def chunks(self) -> list[bytes]:
        """The command's bytes, in order, as a few chunks (empty ones left out)."""
        chunks = [chunk for chunk in (*self._chunks, self._tail) if chunk]
        header = b"*%d\r\n" % self._count
        if chunks and len(chunks[0]) <= _SMALL:  # one write less, for a short copy
            chunks[0] = header + chunks[0]
        else:
            chunks.insert(0, header)
        return chunks
