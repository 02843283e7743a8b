"""What ``cvstore cluster`` checks about a node's address before it acts.

- ``check_url``: a URL the command line was given, refused in the command
  line's words (the option's name, the URL) before any connection is made;
- ``same_server``: whether two URLs reach one Redis database (the host
  resolved, so ``localhost`` and ``127.0.0.1`` are one server);
- ``diagnose``: why a node answered with no cluster layout (nothing listens,
  no such host, no such database, an empty database, other prefixes).

Only the standard library at import; redis-py is imported by ``diagnose``.
"""

from __future__ import annotations

import os
import socket
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

from cvstore._cli.errors import UsageError

SCHEMES = ("redis", "rediss", "unix")
_TIMEOUT_OPTIONS = ("socket_timeout", "socket_connect_timeout")
LAYOUT_SUFFIX = b"m:layout"  # a cluster's layout key: <prefix>m:layout (stores/redis/requests.py)


class Server(NamedTuple):
    """Where a URL leads: (kind, host or socket path, port, db) and the host's addresses."""

    kind: str  # "tcp" or "unix"
    host: str
    port: int
    db: int
    addresses: frozenset[str]


def check_url(url: str, what: str, prog: str) -> str:
    """`url` if it is a Redis URL the command can use, else a UsageError naming `what`."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise UsageError(
            f"{what} must be a redis://, rediss:// or unix:// URL, got {url!r}", prog=prog
        )
    query = parse_qs(parts.query)
    for option in _TIMEOUT_OPTIONS:
        if option in query:
            raise UsageError(
                f"{what} must not set {option} in the URL, got {url!r}; "
                "use --timeout SECONDS instead",
                prog=prog,
            )
    if parts.scheme == "unix":
        if not parts.path:
            raise UsageError(
                f"{what} must name a socket path (unix:///path), got {url!r}", prog=prog
            )
    else:
        if not parts.hostname:
            raise UsageError(
                f"{what} must name a host (redis://host:port/db), got {url!r}", prog=prog
            )
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0 or (parts.port is None and _has_port_text(parts.netloc)):
            raise UsageError(f"{what} must have a port from 1 to 65535, got {url!r}", prog=prog)
    try:
        _db(url)
    except ValueError:
        raise UsageError(
            f"{what} must name a database by number (/0, /1, ...), got {url!r}", prog=prog
        ) from None
    return url


def _has_port_text(netloc: str) -> bool:
    host = netloc.rpartition("@")[2]
    return host.endswith(":") or (":" in host and not host.endswith("]"))


def _db(url: str) -> int:
    parts = urlsplit(url)
    found = []
    if parts.scheme != "unix" and parts.path not in ("", "/"):
        found.append(unquote(parts.path[1:]))
    found += parse_qs(parts.query).get("db", [])
    for text in found:
        if not text.isdigit():
            raise ValueError(text)
    return int(found[-1]) if found else 0


def server(url: str) -> Server:
    """Where `url` leads, the host resolved to its addresses (unresolved: the name itself)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        path = os.path.realpath(parts.path)
        return Server("unix", path, 0, _db(url), frozenset([path]))
    host = (parts.hostname or "localhost").lower()
    port = parts.port or 6379
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = frozenset(str(info[4][0]) for info in found)
    except (OSError, UnicodeError):
        addresses = frozenset([host])
    return Server("tcp", host, port, _db(url), addresses or frozenset([host]))


def same_server(a: str, b: str) -> bool:
    """Whether URLs `a` and `b` reach one database of one server (``localhost`` = 127.0.0.1)."""
    if not a or not b:
        return False
    try:
        x, y = server(a), server(b)
    except ValueError:
        return a == b
    if (x.kind, x.port, x.db) != (y.kind, y.port, y.db):
        return False
    return x.host == y.host or bool(x.addresses & y.addresses)


def diagnose(url: str, prefix: str, timeout: float) -> str:
    """Why the node at `url` holds no cluster layout under `prefix`, in a few words."""
    import redis

    parts = urlsplit(url)
    if parts.scheme != "unix":
        host = parts.hostname or "localhost"
        try:
            socket.getaddrinfo(host, parts.port or 6379, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return f"{url}: no such host {host!r}"
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        try:
            client.ping()
        except redis.exceptions.ResponseError as exc:
            if "DB index" in str(exc):
                return f"{url}: the server has no database {_db(url)} ({exc})"
            return f"{url}: the server refused: {exc}"
        except redis.exceptions.TimeoutError:
            return f"{url}: no answer within {timeout:g} s"
        except redis.exceptions.ConnectionError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ConnectionRefusedError) or "refused" in str(exc).lower():
                return f"{url}: connection refused (no server listens there)"
            if isinstance(cause, socket.gaierror):
                return f"{url}: no such host {parts.hostname!r}"
            return f"{url}: cannot connect ({exc})"
        except redis.exceptions.RedisError as exc:
            return f"{url}: {exc}"
        size = int(client.dbsize())
        if size == 0:
            return f"{url}: the database is empty (no cluster here)"
        prefixes = layout_prefixes(client)
        if prefix in prefixes:
            return f"{url}: the layout under prefix {prefix!r} does not parse"
        if prefixes:
            shown = ", ".join(repr(p) for p in prefixes[:5]) + (
                ", ..." if len(prefixes) > 5 else ""
            )
            return (
                f"{url}: no cluster under prefix {prefix!r}; other prefixes found here: "
                f"{shown} (choose one with --prefix)"
            )
        return f"{url}: {size:,} keys but no cluster layout under any prefix"
    except redis.exceptions.RedisError as exc:
        return f"{url}: {exc}"
    finally:
        client.close()


def layout_prefixes(client: Any) -> list[str]:
    """The prefixes under which a server holds a cluster layout."""
    return sorted(
        {
            key[: -len(LAYOUT_SUFFIX)].decode("utf-8", "replace")
            for key in client.scan_iter(match=b"*" + LAYOUT_SUFFIX, count=1000)
        }
    )
