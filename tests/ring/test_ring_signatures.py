"""inspect.signature and help() tell the truth about HashRing: what they show is
what the stub declares and what the calls accept."""

from __future__ import annotations

import ast
import inspect
import pydoc
from importlib import resources

import numpy as np
import pytest

from cvstore import HashRing

KINDS = {
    "posonly": inspect.Parameter.POSITIONAL_ONLY,
    "args": inspect.Parameter.POSITIONAL_OR_KEYWORD,
    "kwonly": inspect.Parameter.KEYWORD_ONLY,
}
METHODS = [
    "add", "remove", "hash_key", "get_node", "get_nodes", "hash_many", "lookup_many",
    "get_nodes_many", "ownership", "copy", "get_node_bounded", "lookup_many_bounded",
]  # fmt: skip


def stub_signatures() -> dict[str, list[tuple[str, inspect._ParameterKind, object]]]:
    """(name, kind, default) of every HashRing method in _ring.pyi, without `self`."""
    tree = ast.parse(resources.files("cvstore").joinpath("_ring.pyi").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "HashRing")
    out = {}
    for fn in cls.body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        a = fn.args
        params = []
        positional = a.posonlyargs + a.args
        defaults = [inspect.Parameter.empty] * (len(positional) - len(a.defaults)) + [
            ast.literal_eval(d) for d in a.defaults
        ]
        for i, (arg, default) in enumerate(zip(positional, defaults)):
            kind = KINDS["posonly"] if i < len(a.posonlyargs) else KINDS["args"]
            params.append((arg.arg, kind, default))
        for arg, default in zip(a.kwonlyargs, a.kw_defaults):
            value = inspect.Parameter.empty if default is None else ast.literal_eval(default)
            params.append((arg.arg, KINDS["kwonly"], value))
        out[fn.name] = params[1:]  # drop self
    return out


def runtime(sig: inspect.Signature) -> list[tuple[str, inspect._ParameterKind, object]]:
    return [(p.name, p.kind, p.default) for p in sig.parameters.values() if p.name != "self"]


def test_class_signature_is_the_constructor():
    sig = inspect.signature(HashRing)
    assert str(sig) == "(nodes=None, *, vnodes=160, hash='xxh64', seed=0)"
    assert runtime(sig) == stub_signatures()["__init__"]


def test_help_shows_vnodes_as_keyword_only():
    text = pydoc.render_doc(HashRing, renderer=pydoc.plaintext)
    assert "HashRing(nodes=None, *, vnodes=160, hash='xxh64', seed=0)" in text
    assert "vnodes=DEFAULT_VNODES" not in text


@pytest.mark.parametrize("method", METHODS)
def test_method_signatures_match_the_stub(method):
    assert runtime(inspect.signature(getattr(HashRing, method))) == stub_signatures()[method]


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((["a"],), {}),
        ((["a"],), {"vnodes": 40}),
        ((["a"], 40), {}),
        ((), {"nodes": ["a"], "hash": "ketama"}),
        ((["a"],), {"vnode": 40}),
        ((["a"], "xxh64"), {}),
        ((["a"],), {"seed": 7, "hash": "xxh64"}),
    ],
)
def test_constructor_accepts_exactly_what_the_signature_binds(args, kwargs):
    try:
        inspect.signature(HashRing).bind(*args, **kwargs)
        binds = True
    except TypeError:
        binds = False
    if binds:
        assert isinstance(HashRing(*args, **kwargs), HashRing)
    else:
        with pytest.raises(TypeError, match="argument"):
            HashRing(*args, **kwargs)


@pytest.mark.parametrize(
    "method, args, kwargs",
    [
        ("get_nodes", ("k", 2), {}),
        ("get_nodes", ("k",), {"n": 2}),
        ("get_nodes", ("k",), {}),
        ("lookup_many", (["k"],), {"out": np.empty(1, dtype=np.int32)}),
        ("lookup_many", (["k"], np.empty(1, dtype=np.int32)), {}),
        ("get_nodes_many", (["k"],), {"n": 2}),
        ("get_node", (), {"key": "k"}),
        ("hash_many", (["k"], 1), {}),
        ("ownership", (1,), {}),
    ],
)
def test_methods_accept_exactly_what_their_signatures_bind(method, args, kwargs):
    ring = HashRing(["a", "b", "c"])
    bound = getattr(ring, method)
    try:
        inspect.signature(bound).bind(*args, **kwargs)
        binds = True
    except TypeError:
        binds = False
    if binds:
        bound(*args, **kwargs)
    else:
        with pytest.raises(TypeError, match="argument"):
            bound(*args, **kwargs)
