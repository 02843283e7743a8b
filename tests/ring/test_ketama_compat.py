"""hash="ketama" reproduces libketama; hash="ketama-uhashring" reproduces uhashring's
ketama mode.  Checked against the published vectors of RJ/ketama (libketama's own
test), libmemcached and Couchbase (SDK RFC 26), and against uhashring itself."""

import hashlib
import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvstore import HashRing
from cvstore._reference import ReferenceRing, ketama_digest_counts, uhashring_digest_counts

# RJ/ketama's ketama.servers: address and memory, in file order.
KETAMA_SERVERS = {
    "10.0.1.1:11211": 600,
    "10.0.1.2:11211": 300,
    "10.0.1.3:11211": 200,
    "10.0.1.4:11211": 350,
    "10.0.1.5:11211": 1000,
    "10.0.1.6:11211": 800,
    "10.0.1.7:11211": 950,
    "10.0.1.8:11211": 100,
}

# libmemcached's tests/ketama_test_cases.h: key, its hash, the point that owns
# it and the server, over the same servers and weights.
LIBMEMCACHED_CASES = r"""
SVa_]_V41) 443691461 445379617 10.0.1.2
*/Z;?V(.\8 1422915503 1428303028 10.0.1.4
30C1*Z*S/_ 1473165754 1480075959 10.0.1.2
ERR:EC58G> 2148406511 2168579133 10.0.1.7
1I=cTMNTKF 2882686667 2885206587 10.0.1.4
]VG<`I*Z8) 1103544263 1104827657 10.0.1.5
UUTC`-V159 3716288206 3727224240 10.0.1.7
@7RU6C6T+Z 3862737685 3871917949 10.0.1.6
/XLN0@+36; 1623269830 1627683651 10.0.1.7
4(`X;\V.^c 373546328 383925769 10.0.1.6
726bW=9*a4 4213440020 4213950705 10.0.1.3
\`)<B)UE,c 951096736 955226069 10.0.1.8
P1[Ma3=K1/ 1989324036 1994028240 10.0.1.1
C89I.-V?cT 1604239957 1606398093 10.0.1.5
D[HE+cFXDK 2117036136 2117124014 10.0.1.5
P1L?NAB[)K 2129972569 2132542634 10.0.1.7
cDT0)Z5P6, 176485284 178675413 10.0.1.1
@JW`+[WAO8 2720940826 2743975456 10.0.1.2
\39DKW^)N_ 3548879868 3550704865 10.0.1.6
EM75N0+[X1 1558531507 1559308507 10.0.1.5
`,SS]NBP,b 1883545960 1884847278 10.0.1.1
XX1a9LT+F? 653487707 656410408 10.0.1.6
Zc\-,F-c6V 1160802451 1171575728 10.0.1.6
1*RTMC7,03 1602398012 1606398093 10.0.1.5
*Xc+V0P>32 536016577 539988520 10.0.1.7
U))Fb-(`,. 4128682289 4136854163 10.0.1.7
R-08RNTaRT 3718170086 3727224240 10.0.1.5
(LHcO203I3 1007779411 1014643570 10.0.1.1
=256P+;Qc8 3976201210 3976304873 10.0.1.3
OI5XZ_BBT( 2155922164 2168579133 10.0.1.5
2TLRL/UL;: 1086800909 1095659802 10.0.1.2
WHD\O1`ZRW 3087923411 3095471560 10.0.1.1
.=54)_c;=T 2497691631 2502731301 10.0.1.6
;G<W-XWZ@b 2888169733 2888728739 10.0.1.7
(,>E`)FT\4 580747448 581063326 10.0.1.5
HZAU*;P*N] 2564670474 2565697267 10.0.1.1
NZ@ZE=O84_ 533335275 539988520 10.0.1.7
6,cEI`F_P> 3972869246 3974773167 10.0.1.3
c,5AQ/T5)6 2835605783 2847870057 10.0.1.7
.O,>>BT)RX 3857978174 3871917949 10.0.1.7
XY\X::LX50 1749241099 1752196488 10.0.1.7
+550F^/.01 3781824099 3783248219 10.0.1.2
<.X9E2S5+9 3232479481 3234387706 10.0.1.7
]\.UH8_0a1 2419699252 2423002920 10.0.1.6
8(6=(T0/Z0 728266737 729026070 10.0.1.6
8*6a;Sc*X+ 4223431086 4230156966 10.0.1.5
<QW:;3K6;H 2731158143 2743975456 10.0.1.7
7C@EY@-Y?_ 760770733 761576669 10.0.1.5
aPb3E1WD4K 2500489218 2502731301 10.0.1.2
?@12R<=1BH 1494795329 1502505505 10.0.1.1
QR(a+Q=1FU 3238535074 3238996435 10.0.1.5
`C9^FV,960 2628553463 2628733766 10.0.1.3
UNHVP..^8H 977096483 977319837 10.0.1.6
:Y.2W2[(35 2777083668 2784182515 10.0.1.6
M/HV^_HZ4O 3623390946 3624445007 10.0.1.4
ZY16KQ<ICD 1831153193 1838563516 10.0.1.7
bV2,`a.PY9 1962228869 1962648654 10.0.1.7
U;9:-+5N]9 269504649 277560877 10.0.1.2
1S/:aJ[1(; 578069729 581063326 10.0.1.5
Nb-X^]M)I: 330865696 331009896 10.0.1.3
2;M;ES>J5/ 2776949824 2784182515 10.0.1.6
[>RZHG97Q9 71954686 72034069 10.0.1.4
J3/G[)9<^Z 2799896459 2805183696 10.0.1.6
N-)88>[O`, 50404102 51792557 10.0.1.2
NP:=FR\OaA 3837333776 3837792034 10.0.1.7
`@L+W;a,O[ 1512157148 1522285852 10.0.1.5
W2`P:-+1T[ 2945171975 2946196424 10.0.1.7
-6G7K^YDIN 3168617340 3170513015 10.0.1.5
U>*>9ZI6V5 668514946 674097631 10.0.1.5
.I?^6Ic9RK 938419020 942832691 10.0.1.6
0OZH^9BKM[ 3682518606 3686781297 10.0.1.2
5?50UGZ:ML 868610882 869425986 10.0.1.6
?K2NF@3=IU 381218851 383925769 10.0.1.6
YI@G-2X?UB 3688706179 3693197681 10.0.1.6
7cY</BSaL= 3976870223 3978903843 10.0.1.7
A(`KF:[RH8 3292979676 3294849139 10.0.1.6
;=ZT\W^P+H 1401102653 1416290674 10.0.1.6
b2?WFF56;R 480494704 486971192 10.0.1.7
CTR74,J+N. 137446045 146633907 10.0.1.7
<b;*R+QDST 1304985302 1308223778 10.0.1.5
\R^7=9UCG` 126218373 129199837 10.0.1.6
1bQS5]WOXB 1853470245 1855329369 10.0.1.7
M(@X^b[L:K 3019630308 3022260113 10.0.1.4
431cBF8,YO 1679726993 1685224295 10.0.1.1
(bEIQJ:E./ 2922607787 2925521819 10.0.1.7
WS/3H*)7F; 419488232 422140585 10.0.1.3
ZJF[Ia6Q)+ 3960568056 3962489998 10.0.1.5
<]*QCK8U,> 2590140172 2598117636 10.0.1.5
\[a\^=V_M0 689410119 698690782 10.0.1.7
7;RM+8J9YC 1530175299 1531107082 10.0.1.7
4*=.SPR[AV 3928582722 3928853792 10.0.1.3
-2F+^88P4U 3023552752 3025823613 10.0.1.7
X;-F`(N?9D 570465234 572485994 10.0.1.5
R=F_D-K2a] 1287750228 1290935562 10.0.1.1
X*+2aaC.EG 3200948713 3201088518 10.0.1.3
[1ZXONX2]a 4108881567 4109865744 10.0.1.7
FL;\GWacaV 458449508 467374054 10.0.1.7
\MQ_XNT7L- 1259349383 1259509450 10.0.1.5
VD6D0]ba_\ 3842502950 3842588691 10.0.1.7
"""

