"""A TCP fault proxy for the tests: network faults that killing a server cannot make.

Standard library only.  ``FaultProxy`` runs one asyncio loop in a daemon thread of
the test process; ``proxy.link(host, port)`` opens a ``Link``: a listener on a free
127.0.0.1 port that forwards every connection it accepts to ``host:port``.  Make one
link per (client, server) pair, so that a fault can cut one client off from one server
while another client still reaches it.

Each link has one mode at a time, changed from any thread, at any time:

- ``heal()``            pass every byte at once (the mode a link starts in);
- ``delay(up, down, jitter)``  hold each chunk `up` seconds (client -> server) or `down`
  seconds (server -> client), plus a uniform random 0..`jitter`; order is kept;
- ``partition()``       cut every open connection and refuse new ones (accepted, then
  reset at once: the client sees a connection error, never a reply);
- ``blackhole()``       accept, read and discard in both directions, never answer;
- ``stall()``           hold every byte in both directions; ``heal()`` (or any other mode)
  delivers what was held, in order, late, as TCP retransmission would;
- ``flap(period)``      alternate pass and partition every `period` seconds until the next
  mode is set;
- ``half_open()``       the server's side of every connection is closed (the server frees
  it) while the client's side stays open and silent: what the client sends is discarded,
  nothing comes back, no reset; new connections are accepted the same way.  Leaving the
  mode resets those client sides, as the server's TCP would answer the next segment;
- ``one_way()``         requests reach the server, its replies are discarded: a write is
  applied while its client times out.

All changes take effect on the loop thread before the call returns.  Nothing here
sleeps on the caller's thread; all times are the proxy's own (``loop.time()``).
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
from typing import Any

__all__ = ("MODES", "FaultProxy", "Link")

HOST = "127.0.0.1"
MODES = ("pass", "delay", "partition", "blackhole", "stall", "flap", "half_open", "one_way")
CHUNK = 65536


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a RST (SO_LINGER 0), as a cut network path looks to the other end."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class _Pipe:
    """One direction of one connection: read chunks, queue them with a delivery time, write."""

    def __init__(self, link: Link, conn: _Conn, reader: Any, writer: Any, upstream: bool) -> None:
        self.link, self.conn, self.reader, self.writer = link, conn, reader, writer
        self.upstream = upstream  # client -> server
        self.queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()
        self.held: list[bytes | None] = []
        self.last_due = 0.0

    def _enqueue(self, data: bytes | None, delay: float) -> None:
        due = max(self.last_due, self.link._loop_time() + delay)
        self.last_due = due
        self.queue.put_nowait((due, data))

    def release(self) -> None:
        """Deliver what a stall held (called when the link leaves stall)."""
        held, self.held = self.held, []
        for data in held:
            self._enqueue(data, 0.0)

    async def read_side(self) -> None:
        try:
            while True:
                data = await self.reader.read(CHUNK)
                mode = self.link.effective_mode()
                if mode == "one_way" and not self.upstream:
                    if not data:
                        return
                    continue  # the reply is lost on the way back
                if mode in ("blackhole", "half_open"):
                    if not data:
                        return  # the client gave up; it never got an answer
                    continue
                if mode == "stall":
                    self.held.append(data or None)
                elif mode == "delay":
                    self._enqueue(data or None, self.link._delay_for(self.upstream))
                else:
                    self._enqueue(data or None, 0.0)
                if not data:
                    return
        except (ConnectionError, OSError):
            self.conn.cut()

    async def write_side(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                due, data = await self.queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    if self.writer.can_write_eof():
                        self.writer.write_eof()
                    return
                self.writer.write(data)
                await self.writer.drain()
        except (ConnectionError, OSError):
            self.conn.cut()


class _Conn:
    """One accepted client connection and its connection to the server."""

    def __init__(self, link: Link, client_r: Any, client_w: Any) -> None:
        self.link = link
        self.client_r, self.client_w = client_r, client_w
        self.server_w: Any = None
        self.pipes: list[_Pipe] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.closed = False
        self.half = False  # half open: the server's side is gone, the client's is silent

    async def run(self) -> None:
        if self.link.effective_mode() == "half_open":
            await self.half_open()
            return
        try:
            server_r, self.server_w = await asyncio.open_connection(
                self.link.target_host, self.link.target_port
            )
        except OSError:
            self.cut()
            return
        if self.closed:  # partitioned while connecting
            _reset(self.server_w)
            return
        up = _Pipe(self.link, self, self.client_r, self.server_w, upstream=True)
        down = _Pipe(self.link, self, server_r, self.client_w, upstream=False)
        self.pipes = [up, down]
        self.tasks = [
            asyncio.ensure_future(coro)
            for coro in (up.read_side(), up.write_side(), down.read_side(), down.write_side())
        ]
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if not self.half:
            self.cut()

    async def half_open(self) -> None:
        """Close the server's side; read and discard the client's until it gives up."""
        self.half = True
        pipes = [task for task in self.tasks if task is not asyncio.current_task()]
        for task in pipes:
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)  # none reads the client now
        if self.server_w is not None:
            _reset(self.server_w)
        try:
            while not self.closed and await self.client_r.read(CHUNK):
                pass
        except (ConnectionError, OSError):
            pass
        self.cut()

    def release(self) -> None:
        for pipe in self.pipes:
            pipe.release()

    def cut(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.link._conns.discard(self)
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        _reset(self.client_w)
        if self.server_w is not None:
            _reset(self.server_w)


class Link:
    """One proxied path from a client to a server: ``port`` is where the client connects."""

    def __init__(self, proxy: FaultProxy, target_host: str, target_port: int) -> None:
        self.proxy = proxy
        self.target_host, self.target_port = target_host, target_port
        self.port = 0
        self.mode = "pass"
        self._up = self._down = self._jitter = 0.0
        self._flap_period = 0.0
        self._flap_task: asyncio.Task[None] | None = None
        self._flap_cut = False
        self._conns: set[_Conn] = set()
        self._server: asyncio.base_events.Server | None = None
        self._rng = random.Random(target_port)
        self.accepted = 0  # connections accepted, for tests and reports
        self.refused = 0  # connections reset at once (partition)

    def __repr__(self) -> str:
        return f"<Link :{self.port} -> {self.target_host}:{self.target_port} {self.mode}>"

    def _loop_time(self) -> float:
        return self.proxy._loop.time()

    def _delay_for(self, upstream: bool) -> float:
        fixed = self._up if upstream else self._down
        return fixed + (self._rng.uniform(0.0, self._jitter) if self._jitter else 0.0)

    def effective_mode(self) -> str:
        if self.mode == "flap":
            return "partition" if self._flap_cut else "pass"
        return self.mode

    # -- loop side -------------------------------------------------------------------

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.effective_mode() == "partition":
            self.refused += 1
            _reset(writer)
            return
        conn = _Conn(self, reader, writer)
        self._conns.add(conn)
        await conn.run()

    def _cut_all(self) -> None:
        for conn in list(self._conns):
            conn.cut()

    async def _flapper(self) -> None:
        while True:
            await asyncio.sleep(self._flap_period)
            self._flap_cut = not self._flap_cut
            if self._flap_cut:
                self._cut_all()

    def _set(self, mode: str, **params: float) -> None:
        if self._flap_task is not None:
            self._flap_task.cancel()
            self._flap_task = None
        self._flap_cut = False
        was = self.mode
        self.mode = mode
        if mode == "delay":
            self._up, self._down, self._jitter = params["up"], params["down"], params["jitter"]
        if was == "half_open" and mode != "half_open":
            for conn in list(self._conns):
                if conn.half:
                    conn.cut()
        if mode == "partition":
            self._cut_all()
        elif mode == "half_open":
            for conn in list(self._conns):
                if not conn.half:
                    asyncio.ensure_future(conn.half_open())
        elif mode == "flap":
            self._flap_period = params["period"]
            self._flap_task = asyncio.ensure_future(self._flapper())
        if was == "stall" and mode != "stall":
            for conn in list(self._conns):
                conn.release()

    async def _close(self) -> None:
        self._set("pass")
        if self._server is not None:
            self._server.close()
        self._cut_all()

    # -- control API (any thread) ------------------------------------------------------

    def set_mode(self, mode: str, **params: float) -> Link:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.proxy._call(self._set, mode, **params)
        return self

    def heal(self) -> Link:
        """Pass every byte at once; bytes a stall held are delivered now."""
        return self.set_mode("pass")

    def delay(self, up: float = 0.0, down: float = 0.0, jitter: float = 0.0) -> Link:
        for name, value in (("up", up), ("down", down), ("jitter", jitter)):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
        return self.set_mode("delay", up=float(up), down=float(down), jitter=float(jitter))

    def partition(self) -> Link:
        return self.set_mode("partition")

    def blackhole(self) -> Link:
        return self.set_mode("blackhole")

    def stall(self) -> Link:
        return self.set_mode("stall")

    def half_open(self) -> Link:
        return self.set_mode("half_open")

    def one_way(self) -> Link:
        return self.set_mode("one_way")

    def flap(self, period: float) -> Link:
        if not isinstance(period, (int, float)) or period <= 0:
            raise ValueError(f"period must be a number of seconds > 0, got {period!r}")
        return self.set_mode("flap", period=float(period))

    @property
    def open_connections(self) -> int:
        return len(self._conns)


class FaultProxy:
    """The loop thread that carries every link; a context manager that stops it on exit."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)
        self._links: list[Link] = []
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        async def run() -> Any:
            result = fn(*args, **kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    async def _cancel_rest(self) -> None:
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def link(self, host: str, port: int) -> Link:
        """A new link to `host:port`, in pass mode, listening on ``link.port``."""
        link = Link(self, host, port)
        self._call(link._start)
        self._links.append(link)
        return link

    @property
    def links(self) -> tuple[Link, ...]:
        return tuple(self._links)

    def heal_all(self) -> None:
        for link in self._links:
            link.heal()

    def close(self) -> None:
        if not self._loop.is_running():
            return
        for link in self._links:
            self._call(link._close)
        self._call(self._cancel_rest)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> FaultProxy:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
