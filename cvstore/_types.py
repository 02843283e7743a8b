"""Type names the public API shares: keys, hashes, the value type and defaults.

``Cluster`` and ``AsyncCluster`` are generic in the type of the values they
hold: ``Cluster[bytes]`` returns ``bytes | None`` from ``get``.  Written
without a parameter (``Cluster(nodes)``) the value type is ``Any``, as it
would be for an unannotated dict: that default needs PEP 696, which Python
3.11's ``typing.TypeVar`` lacks, so type checkers read the declaration from
``typing_extensions`` (they ship its stubs) while the running program uses a
plain ``TypeVar`` and needs nothing installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeVar

__all__ = ("D", "Hash", "Key", "KeyIn", "V")

# The ring's hash functions (HashRing checks them against its own HASHES).
Hash = Literal["xxh64", "ketama", "ketama-uhashring"]

# A key as the API returns it: str when its bytes are UTF-8, else bytes.
Key = str | bytes

# A key as a caller passes it (str or bytes, or a mapping keyed by either).
KeyIn = TypeVar("KeyIn", bound=str | bytes)

# A caller's default (get, pop): returned as given.
D = TypeVar("D")

if TYPE_CHECKING:
    from typing_extensions import TypeVar as _TypeVarWithDefault

    V = _TypeVarWithDefault("V", default=Any)
else:
    V = TypeVar("V")
