"""Saving and loading an in-memory shell session as JSON (never pickle).

The file holds the cluster's settings, its nodes (name, weight, zone, up or
down) and every record each node's store holds, with its version, so a loaded
session is the same cluster: the same copies on the same nodes, deleted keys
still deleted, and newer writes still winning.  Loading only ever builds
strings, bytes and numbers, so a session file cannot run code.

Format (``"format": "cvstore-session", "version": 1``)::

    {"format": "cvstore-session", "version": 1,
     "replication_factor": 3, "vnodes": 160, "hash": "xxh64", "seed": 0,
     "read_consistency": "quorum", "write_consistency": "quorum",
     "nodes": [{"name": "node1", "weight": 1.0, "zone": null, "up": true,
                "records": [{"key": "user:1", "version": "<24 hex digits>",
                             "value": "alice"}, ...]}, ...]}

A record has ``"key"`` (a str) or ``"key_base64"`` (bytes that are not
UTF-8), and ``"value"`` (a str), ``"value_base64"`` (bytes) or
``"deleted": true`` (a tombstone).  Hints waiting for down nodes are not
saved; run ``hints`` before saving, or ``repair`` after loading.
"""

from __future__ import annotations

import base64
import json
import math
import os
from typing import Any

from cvstore import Cluster, Node
from cvstore._cli.args import LEVELS
from cvstore.versions import TOMBSTONE, Record, version_from_hex, version_hex

FORMAT = "cvstore-session"
VERSION = 1


class SessionError(ValueError):
    """A session file that cannot be saved or loaded; the message says where and why."""


def _record_json(kb: bytes, record: Record) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        out["key"] = kb.decode("utf-8")
    except UnicodeDecodeError:
        out["key_base64"] = base64.b64encode(kb).decode("ascii")
    out["version"] = version_hex(record[0])
    value = record[1]
    if value is TOMBSTONE:
        out["deleted"] = True
    elif isinstance(value, str):
        out["value"] = value
    elif isinstance(value, (bytes, bytearray)):
        out["value_base64"] = base64.b64encode(bytes(value)).decode("ascii")
    else:
        raise SessionError(
            f"cannot save the value of key {out.get('key', kb)!r}: a session keeps str and bytes "
            f"values, got {type(value).__name__}"
        )
    return out


def session_dict(cluster: Cluster) -> dict[str, Any]:
    """The JSON-ready session of `cluster` (every node's records, down nodes included)."""
    ring = cluster.ring
    nodes = []
    for node in cluster.nodes:
        records = sorted(node.store.scan(), key=lambda item: item[0])
        nodes.append(
            {
                "name": node.name,
                "weight": node.weight,
                "zone": node.zone,
                "up": node.is_up,
                "records": [_record_json(kb, rec) for kb, rec in records],
            }
        )
    return {
        "format": FORMAT,
        "version": VERSION,
        "replication_factor": cluster.replication_factor,
        "vnodes": ring.vnodes,
        "hash": ring.hash,
        "seed": ring.seed,
        "read_consistency": cluster.read_consistency,
        "write_consistency": cluster.write_consistency,
        "nodes": nodes,
    }


