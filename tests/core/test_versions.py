"""Version stamps: the hybrid logical clock, version layout, tombstones and records."""

from __future__ import annotations

import pickle
import threading
import time
from itertools import pairwise

import pytest

from cvstore._direct import Stamp, stamper
from cvstore.versions import (
    COUNTER_BITS,
    TOMBSTONE,
    HybridClock,
    Record,
    version_from_hex,
    version_hex,
    version_wall_ms,
)


class FakeWall:
    """A wall clock the test moves by hand (milliseconds)."""

    def __init__(self, ms: int = 1_700_000_000_000) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


class TestHybridClock:
    def test_stamps_strictly_increase_while_the_wall_clock_stands_still(self):
        clock = HybridClock(writer_id=1, wall_ms=FakeWall())
        stamps = [clock.now() for _ in range(1000)]
        assert stamps == sorted(stamps)
        assert len(set(stamps)) == len(stamps)

    def test_stamps_follow_the_wall_clock_when_it_moves_forward(self):
        wall = FakeWall()
        clock = HybridClock(writer_id=1, wall_ms=wall)
        clock.now()
        wall.ms += 5
        assert version_wall_ms(clock.now()) == wall.ms

    def test_stamps_keep_increasing_when_the_wall_clock_goes_back(self):
        wall = FakeWall()
        clock = HybridClock(writer_id=1, wall_ms=wall)
        before = clock.now()
        wall.ms -= 60_000
        after = clock.now()
        assert after > before
        assert version_wall_ms(after) == version_wall_ms(before)  # the counter moved instead

    def test_counter_overflow_borrows_the_next_millisecond(self):
        wall = FakeWall()
        clock = HybridClock(writer_id=1, wall_ms=wall)
        stamps = [clock.now() for _ in range(70_000)]  # more than 2**16 in one ms
        assert all(b > a for a, b in pairwise(stamps))
        assert version_wall_ms(stamps[-1]) == wall.ms + 1

    def test_writer_id_is_the_low_32_bits_and_breaks_ties(self):
        wall = FakeWall()
        a = HybridClock(writer_id=1, wall_ms=wall).now()
        b = HybridClock(writer_id=2, wall_ms=wall).now()
        assert a & 0xFFFFFFFF == 1 and b & 0xFFFFFFFF == 2
        assert a >> 32 == b >> 32 and b > a

    def test_observe_moves_past_a_version_from_a_clock_that_runs_ahead(self):
        ahead = HybridClock(writer_id=9, wall_ms=FakeWall(2_000_000_000_000)).now()
        clock = HybridClock(writer_id=1, wall_ms=FakeWall())
        clock.observe(ahead)
        assert clock.now() > ahead

    def test_observe_of_an_older_version_changes_nothing(self):
        clock = HybridClock(writer_id=1, wall_ms=FakeWall())
        a = clock.now()
        clock.observe(a - (5 << 32))
        assert clock.now() == a + (1 << 32)

    def test_now_many_gives_consecutive_stamps_above_the_last(self):
        clock = HybridClock(writer_id=3, wall_ms=FakeWall())
        first = clock.now()
        batch = clock.now_many(5)
        assert batch == [first + (i << 32) for i in range(1, 6)]
        assert clock.now() > batch[-1]
        assert clock.now_many(0) == []

    def test_time_ms_reads_the_wall_clock_given(self):
        wall = FakeWall(12345)
        assert HybridClock(wall_ms=wall).time_ms() == 12345
        assert abs(HybridClock().time_ms() - HybridClock().time_ms()) < 60_000

    def test_default_clock_stamps_carry_the_real_time(self):
        clock = HybridClock()
        assert abs(version_wall_ms(clock.now()) - clock.time_ms()) < 60_000

    def test_threads_never_get_the_same_stamp(self):
        clock = HybridClock(writer_id=1)
        out: list[list[int]] = [[] for _ in range(4)]

        def work(i: int) -> None:
            out[i].extend(clock.now() for _ in range(5000))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stamps = [s for part in out for s in part]
        assert len(set(stamps)) == len(stamps)
        assert all(part == sorted(part) for part in out)

    @pytest.mark.parametrize("bad", [-1, 2**32])
    def test_writer_id_out_of_range(self, bad):
        with pytest.raises(ValueError, match=rf"writer_id must be in \[0, 2\*\*32\), got {bad}"):
            HybridClock(writer_id=bad)

    def test_writer_id_must_be_an_int(self):
        with pytest.raises(TypeError, match="writer_id must be an int, got str"):
            HybridClock(writer_id="1")  # type: ignore[arg-type]

    def test_wall_ms_must_be_callable(self):
        with pytest.raises(TypeError, match="wall_ms must be callable, got int"):
            HybridClock(wall_ms=5)  # type: ignore[arg-type]


