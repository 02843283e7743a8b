"""Key conversion: str or bytes keys in, the bytes stores are keyed by out, and back.

``"k"`` and ``b"k"`` are the same key (str keys are their UTF-8 bytes), as
on the ring.  Any other type is a TypeError naming it.  Every layer above the
ring converts keys here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ("encode_keys", "key_bytes", "key_out", "keys_bytes")

Key = str | bytes


def key_bytes(key: Any) -> bytes:
    """The store key of `key`: UTF-8 of a str, a bytes as is."""
    if type(key) is str:
        return key.encode()
    if type(key) is bytes:
        return key
    if isinstance(key, str):
        return str.encode(key)  # the characters, whatever the subclass's __str__ says
    if isinstance(key, bytes):
        return bytes(memoryview(key))
    raise TypeError(f"key must be str or bytes, got {type(key).__name__}; convert it first")


def keys_bytes(keys: Iterable[Any]) -> list[bytes]:
    """`key_bytes` of every key, in order."""
    return encode_keys(keys)[0]


def encode_keys(keys: Iterable[Any]) -> tuple[list[bytes], bool]:
    """`key_bytes` of every key, and whether the keys were all str (or all bytes).

    Distinct keys of one type stay distinct; only a mix of str and bytes can
    turn two keys into one ("k" and b"k").
    """
    if not isinstance(keys, (list, tuple)):
        if isinstance(keys, (str, bytes)):
            raise TypeError(
                f"keys must be an iterable of keys, got {type(keys).__name__}; "
                "wrap a single key in a list"
            )
        keys = list(keys)
    try:
        return list(map(str.encode, keys)), True  # all str: the common case, at C speed
    except TypeError:
        pass
    if set(map(type, keys)) == {bytes}:  # all bytes: kept as they are, at C speed
        return list(keys), True
    out = []
    kinds: set[type] = set()
    for i, key in enumerate(keys):
        if isinstance(key, str):
            out.append(str.encode(key))
            kinds.add(str)
        elif isinstance(key, bytes):
            out.append(bytes(memoryview(key)))
            kinds.add(bytes)
        else:
            raise TypeError(
                f"keys[{i}] must be str or bytes, got {type(key).__name__}; convert it first"
            )
    return out, len(kinds) <= 1


def key_out(kb: bytes) -> Key:
    """The key to show a user: str when the bytes are UTF-8, else the bytes."""
    try:
        return kb.decode("utf-8")
    except UnicodeDecodeError:
        return kb


# A key travels in every request for it (and as a hint's field): 64 KiB, as
# Cassandra's partition keys, is far above any sensible key.
MAX_KEY_BYTES = 64 * 1024


def key_size_error(name: str, kb: bytes) -> ValueError:
    return ValueError(
        f"{name} must be at most {MAX_KEY_BYTES:,} bytes (as UTF-8), got {len(kb):,} bytes "
        f"({kb[:20]!r}...)"
    )
