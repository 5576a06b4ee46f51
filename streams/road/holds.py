"""What a tier consumer holds, and how far each partition may be committed. Pure bookkeeping.

Per partition: the not-yet-due records held in memory (earliest due first), the offsets taken
but not finished (held or running), and the offset after the last record taken. The commit
point of a partition is its lowest unfinished offset (or, with none, the next one to read):
committing never passes a record that is not done. A partition holding ``capacity`` records
(or ``max_bytes`` of values) is *paused*: records the consumer fetched for it meanwhile are not
taken (:meth:`Holds.take` says no) and are read again from :meth:`Holds.finish`'s resume
offset once it has room. :mod:`streams.road.tier_consumer` does the Kafka side.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field

from streams.road.record import RoadRecord

Partition = tuple[str, int]


@dataclass
class _Partition:
    held: list[tuple[int, int, RoadRecord]] = field(default_factory=list)  # (due, offset, rec)
    # Offsets taken and not finished, in the order taken (ascending: :meth:`Holds.take` takes
    # only offsets past the last one), and those finished behind the lowest unfinished one:
    # the commit point is the head once finished heads are popped, O(1) per record (a min()
    # over a set was O(n) per record, O(n²) for a tier's full batch of 500).
    taken: deque[int] = field(default_factory=deque)
    finished: set[int] = field(default_factory=set)
    next_offset: int | None = None
    held_bytes: int = 0
    paused: bool = False


@dataclass(frozen=True)
class Finished:
    """After a record is done: the offset its partition may be committed to, and the offset
    to resume fetching from when the partition was paused and now has room (else None)."""

    commit_offset: int
    resume_at: int | None


class Holds:
    def __init__(self, capacity: int, max_bytes: int | None = None) -> None:
        if capacity < 1:
            raise ValueError("a tier consumer holds at least one record per partition")
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._partitions: dict[Partition, _Partition] = {}

    def take(self, record: RoadRecord) -> bool:
        """Whether ``record`` is taken (then it is unfinished until :meth:`finish`): not when
        its partition is paused or it was taken before (read again after a seek)."""
        state = self._partitions.setdefault((record.topic, record.partition), _Partition())
        if state.paused or (state.next_offset is not None and record.offset < state.next_offset):
            return False
        state.next_offset = record.offset + 1
        state.taken.append(record.offset)
        return True

    def hold(self, record: RoadRecord, due_ms: int) -> bool:
        """Keep a taken record until ``due_ms``; ``True`` when its partition must now pause."""
        state = self._partitions[(record.topic, record.partition)]
        heapq.heappush(state.held, (due_ms, record.offset, record))
        state.held_bytes += len(record.value or b"")
        full = len(state.held) >= self.capacity or (
            self.max_bytes is not None and state.held_bytes >= self.max_bytes
        )
        if full and not state.paused:
            state.paused = True
            return True
        return False

    def earliest_due(self) -> int | None:
        dues = [state.held[0][0] for state in self._partitions.values() if state.held]
        return min(dues) if dues else None

    def due(self, now_ms: int) -> list[tuple[RoadRecord, int]]:
        """Take out every held record due by ``now_ms``, earliest first, with its due time."""
        found: list[tuple[int, int, RoadRecord]] = []
        for state in self._partitions.values():
            while state.held and state.held[0][0] <= now_ms:
                entry = heapq.heappop(state.held)
                state.held_bytes -= len(entry[2].value or b"")
                found.append(entry)
        found.sort(key=lambda entry: (entry[0], entry[1]))
        return [(record, due_ms) for due_ms, _, record in found]

    def finish(self, record: RoadRecord) -> Finished:
        """``record`` (taken before) is done: how far to commit, and whether to resume."""
        state = self._partitions[(record.topic, record.partition)]
        taken, finished = state.taken, state.finished
        if taken and record.offset >= taken[0]:
            finished.add(record.offset)
            while taken and taken[0] in finished:
                finished.discard(taken.popleft())
        assert state.next_offset is not None
        commit = taken[0] if taken else state.next_offset
        resume_at = None
        if state.paused and len(state.held) < self.capacity and not self._over_bytes(state):
            state.paused = False
            resume_at = state.next_offset
        return Finished(commit, resume_at)

    def drop(self, partition: Partition) -> bool:
        """Forget a revoked partition (its next owner reads it from the committed offset);
        ``True`` if it was paused."""
        state = self._partitions.pop(partition, None)
        return state is not None and state.paused

    def held_count(self, partition: Partition | None = None) -> int:
        if partition is not None:
            state = self._partitions.get(partition)
            return len(state.held) if state else 0
        return sum(len(state.held) for state in self._partitions.values())

    def _over_bytes(self, state: _Partition) -> bool:
        return self.max_bytes is not None and state.held_bytes >= self.max_bytes
