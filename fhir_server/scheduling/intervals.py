"""Interval math on half-open `(start, end)` integer epoch minutes (UTC).

Slot finding runs on plain ints so its inner loops stay cheap; datetimes are converted only at
the edges with `to_minutes` / `from_minutes`. Every interval is half-open: `(540, 600)` holds
minute 540 but not minute 600, so back-to-back intervals touch without overlapping, and an
interval with `start >= end` is empty and dropped by `normalize`.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

Interval = tuple[int, int]
SlotSpan = tuple[int, int, str]
"""A slot as `(start, end, id)`: the finder needs to know which slots cover a time."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NO_SUCCESSOR = -1


def to_minutes(moment: datetime) -> int:
    """Whole UTC epoch minutes of an aware datetime (seconds are floored)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} has no time zone; refusing to guess")
    return (moment - _EPOCH) // timedelta(minutes=1)


def from_minutes(minutes: int) -> datetime:
    """The aware UTC datetime of an epoch minute."""
    return _EPOCH + timedelta(minutes=minutes)


def normalize(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-empty intervals with overlapping and touching ones merged."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[0] < i[1]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def subtract(base: Iterable[Interval], removals: Iterable[Interval]) -> list[Interval]:
    """The parts of `base` outside every removal, as a two-pointer sweep over both sets."""
    cuts = normalize(removals)
    result: list[Interval] = []
    j = 0
    for start, end in normalize(base):
        while j < len(cuts) and cuts[j][1] <= start:
            j += 1  # cuts are merged and sorted, so one wholly before `start` is done for good
        k, cursor = j, start
        while k < len(cuts) and cuts[k][0] < end:
            if cuts[k][0] > cursor:
                result.append((cursor, cuts[k][0]))
            cursor = max(cursor, cuts[k][1])
            k += 1
        if cursor < end:
            result.append((cursor, end))
    return result


def intersect(a: Iterable[Interval], b: Iterable[Interval]) -> list[Interval]:
    """The times present in both sets, normalized."""
    left, right = normalize(a), normalize(b)
    result: list[Interval] = []
    i = j = 0
    while i < len(left) and j < len(right):
        start = max(left[i][0], right[j][0])
        end = min(left[i][1], right[j][1])
        if start < end:
            result.append((start, end))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return result


def overlaps(a: Interval, b: Interval) -> bool:
    """Whether two half-open intervals share a minute (touching ends do not)."""
    return a[0] < b[1] and b[0] < a[1] and a[0] < a[1] and b[0] < b[1]


def widen(interval: Interval, before: int, after: int) -> Interval:
    """The interval grown by buffers, e.g. cleaning time before and notes time after a visit."""
    if before < 0 or after < 0:
        raise ValueError("buffers cannot be negative")
    return interval[0] - before, interval[1] + after


def overlaps_any(starts: Sequence[int], ends: Sequence[int], interval: Interval) -> bool:
    """Whether `interval` meets a normalized set given as parallel start/end lists (bisect)."""
    if interval[0] >= interval[1]:
        return False
    i = bisect_right(starts, interval[1] - 1) - 1  # last interval starting before our end
    return i >= 0 and ends[i] > interval[0]


@dataclass(frozen=True, slots=True)
class SlotChains:
    """One schedule's slots, indexed to answer "which consecutive slots cover [s, e)?" fast.

    `reach[i]` is the furthest end reachable from slot i by following slots that start exactly
    where the previous one ends; `successor[i]` is the next slot on that furthest chain.
    """

    starts: tuple[int, ...]
    ends: tuple[int, ...]
    ids: tuple[str, ...]
    reach: tuple[int, ...]
    successor: tuple[int, ...]
    longest: int


def index_slots(slots: Iterable[SlotSpan]) -> SlotChains:
    """Sort one schedule's slots once and link each to the contiguous slot that follows it."""
    ordered = sorted(s for s in slots if s[0] < s[1])
    starts = [s[0] for s in ordered]
    ends = [s[1] for s in ordered]
    reach = ends[:]
    successor = [_NO_SUCCESSOR] * len(ordered)
    by_start: dict[int, list[int]] = {}
    for i, start in enumerate(starts):
        by_start.setdefault(start, []).append(i)
    for i in range(len(ordered) - 1, -1, -1):  # successors start later, so are already done
        for j in by_start.get(ends[i], ()):
            if reach[j] > reach[i]:
                reach[i], successor[i] = reach[j], j
    return SlotChains(
        starts=tuple(starts), ends=tuple(ends), ids=tuple(s[2] for s in ordered),
        reach=tuple(reach), successor=tuple(successor),
        longest=max((e - s for s, e in zip(starts, ends, strict=True)), default=0),
    )


def _chain_ids(chains: SlotChains, first: int, end: int) -> tuple[str, ...]:
    """Ids along the chain from `first` until a slot reaches `end`."""
    ids = [chains.ids[first]]
    current = first
    while chains.ends[current] < end:
        current = chains.successor[current]
        ids.append(chains.ids[current])
    return tuple(ids)


def covering_slots(chains: SlotChains, interval: Interval, *,
                   aligned: bool = False) -> tuple[str, ...] | None:
    """Ids of consecutive slots covering `interval` (the first starting at it if `aligned`)."""
    start, end = interval
    i = bisect_right(chains.starts, start) - 1
    # Only slots starting within `longest` minutes before `start` can still be running at it.
    while i >= 0 and chains.starts[i] + chains.longest > start:
        if aligned and chains.starts[i] != start:
            return None
        if chains.ends[i] > start and chains.reach[i] >= end:
            return _chain_ids(chains, i, end)
        i -= 1
    return None


def chain_runs(chains: SlotChains, duration: int) -> list[tuple[int, tuple[str, ...]]]:
    """Every slot start of an indexed schedule from which consecutive slots cover `duration`."""
    if duration <= 0:
        raise ValueError("duration must be positive")
    runs: list[tuple[int, tuple[str, ...]]] = []
    for i, start in enumerate(chains.starts):
        if chains.reach[i] >= start + duration and (not runs or runs[-1][0] != start):
            runs.append((start, _chain_ids(chains, i, start + duration)))
    return runs


def covering_runs(slots: Iterable[SlotSpan], duration: int) -> list[tuple[int, tuple[str, ...]]]:
    """Every slot start from which consecutive slots cover `duration` minutes, with their ids."""
    return chain_runs(index_slots(slots), duration)