# Couchbase SDK RFC 26: four servers of equal weight; ketama-hashes.json lists all
# 640 points with their owners, in point order.  Pinned here: its size, first and
# last entries, and the SHA-256 of its entries written one "point hostname\n" a line.
RFC26_SERVERS = [f"192.168.1.{i}:11210" for i in (101, 102, 103, 104)]
RFC26_SHA256 = "6fdb87ffcd8b912a40fdb882c39e9908bbdbbb4922387ed29b5726e2643f6742"

# Couchbase's KetamaRingTest.lastValueWinsIfCollision: one point both nodes have.
COLLIDING = ["example.com:11210", "example137723.com:11210"]
COLLISION_POINT = 1723476360


def owning_points(ring, hashes):
    """The point that owns each hash under the ring's rule (at or after; after for uhashring)."""
    points = np.asarray(ring.points)
    side = "right" if ring.hash == "ketama-uhashring" else "left"
    at = np.searchsorted(points, hashes, side=side)
    at[at == len(points)] = 0
    return at


# ------------------------------------------------------------ libketama


def test_libketama_test_sh_md5_of_a_million_keys():
    # libketama's test.sh: ketama_test prints its (empty) error line, then for keys
    # "0" .. "999999" the key's hash, the owning point and the server; the md5 of
    # that output is pinned in the script.
    ring = HashRing(KETAMA_SERVERS, hash="ketama")
    keys = [str(i) for i in range(1_000_000)]
    hashes = ring.hash_many(keys)
    owners = ring.lookup_many(keys)
    at = owning_points(ring, hashes)
    assert np.array_equal(np.asarray(ring.owners)[at], owners)
    points = np.asarray(ring.points)[at]
    names = ring.nodes
    lines = "".join(
        f"{h} {p} {names[o]}\n"
        for h, p, o in zip(hashes.tolist(), points.tolist(), owners.tolist())
    )
    assert hashlib.md5(("\n" + lines).encode()).hexdigest() == "5672b131391f5aa2b280936aec1eea74"


