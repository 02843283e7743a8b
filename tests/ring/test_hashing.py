"""The C hash functions: published known answers, and equality with independent
implementations (the xxhash package, hashlib, the pure-Python twin)."""

import hashlib

import pytest
import xxhash

from cvstore import HashRing
from cvstore._reference import xxh64_py
from cvstore._ring import md5, xxh64

# Published XXH64 values (seed 0) for short inputs.
XXH64_VECTORS = [
    (b"", 0xEF46DB3751D8E999),
    (b"a", 0xD24EC4F1A98C6E5B),
    (b"abc", 0x44BC2CF5AD770999),
    (b"Nobody inspects the spammish repetition", 0xFBCEA83C8A378BF1),
]

# RFC 1321, appendix A.5 (the MD5 test suite).
MD5_VECTORS = [
    (b"", "d41d8cd98f00b204e9800998ecf8427e"),
    (b"a", "0cc175b9c0f1b6a831c399e269772661"),
    (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
    (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
    (b"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
    (
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "d174ab98d277d9f5a5611c2c9f419d9f",
    ),
    (b"1234567890" * 8, "57edf4a22be3c955ac49da2e2107b67a"),
]


@pytest.mark.parametrize("data, expected", XXH64_VECTORS)
def test_xxh64_known_answers(data, expected):
    assert xxh64(data) == expected
    assert xxh64_py(data) == expected


@pytest.mark.parametrize("data, expected", MD5_VECTORS)
def test_md5_known_answers(data, expected):
    assert md5(data).hex() == expected


def test_xxh64_equals_xxhash_package_for_every_length(rand):
    # Lengths 0-300 cover every tail case (bytes, 4-byte word, 8-byte words)
    # both below and above the 32-byte stripe loop, with several seeds.
    for length in range(301):
        data = rand.randbytes(length)
        for seed in (0, 1, rand.getrandbits(64)):
            expected = xxhash.xxh64_intdigest(data, seed)
            assert xxh64(data, seed) == expected, (length, seed, rand)


def test_pure_python_xxh64_equals_xxhash_package(rand):
    # The twin's own XXH64 is what _reference falls back to without xxhash.
    for length in range(0, 301, 7):
        data = rand.randbytes(length)
        seed = rand.getrandbits(64)
        assert xxh64_py(data, seed) == xxhash.xxh64_intdigest(data, seed), (length, rand)


def test_md5_equals_hashlib_for_every_length(rand):
    # Lengths around 55/56/64 exercise the one- and two-block padding paths.
    for length in range(301):
        data = rand.randbytes(length)
        assert md5(data) == hashlib.md5(data).digest(), (length, rand)


def test_ring_key_hash_is_the_contract_function(rand):
    seed = rand.getrandbits(64)
    ring = HashRing(["a"], seed=seed)
    ketama = HashRing(["a"], hash="ketama")
    for length in range(100):
        key = rand.randbytes(length)
        assert ring.hash_key(key) == xxhash.xxh64_intdigest(key, seed)
        assert ketama.hash_key(key) == int.from_bytes(hashlib.md5(key).digest()[:4], "little")


def test_node_points_are_xxh64_of_name_dash_index_at_every_name_length(rand):
    # A build hashes a node's points with XXH64 inlined (csrc/cvs_points.h):
    # the suffix is counted up in place and the words inside "{name}-" are
    # hashed once per suffix length.  Names of 1-40 UTF-8 bytes (one to four
    # bytes a character) and weights up to 10,000 points cross every 8-byte
    # word boundary, the 32-byte switch to cvs_xxh64 and the 1- to 5-digit
    # suffixes; each ring's points must be exactly the contract's hashes.
    for length in range(1, 41):
        name = "".join(rand.choice("aZ9-é€😀") for _ in range(length))
        seed = rand.choice((0, rand.getrandbits(64)))
        for weight in (1.0, 0.07, 7.0, 62.5):
            ring = HashRing({name: weight}, seed=seed)
            count = len(ring.points)
            expected = sorted(
                xxhash.xxh64_intdigest(f"{name}-{i}".encode(), seed) for i in range(count)
            )
            assert ring.points.tolist() == expected, (name, weight, seed)
