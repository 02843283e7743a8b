"""Records as the core sees them: the names of ``cvstore.versions``, the layer below.

Records, tombstones, expiring values and which record is newer are defined
with the version stamps that order them (``cvstore.versions``); the core's
modules and the stores import them from here.
"""

from __future__ import annotations

from cvstore.versions import (
    COUNTER_BITS,
    TOMBSTONE,
    VERSION_BITS,
    VERSION_HEX_DIGITS,
    WRITER_BITS,
    Expiring,
    Record,
    dead_since,
    differs,
    expired,
    live,
    newest,
    newest_by_row,
    value_of,
    version_from_hex,
    version_hex,
    version_wall_ms,
)

__all__ = (
    "COUNTER_BITS",
    "TOMBSTONE",
    "VERSION_BITS",
    "VERSION_HEX_DIGITS",
    "WRITER_BITS",
    "Expiring",
    "Record",
    "dead_since",
    "differs",
    "expired",
    "live",
    "newest",
    "newest_by_row",
    "value_of",
    "version_from_hex",
    "version_hex",
    "version_wall_ms",
)
