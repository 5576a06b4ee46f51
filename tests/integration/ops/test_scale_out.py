"""Scale-out under steady load: one worker, three more join mid-run, then two are killed -9.

Signed-off ``payment_intent.succeeded`` events (one new payment each, built from the real
Stripe fixtures) go to ``payments.stripe.events`` at a steady :data:`RATE_PER_S` for the whole
run, straight from a producer (the API is not what is under test here, and leaving it out
keeps four workers within two cores). The workers are real ``synapseops worker`` processes of
one consumer group, payments pipeline only, booking on the sandbox finance ledger:

1. one worker takes every partition;
2. three more start together: the group rebalances onto four;
3. two of them are killed with SIGKILL: no leave, no commit; their partitions move once the
   broker's session timeout has passed, and their uncommitted records are done again.

Counted by settlement id at the end: every event sent has exactly one ledger entry (lost 0,
doubled 0). The group really spread: at least three of the four workers booked records
(Faust's assignor gives six partitions to four members as 2, 2, 2, 0).

The processing gap at each rebalance is measured per partition from the ledger: the longest
time a partition had a record waiting (sent, not booked) and booked nothing, among bookings in
the seconds after the change. It is printed beside the same figure for the steady phase before
it. Nothing about time is asserted (the figures are the report's).

What a gap is made of is measured too: a thread watches the group's state at the broker's
coordinator (``describe_consumer_groups`` every 0.2 s). After a change it prints how long
the coordinator took to notice a kill -9 (the session timeout running out:
``PreparingRebalance`` begins), how long the rebalance took (until ``Stable`` again, with its
member count), and how long after that the stalled partition booked again (Faust's
assignment handling, and redoing what the dead member had not committed); for the join,
every rebalance the three joiners caused (each member joining is one) and its duration.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from confluent_kafka import ConsumerGroupState, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient

from sandbox.harness import SandboxServer
from synapseops.kafka import producer_config
from synapseops.settings import KafkaSettings, RetrySettings, Settings
from tests.integration.databases import fresh_database
from tests.integration.groups import start_groups_at_end
from tests.integration.ops.traffic import wait_until
from tests.integration.payments.factory import PaymentFactory
from tests.integration.worker_process import WorkerProcess
from topics.admin import apply_topics
from topics.registry import STRIPE_EVENTS

pytestmark = pytest.mark.integration

RATE_PER_S = float(os.environ.get("SYNAPSEOPS_SCALE_OUT_RATE", "20"))
TIERS = "1s,2s,3s"
STEADY_S = 12.0  # one worker alone, then four, then two: each phase this long at least
AFTER_KILL_S = 20.0  # past the session timeout (6 s) and the rebalance after it
WINDOW_S = 20.0  # bookings this long after a change count towards its gap
SETTLED_WITHIN_S = 180.0


@dataclass
class Load:
    """Every settlement sent: when, and to which partition (from its delivery report)."""

    sent_at: dict[str, float] = field(default_factory=dict)
    partition: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, kafka: KafkaSettings) -> None:
        producer = Producer(producer_config(kafka))
        begin, sent = time.monotonic(), 0
        while not self.stop.is_set():
            time.sleep(max(0.0, begin + sent / RATE_PER_S - time.monotonic()))
            payment = PaymentFactory(amount=4200)
            event, sid = payment.succeeded(), payment.charge_settlement

            def delivered(err: KafkaError | None, msg: Message, sid: str = sid) -> None:
                with self.lock:
                    if err is not None:
                        self.failed.append(sid)
                    else:
                        self.partition[sid] = int(msg.partition() or 0)

            with self.lock:
                self.sent_at[sid] = time.time()
            producer.produce(
                STRIPE_EVENTS.name,
                event.body,
                key=event.key.encode(),
                headers=event.headers(),  # type: ignore[arg-type]
                on_delivery=delivered,
            )
            producer.poll(0)
            sent += 1
        assert producer.flush(60) == 0


@dataclass
class GroupWatch:
    """The group's state at the coordinator over time: ``(time, state, members)`` at each
    change, from a thread polling ``describe_consumer_groups``."""

    kafka: KafkaSettings
    group: str
    changes: list[tuple[float, str, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.kafka.bootstrap})
        while not self.stop.wait(0.2):
            try:
                described = admin.describe_consumer_groups([self.group])[self.group].result(5)
            except KafkaException:
                continue
            now = (time.time(), str(described.state.name), len(described.members))
            if not self.changes or self.changes[-1][1:] != now[1:]:
                self.changes.append(now)

    def phases(self, since: float, members: int) -> tuple[float, float] | None:
        """After ``since``: (seconds until a rebalance began, seconds it took until the group
        was stable with ``members``), or None when the watch did not see both."""
        began = next((t for t, state, _ in self.changes if t >= since and state != STABLE), None)
        if began is None:
            return None
        stable = next(
            (t for t, state, n in self.changes if t > began and state == STABLE and n == members),
            None,
        )
        return None if stable is None else (began - since, stable - began)

    def rebalances(self, since: float, until: float) -> list[tuple[float, float, int]]:
        """Each rebalance begun in ``[since, until]``: (start after ``since``, its duration
        until the group was stable again, the members then)."""
        found, began = [], None
        for t, state, members in self.changes:
            if state != STABLE and began is None and since <= t <= until:
                began = t
            elif state == STABLE and began is not None:
                found.append((round(began - since, 2), round(t - began, 2), members))
                began = None
        return found


STABLE = ConsumerGroupState.STABLE.name


def phases_text(watch: GroupWatch, since: float, members: int, resumed: float) -> str:
    found = watch.phases(since, members)
    if found is None:
        return "phases not seen by the watch"
    noticed, rebalance = found
    after = resumed - (since + noticed + rebalance)
    return (
        f"coordinator noticed after {noticed:.2f}s, rebalance {rebalance:.2f}s, partition "
        f"booking again {after:.2f}s after the group was stable"
    )


def booked_at(entry: dict[str, object]) -> float:
    return datetime.fromisoformat(str(entry["created_at"]).replace("Z", "+00:00")).timestamp()


def longest_stall(
    entries: list[dict[str, object]], load: Load, since: float, until: float
) -> tuple[float, int, float]:
    """The longest time one partition had a record waiting and booked nothing, over bookings
    in ``[since, until]``; with the partition it was on and when it booked again."""
    per_partition: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for entry in entries:
        sid = str(entry["key"])
        if sid in load.partition:
            per_partition[load.partition[sid]].append((booked_at(entry), load.sent_at[sid]))
    worst, where, resumed = 0.0, -1, since
    for partition, bookings in per_partition.items():
        bookings.sort()
        for (previous, _), (booked, sent) in zip(bookings, bookings[1:], strict=False):
            if since <= booked <= until:
                stall = booked - max(previous, sent)
                if stall > worst:
                    worst, where, resumed = stall, partition, booked
    return worst, where, resumed


def booked_by(worker: WorkerProcess) -> float:
    done = 0.0
    for line in worker.metrics().splitlines():
        if line.startswith("synapseops_road_records_total{") and 'outcome="done"' in line:
            done += float(line.split()[-1])
    return done


def test_workers_join_and_die_under_load_and_every_payment_is_booked_exactly_once(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    kafka = KafkaSettings(bootstrap=kafka_bootstrap)
    apply_topics(Settings(kafka=kafka, retry=RetrySettings(tiers=TIERS)))
    group = f"t-scale-{uuid4().hex[:8]}"
    start_groups_at_end(kafka, group, TIERS)
    with fresh_database(database_url, "t_payments") as database, SandboxServer() as sandbox:
        workers = []
        for n in range(4):
            data_dir = tmp_path / f"worker-{n}"
            data_dir.mkdir()
            workers.append(
                WorkerProcess(
                    kafka_bootstrap,
                    database,
                    data_dir,
                    tiers=TIERS,
                    group_id=group,
                    extra_env={
                        "SYNAPSEOPS_LOG_LEVEL": "WARNING",
                        "SYNAPSEOPS_WORKER_PIPELINES": "payment-settlement",
                        "SYNAPSEOPS_PAYMENTS_FINANCE_URL": f"{sandbox.url}/finance",
                    },
                )
            )
        first, joining, doomed = workers[0], workers[1:], workers[1:3]
        load = Load()
        sender = threading.Thread(target=load.run, args=(kafka,), daemon=True)
        watch = GroupWatch(kafka, group)
        watcher = threading.Thread(target=watch.run, daemon=True)
        watcher.start()
        try:
            first.start()
            first.wait_healthy()
            sender.start()
            time.sleep(STEADY_S)
            scaled_at = time.time()
            for worker in joining:
                worker.start()
            for worker in joining:
                worker.wait_healthy()
            healthy_s = time.time() - scaled_at
            time.sleep(STEADY_S)
            spread = [booked_by(worker) for worker in workers]
            killed_at = time.time()
            for worker in doomed:
                worker.kill_9()
            time.sleep(AFTER_KILL_S)
            load.stop.set()
            sender.join(60)
            assert not sender.is_alive(), "the sender did not finish"
            sent = set(load.sent_at)

            def ledger() -> list[dict[str, object]]:
                answer = httpx.get(f"{sandbox.url}/_sandbox/finance/ledger", timeout=60)
                entries: list[dict[str, object]] = answer.json()["entries"]
                return entries

            wait_until(
                lambda: sent <= {str(e["key"]) for e in ledger()},
                f"{len(sent)} payments booked",
                SETTLED_WITHIN_S,
            )
            time.sleep(3)  # anything booked twice after the last one shows up too
            entries = ledger()
        finally:
            load.stop.set()
            watch.stop.set()
            for worker in workers:
                worker.stop()
            for n, worker in enumerate(workers):
                print(f"--- worker {n}\n{worker.log_tail(1200)}")

    keys = Counter(str(entry["key"]) for entry in entries)
    lost = sorted(sent - set(keys))
    doubled = sorted(key for key, count in keys.items() if count > 1)
    phantom = sorted(set(keys) - sent)
    steady = longest_stall(entries, load, scaled_at - STEADY_S + 3, scaled_at)
    # The join's window ends at the kill: a slow start leaves less than WINDOW_S before it.
    joined_until = min(scaled_at + healthy_s + WINDOW_S, killed_at)
    up = longest_stall(entries, load, scaled_at, joined_until)
    down = longest_stall(entries, load, killed_at, killed_at + WINDOW_S)
    timeouts = KafkaSettings()  # what the workers run with (the same environment)
    print(
        f"\nscale-out at {RATE_PER_S:g} payments/s: {len(sent)} sent, {len(entries)} ledger "
        f"entries, lost {len(lost)}, doubled {len(doubled)}; records done per worker before "
        f"the kill {[int(n) for n in spread]}\n"
        f"processing gap per partition: steady {steady[0]:.2f}s; 1→4 workers (joined within "
        f"{healthy_s:.1f}s) {up[0]:.2f}s on p{up[1]}; 4→2 by kill -9 {down[0]:.2f}s on p{down[1]}\n"
        f"rebalances while joining (start s, duration s, members): "
        f"{watch.rebalances(scaled_at, joined_until)}\n"
        f"the kill's gap: {phases_text(watch, killed_at, 2, down[2])} (session timeout "
        f"{timeouts.session_timeout_s:g}s, heartbeat {timeouts.heartbeat_interval_s:g}s)\n"
        f"group states after the kill: "
        f"{[(round(t - killed_at, 2), st, n) for t, st, n in watch.changes if t >= killed_at]}"
    )
    assert load.failed == []
    assert (lost, doubled, phantom) == ([], [], [])
    # Faust's assignor keeps what each member had up to ceil(6 / 4) = 2 partitions and fills
    # the members in order: 2, 2, 2, 0 is a valid outcome (three work, one stands by).
    busy = sum(1 for n in spread if n > 0)
    assert busy >= 3, f"the group did not spread: records done per worker {spread}"
