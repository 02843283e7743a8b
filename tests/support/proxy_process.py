"""The fault proxy (``faultproxy.FaultProxy``) in a child process, for measurements.

In the test process the proxy's loop thread takes the GIL for every chunk it
forwards, so a client measured through it waits for the proxy as much as for
the network (up to the interpreter's switch interval, 5 ms, for each turn).
``ProxyProcess`` runs the proxy in its own interpreter instead; its links are
driven the same way (``link(host, port)`` -> an object with ``port``,
``delay(...)``, ``heal()`` and the other modes), by JSON lines on the child's
stdin.  Standard library only; the child ends when the parent closes it (or
dies: its stdin then ends).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

__all__ = ("ProxyProcess",)


class RemoteLink:
    """A link of the child's proxy: ``port`` is where a client connects."""

    def __init__(self, proxy: ProxyProcess, index: int, port: int) -> None:
        self._proxy, self._index, self.port = proxy, index, port

    def set_mode(self, mode: str, **params: float) -> RemoteLink:
        self._proxy._ask({"op": "mode", "link": self._index, "mode": mode, "params": params})
        return self

    def heal(self) -> RemoteLink:
        return self.set_mode("pass")

    def delay(self, up: float = 0.0, down: float = 0.0, jitter: float = 0.0) -> RemoteLink:
        return self.set_mode("delay", up=up, down=down, jitter=jitter)

    def partition(self) -> RemoteLink:
        return self.set_mode("partition")

    def stall(self) -> RemoteLink:
        return self.set_mode("stall")


class ProxyProcess:
    """A child process carrying every link; a context manager that stops it on exit."""

    def __init__(self) -> None:
        self._child = subprocess.Popen(
            [sys.executable, "-m", "tests.support.proxy_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._count = 0

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._child.stdin is not None and self._child.stdout is not None
        self._child.stdin.write(json.dumps(request) + "\n")
        self._child.stdin.flush()
        line = self._child.stdout.readline()
        if not line:
            raise RuntimeError(f"the proxy process ended (exit code {self._child.poll()})")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"the proxy process refused {request}: {reply['error']}")
        return reply

    def link(self, host: str, port: int) -> RemoteLink:
        reply = self._ask({"op": "link", "host": host, "port": port})
        self._count += 1
        return RemoteLink(self, self._count - 1, int(reply["port"]))

    def close(self) -> None:
        if self._child.poll() is None:
            assert self._child.stdin is not None
            self._child.stdin.close()
            try:
                self._child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()
        if self._child.stdout is not None:
            self._child.stdout.close()

    def __enter__(self) -> ProxyProcess:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve() -> None:
    """The child: a FaultProxy driven by JSON lines on stdin, one reply line each."""
    from tests.support.faultproxy import FaultProxy

    with FaultProxy() as proxy:
        links = []
        for line in sys.stdin:
            request = json.loads(line)
            try:
                if request["op"] == "link":
                    links.append(proxy.link(request["host"], int(request["port"])))
                    reply: dict[str, Any] = {"port": links[-1].port}
                else:
                    links[request["link"]].set_mode(request["mode"], **request["params"])
                    reply = {"ok": True}
            except Exception as exc:  # noqa: BLE001 - told to the parent
                reply = {"error": repr(exc)}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    _serve()