def test_libmemcached_ketama_cases():
    # libmemcached names a server's points "host-k" when its port is the default one.
    # Its fixture's server column follows libmemcached's own server indexing, so the
    # test checks what placement is made of: every key's hash and the point owning it.
    servers = {name.split(":")[0]: weight for name, weight in KETAMA_SERVERS.items()}
    ring = HashRing(servers, hash="ketama")
    cases = [line.split() for line in LIBMEMCACHED_CASES.strip().splitlines()]
    assert len(cases) == 99
    keys = [key for key, _, _, _ in cases]
    hashes = ring.hash_many(keys)
    points = np.asarray(ring.points)[owning_points(ring, hashes)]
    for (key, key_hash, point, _host), h, p in zip(cases, hashes.tolist(), points.tolist()):
        assert (h, p) == (int(key_hash), int(point)), key
    # "VDEAAAAA" hashes past the last point and wraps to the first.
    assert ring.hash_key("VDEAAAAA") == 0xFFFCD1B5 > int(np.asarray(ring.points)[-1])
    assert ring.get_node("VDEAAAAA") == ring.nodes[int(np.asarray(ring.owners)[0])]


@pytest.mark.parametrize("hash", ["ketama", "ketama-uhashring"])
def test_couchbase_rfc26_ketama_hashes(hash):
    ring = HashRing(RFC26_SERVERS, hash=hash)
    points = np.asarray(ring.points).tolist()
    owners = [ring.nodes[o] for o in np.asarray(ring.owners).tolist()]
    assert len(points) == 640 and len(set(points)) == 640
    assert (points[0], owners[0]) == (19069626, "192.168.1.104:11210")
    assert (points[-1], owners[-1]) == (4294628205, "192.168.1.102:11210")
    listing = "".join(f"{p} {o}\n" for p, o in zip(points, owners))
    assert hashlib.sha256(listing.encode()).hexdigest() == RFC26_SHA256
    # Couchbase's wrapsAround: a hash above the last point belongs to the first point's owner.
    past_last = next(
        k for k in (f"w{i}" for i in itertools.count()) if ring.hash_key(k) > points[-1]
    )
    assert ring.get_node(past_last) == "192.168.1.104:11210"


def keys_owned_by_point(ring, point):
    """Keys whose hash lies in the arc the point owns (before it, after the point below)."""
    points = np.asarray(ring.points)
    below = int(points[np.searchsorted(points, point) - 1])
    found = []
    for i in itertools.count():
        key = f"c{i}"
        if below < ring.hash_key(key) < point:
            found.append(key)
            if len(found) == 3:
                return found


@pytest.mark.parametrize(
    "hash, names, winner",
    [
        ("ketama", COLLIDING, COLLIDING[0]),  # libketama: the server listed first
        ("ketama", COLLIDING[::-1], COLLIDING[1]),
        ("ketama-uhashring", COLLIDING, COLLIDING[1]),  # uhashring and Couchbase: the last
        ("ketama-uhashring", COLLIDING[::-1], COLLIDING[0]),
    ],
)
def test_a_colliding_point_goes_by_the_server_list(hash, names, winner):
    ring = HashRing(names, hash=hash)
    points = np.asarray(ring.points)
    assert len(points) == 320 and len(np.unique(points)) == 319  # the one collision
    first = int(np.searchsorted(points, COLLISION_POINT))
    assert points[first] == points[first + 1] == COLLISION_POINT
    assert ring.nodes[int(np.asarray(ring.owners)[first])] == winner
    for key in keys_owned_by_point(ring, COLLISION_POINT):
        assert ring.get_node(key) == winner
    ring._check()