def save(cluster: Cluster, path: str) -> dict[str, int]:
    """Write the session to `path` (atomically: a temporary file renamed); returns counts."""
    data = session_dict(cluster)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            _write(f, data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return {
        "nodes": len(data["nodes"]),
        "records": sum(len(n["records"]) for n in data["nodes"]),
    }


def _write(f: Any, data: dict[str, Any]) -> None:
    """JSON with one setting, node header or record per line: readable, diffable, compact."""

    def dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    f.write("{\n")
    for name, value in data.items():
        if name != "nodes":
            f.write(f" {dumps(name)}: {dumps(value)},\n")
    f.write(' "nodes": [')
    for i, node in enumerate(data["nodes"]):
        header = dumps({k: v for k, v in node.items() if k != "records"})[:-1]
        f.write(f'{"," if i else ""}\n  {header}, "records": [')
        for j, record in enumerate(node["records"]):
            f.write(f"{',' if j else ''}\n   {dumps(record)}")
        f.write("\n  ]}" if node["records"] else "]}")
    f.write("\n ]\n}\n" if data["nodes"] else "]\n}\n")


def _need(cond: bool, where: str, what: str, got: Any) -> None:
    if not cond:
        raise SessionError(f"{where} must be {what}, got {got!r:.60}")


def _decode_record(rec: Any, where: str) -> tuple[bytes, Record]:
    _need(isinstance(rec, dict), where, "an object", rec)
    if "key" in rec:
        _need(isinstance(rec["key"], str), f"{where}.key", "a string", rec["key"])
        kb = rec["key"].encode("utf-8")
    else:
        kb = _b64(rec.get("key_base64"), f"{where}.key_base64")
    try:
        version = version_from_hex(rec.get("version"))
    except (TypeError, ValueError, AttributeError):
        version = -1
    _need(version >= 0, f"{where}.version", "a hex version string", rec.get("version"))
    if rec.get("deleted") is True:
        value: Any = TOMBSTONE
    elif "value" in rec:
        _need(isinstance(rec["value"], str), f"{where}.value", "a string", rec["value"])
        value = rec["value"]
    else:
        value = _b64(rec.get("value_base64"), f"{where}.value_base64")
    return kb, Record(version, value)


def _b64(text: Any, where: str) -> bytes:
    _need(isinstance(text, str), where, "a base64 string", text)
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise SessionError(f"{where} must be a base64 string, got {text!r:.60}") from None


def load(path: str) -> Cluster:
    """A cluster rebuilt from the session file at `path`; SessionError says what is wrong."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise SessionError(f"cannot read {path!r}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SessionError(f"{path!r} is not a JSON session file: {exc}") from None
    _need(isinstance(data, dict), "the file", "a JSON object", type(data).__name__)
    _need(data.get("format") == FORMAT, "format", repr(FORMAT), data.get("format"))
    _need(data.get("version") == VERSION, "version", str(VERSION), data.get("version"))
    rf = data.get("replication_factor")
    _need(isinstance(rf, int) and not isinstance(rf, bool) and rf >= 1,
          "replication_factor", "an int >= 1", rf)  # fmt: skip
    for name in ("read_consistency", "write_consistency"):
        _need(data.get(name) in LEVELS, name, f"one of {', '.join(LEVELS)}", data.get(name))
    nodes_in = data.get("nodes")
    _need(isinstance(nodes_in, list), "nodes", "a list", nodes_in)
    nodes, states, records = [], [], []
    for i, item in enumerate(nodes_in):
        where = f"nodes[{i}]"
        _need(isinstance(item, dict), where, "an object", item)
        name, weight, zone = item.get("name"), item.get("weight", 1.0), item.get("zone")
        _need(isinstance(name, str) and bool(name), f"{where}.name", "a non-empty string", name)
        ok_weight = isinstance(weight, (int, float)) and not isinstance(weight, bool)
        _need(ok_weight and math.isfinite(weight) and weight > 0,
              f"{where}.weight", "a number > 0", weight)  # fmt: skip
        _need(zone is None or isinstance(zone, str), f"{where}.zone", "a string or null", zone)
        _need(
            isinstance(item.get("up", True), bool), f"{where}.up", "true or false", item.get("up")
        )
        recs = item.get("records", [])
        _need(isinstance(recs, list), f"{where}.records", "a list", recs)
        nodes.append(Node(name, weight=float(weight), zone=zone))
        states.append(item.get("up", True))
        records.append([_decode_record(r, f"{where}.records[{j}]") for j, r in enumerate(recs)])
    try:
        cluster = Cluster(
            nodes,
            replication_factor=rf,
            read_consistency=data["read_consistency"],
            write_consistency=data["write_consistency"],
            vnodes=data.get("vnodes", 160),
            hash=data.get("hash", "xxh64"),
            seed=data.get("seed", 0),
        )
    except (TypeError, ValueError) as exc:
        raise SessionError(str(exc)) from None
    newest = 0
    for node, recs, up in zip(nodes, records, states):
        if recs:
            node.store.put_many(recs)
            newest = max(newest, max(rec[0] for _, rec in recs))
        if not up:
            node.fail()
    if newest:
        cluster.clock.observe(newest)  # new writes get newer versions than any loaded one
    return cluster
