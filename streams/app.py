"""The Faust app factory. No module builds an app at import time; processes call this.

Topics are created by the registry (``topics.admin``), never by Faust: ``topic_allow_declare``
is off so a typo in a topic name fails loudly instead of creating a stray topic, and the
leader topic is disabled because no agent here needs leader election.
"""

from __future__ import annotations

import faust

from synapseops.settings import Settings


def broker_url(settings: Settings) -> str:
    """``kafka://host:port;host:port`` from ``SYNAPSEOPS_KAFKA_BOOTSTRAP``."""
    servers = [part.strip() for part in settings.kafka.bootstrap.split(",") if part.strip()]
    return ";".join(f"kafka://{server}" for server in servers)


def create_app(settings: Settings) -> faust.App:
    return faust.App(
        settings.worker.group_id,
        broker=broker_url(settings),
        broker_client_id=settings.kafka.client_id,
        store="memory://",
        web_enabled=False,
        topic_disable_leader=True,
        topic_allow_declare=False,
        # acks=all: a record Faust produces counts only once every in-sync replica has it.
        producer_acks=-1,
        # A worker killed with -9 gives its partitions up after this, not after Faust's 60 s.
        broker_session_timeout=settings.kafka.session_timeout_s,
        broker_heartbeat_interval=settings.kafka.heartbeat_interval_s,
        # A re-created input topic is assigned again within this (synapseops/settings).
        consumer_metadata_max_age_ms=int(settings.kafka.metadata_max_age_s * 1000),
        # A new consumer group starts from the oldest retained record: nothing accepted at
        # ingress before the first worker ran is skipped.
        consumer_auto_offset_reset="earliest",
        # Faust's own data dir (tables' changelog state) lives under the project's data folder.
        datadir=str(settings.data_dir / "faust"),
        autodiscover=False,
        # Bounded intake (streams/road/intake.py): each partition's queue holds at most this
        # many records; Faust pauses the partition at 80% of it. One poll adds at most a fifth
        # of it to a queue, so it never overfills one and stalls the conductor for the rest.
        stream_buffer_maxsize=settings.road.buffer_records,
        broker_max_poll_records=max(1, settings.road.buffer_records // 5),
    )