def test_zero_digest_node_has_no_points_and_owns_no_key():
    # weight 1 of 1001 over 2 servers: floorf(1/1001 * 40 * 2) = 0 digests, as in libketama.
    ring = HashRing({"big": 1000, "tiny": 1}, hash="ketama")
    assert ketama_digest_counts([1000.0, 1.0]) == [79, 0]
    assert np.bincount(np.asarray(ring.owners), minlength=2).tolist() == [316, 0]
    keys = [f"k{i}" for i in range(20_000)]
    assert set(ring.lookup_many(keys).tolist()) == {0}
    assert ring.ownership() == {"big": 1.0, "tiny": 0.0}
    # A node without points still closes a preference list, so a list has
    # min(n, len(ring)) distinct nodes and a cluster can keep N copies.
    assert ring.get_nodes("k1", 2) == ["big", "tiny"]
    assert ring.get_nodes_many(keys[:5], 3).tolist() == [[0, 1]] * 5
    ring._check()


def test_ring_where_no_node_gets_a_digest_is_refused():
    # 41 equal servers with vnodes=4: floorf((float)(1/41) * 1 * 41) is floorf(0.99999994) = 0
    # for every one of them, so libketama would build an empty continuum.
    assert ketama_digest_counts([1.0] * 41, vnodes=4) == [0] * 41
    names = [f"n{i}" for i in range(41)]
    with pytest.raises(
        ValueError, match="vnodes=4 gives none of the 41 nodes a point with hash='ketama'"
    ):
        HashRing(names, vnodes=4, hash="ketama")
    ring = HashRing(names[:40], vnodes=4, hash="ketama")
    before = np.asarray(ring.points).copy()
    with pytest.raises(ValueError, match="vnodes=4 gives none of the 41 nodes a point"):
        ring.add(names[40])
    assert np.array_equal(ring.points, before) and len(ring) == 40
    # uhashring's integer arithmetic gives each of them 1 digest.
    assert len(HashRing(names, vnodes=4, hash="ketama-uhashring").points) == 4 * 41


def test_seven_equal_nodes_get_forty_digests_each():
    # In doubles, 1/7 * 40 * 7 = 39.99999... and floors to 39; libketama's
    # float32 arithmetic gives 40.  uhashring's integer arithmetic gives 40 too.
    ring = HashRing([f"n{i}" for i in range(7)], hash="ketama")
    assert np.bincount(np.asarray(ring.owners)).tolist() == [160] * 7
    assert 1 / 7 * 40 * 7 < 40  # the double-precision trap this guards against
    assert ketama_digest_counts([1.0] * 7) == [40] * 7


def test_sixty_one_equal_nodes_libketama_float32_and_uhashring_integers_differ():
    names = [f"n{i}" for i in range(61)]
    libketama = HashRing(names, hash="ketama")
    uh = HashRing(names, hash="ketama-uhashring")
    assert np.bincount(np.asarray(libketama.owners)).tolist() == [156] * 61
    assert np.bincount(np.asarray(uh.owners)).tolist() == [160] * 61
    assert ketama_digest_counts([1.0] * 61) == [39] * 61
    assert uhashring_digest_counts([1.0] * 61) == [40] * 61


def test_weighted_digest_counts_follow_libketama_float32_formula():
    weights = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 0.5}
    ring = HashRing(weights, hash="ketama")
    expected = ketama_digest_counts(list(weights.values()))
    assert np.bincount(np.asarray(ring.owners)).tolist() == [4 * d for d in expected]
    # pct = w / 6.5 in float32; floorf(pct * 40 * 4): a -> 24, b -> 49, c -> 73, d -> 12
    assert expected == [24, 49, 73, 12]


@pytest.mark.parametrize("hash", ["ketama", "ketama-uhashring"])
def test_ketama_vnodes_scale_the_forty(hash):
    ring = HashRing(["a", "b"], hash=hash, vnodes=80)
    assert np.bincount(np.asarray(ring.owners)).tolist() == [80, 80]
    with pytest.raises(
        ValueError, match=f"vnodes must be a multiple of 4 with hash='{hash}', got 10"
    ):
        HashRing(["a"], hash=hash, vnodes=10)