class TestLayout:
    def test_hex_has_fixed_width_and_string_order_is_version_order(self):
        clock = HybridClock(writer_id=0xFFFFFFFF)
        a, b = clock.now(), clock.now()
        assert len(version_hex(a)) == 24 and len(version_hex(1)) == 24
        assert version_hex(1) < version_hex(a) < version_hex(b)
        assert version_from_hex(version_hex(b)) == b
        assert version_from_hex(version_hex(b).encode()) == b

    def test_wall_ms_round_trips(self):
        clock = HybridClock(writer_id=7, wall_ms=FakeWall(1_234_567))
        assert version_wall_ms(clock.now()) == 1_234_567


class TestRecords:
    def test_tombstone_is_a_singleton_that_survives_pickling(self):
        assert pickle.loads(pickle.dumps(TOMBSTONE)) is TOMBSTONE
        assert type(TOMBSTONE)() is TOMBSTONE
        assert repr(TOMBSTONE) == "TOMBSTONE"

    def test_record_fields_and_deleted(self):
        live, dead = Record(5, "v"), Record(6, TOMBSTONE)
        assert (live.version, live.value, live.deleted) == (5, "v", False)
        assert dead.deleted
        assert pickle.loads(pickle.dumps(dead)).deleted

    def test_record_built_as_a_plain_tuple_is_the_same(self):
        # The cluster builds records with tuple.__new__ on its hot path.
        fast = tuple.__new__(Record, (5, "v"))
        assert fast == Record(5, "v") and type(fast) is Record and fast.value == "v"


class TestCompiledStamp:
    """cvstore._direct.Stamp: HybridClock.now compiled, for the drivers' writes on the system clock."""

    def test_the_drivers_stamp_with_it_only_on_the_system_clock(self):
        assert type(stamper(HybridClock())) is Stamp
        fake = HybridClock(wall_ms=lambda: 5)
        assert stamper(fake) == fake.now

    def test_its_stamps_and_the_clocks_increase_together(self):
        clock = HybridClock(writer_id=9)
        stamp = Stamp(clock)
        before = time.time_ns() // 1_000_000
        seen = [stamp(), clock.now(), stamp(), *clock.now_many(3), stamp()]
        after = time.time_ns() // 1_000_000
        assert seen == sorted(set(seen))
        assert all(v & 0xFFFFFFFF == 9 for v in seen)
        assert before <= version_wall_ms(seen[0]) <= version_wall_ms(seen[-1]) <= after
        ahead = ((after + 60_000) << (COUNTER_BITS + 32)) | 1  # a writer a minute ahead
        clock.observe(ahead)
        assert stamp() > ahead

    def test_threads_stamping_both_ways_never_repeat_a_version(self):
        clock = HybridClock(writer_id=1)
        stamp = Stamp(clock)
        out: list[list[int]] = [[] for _ in range(4)]

        def work(i):
            call = stamp if i % 2 else clock.now
            out[i].extend(call() for _ in range(3000))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        every = [v for part in out for v in part]
        assert len(set(every)) == len(every)
        assert all(part == sorted(part) for part in out)