@pytest.mark.parametrize(
    "weights, digests",
    [
        ([1e-50] * 3, [39] * 3),  # float32 of 3 x 1.11e-50 scaled is not 3 x its float32
        ([1.0, 1e39], [0, 80]),
        ([1e300, 1e300], [40, 40]),
        ([5e-324, 1.0], [0, 80]),
        ([1e308, 1e308, 1e308], [40] * 3),
    ],
)
def test_weights_beyond_float32_are_scaled_not_failing(weights, digests, recwarn):
    # libketama would divide 0 by 0 (or inf by inf) in float32 here; the weights
    # are scaled by a power of two first, which changes nothing where it is finite.
    nodes = {f"n{i}": w for i, w in enumerate(weights)}
    ring = HashRing(nodes, hash="ketama")
    ring._check()
    assert np.bincount(np.asarray(ring.owners), minlength=len(nodes)).tolist() == [
        4 * d for d in digests
    ]
    assert ketama_digest_counts(weights) == digests
    assert len(recwarn) == 0  # and no numpy RuntimeWarning on the way


def test_scaling_changes_no_count_where_float32_is_finite(rand):
    for _ in range(200):
        weights = [float(rand.randint(1, 5000)) for _ in range(rand.randint(1, 40))]
        factor = 2.0 ** rand.randint(-60, 60)
        assert ketama_digest_counts([w * factor for w in weights]) == ketama_digest_counts(weights)


@pytest.mark.parametrize("hash", ["ketama", "ketama-uhashring"])
def test_ketama_ring_equals_reference_with_weights(rand, hash):
    weights = {f"n{i}": rand.choice([0.5, 1.0, 1.5, 3.0, 0.01]) for i in range(9)}
    ring = HashRing(weights, hash=hash)
    ref = ReferenceRing(weights, hash=hash)
    for i in range(3000):
        key = f"k{i}-{rand.random()}"
        assert ring.get_node(key) == ref.get_node(key), rand
        assert ring.get_nodes(key, 9) == ref.get_nodes(key, 9), rand


# ------------------------------------------------------------ uhashring


uhashring = pytest.importorskip("uhashring")


def uhashring_ring(weights, vnodes=160):
    nodes = {name: {"weight": w, "vnodes": vnodes // 4} for name, w in weights.items()}
    return uhashring.HashRing(nodes, hash_fn="ketama")


node_names = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=10
)


@given(
    weights=st.dictionaries(node_names, st.integers(1, 400), min_size=1, max_size=12),
    vnodes=st.sampled_from([4, 40, 160]),
    keys=st.lists(st.text(max_size=20), min_size=1, max_size=40),
)
def test_ketama_uhashring_equals_uhashring(weights, vnodes, keys):
    ring = HashRing(weights, vnodes=vnodes, hash="ketama-uhashring")
    theirs = uhashring_ring(weights, vnodes)
    # Keys equal to a point too: "{name}-0" hashes to that node's first point.
    probes = keys + [f"{name}-0" for name in weights]
    assert [ring.get_node(k) for k in probes] == [theirs.get_node(k) for k in probes]


@pytest.mark.parametrize("node_count", [1, 2, 7, 25, 61])
def test_ketama_uhashring_equals_uhashring_on_many_keys(node_count):
    names = {f"cache-{i:02d}.example:11211": 1 for i in range(node_count)}
    ring = HashRing(names, hash="ketama-uhashring")
    theirs = uhashring_ring(names)
    keys = [f"user:{i}:profile" for i in range(20_000)]
    mine = ring.lookup_many(keys).tolist()
    assert [ring.nodes[i] for i in mine] == [theirs.get_node(k) for k in keys]


def test_uhashring_takes_the_point_after_an_equal_hash():
    names = {"a": 1, "b": 1, "c": 1}
    uh = HashRing(names, hash="ketama-uhashring")
    lk = HashRing(names, hash="ketama")
    theirs = uhashring_ring(names)
    # "a-0" hashes exactly to one of a's points: at-or-after gives a, after gives the next owner.
    assert lk.hash_key("a-0") in set(np.asarray(lk.points).tolist())
    assert lk.get_node("a-0") == "a"
    assert uh.get_node("a-0") == theirs.get_node("a-0")
    points = np.asarray(uh.points)
    after = int(np.searchsorted(points, uh.hash_key("a-0"), side="right")) % len(points)
    assert uh.get_node("a-0") == uh.nodes[int(np.asarray(uh.owners)[after])]


def test_couchbase_collision_case_matches_uhashring():
    theirs = uhashring_ring(dict.fromkeys(COLLIDING, 1))
    ring = HashRing(COLLIDING, hash="ketama-uhashring")
    keys = keys_owned_by_point(ring, COLLISION_POINT)
    assert [theirs.get_node(k) for k in keys] == [COLLIDING[1]] * 3
    assert [ring.get_node(k) for k in keys] == [COLLIDING[1]] * 3
