"""Row d: the product itself — a SynapseOps Kafka → Kafka flow through the whole road.

In a throwaway database on the bench's PostgreSQL server (migrated like any other), it creates
a Kafka-sourced endpoint on the input topic, a Kafka target producing to the output topic keyed
by the mapped ``source_order_id``, the golden Shopify → ERP mapping (``bench.peers.work``) and
the flow; then runs ``synapseops worker`` (group ``--group``, only the ``integration-delivery``
pipeline and its Kafka-source forwarder) as its child until SIGTERM, when it stops the worker
and drops the database. Every order takes the real path: the Kafka-source reader delivers it
where it reads it (``streams/integration/topic_delivery.py``; each partition in its lane beside
the poll), through the delivery pipeline on the road (routing headers, retry tiers and dead
letters, a Run written before and after), the produce to the target, the commit after. The
output values are the engine's bytes exactly, like every other row's.

    python -m bench.peers.synapseops_peer --bootstrap H:P --input T --output T --group G \\
        --database-url URL --work-dir DIR
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from types import FrameType

import httpx
import sqlalchemy
from confluent_kafka import Consumer, TopicPartition
from sqlalchemy.engine import make_url

from bench.peers.args import peer_parser
from bench.peers.work import MAPPING
from sinks.integration import store
from sinks.integration.tables import connectors, endpoints, flows
from sinks.migrate import upgrade
from synapseops.kafka import consumer_config
from synapseops.settings import KafkaSettings
from topics.registry import INTEGRATION_DELIVERY, INTEGRATION_EVENTS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_flow(url: str, input_topic: str, output_topic: str) -> int:
    """The flow input topic → mapping → output topic in the database at ``url``; its id."""
    engine = sqlalchemy.create_engine(url)
    try:
        # Names of their own: integration.events keeps earlier runs' records, which a new
        # group reads too; they must not match this run's endpoint.
        suffix = uuid.uuid4().hex[:8]
        shop = store.insert_row(engine, connectors, {"name": f"shop-{suffix}", "protocol": "kafka"})
        erp = store.insert_row(engine, connectors, {"name": f"erp-{suffix}", "protocol": "kafka"})
        source = store.insert_row(
            engine,
            endpoints,
            {"connector_id": shop["id"], "name": "orders", "direction": "source",
             "kafka_topic": input_topic},
        )  # fmt: skip
        target = store.insert_row(
            engine,
            endpoints,
            {"connector_id": erp["id"], "name": "orders", "direction": "target",
             "kafka_topic": output_topic, "config": {"key": "source_order_id"}},
        )  # fmt: skip
        mapping = store.create_mapping(
            engine, name="shopify-erp", rules=json.loads(MAPPING.read_text())
        )
        flow = store.insert_row(
            engine,
            flows,
            {"name": "orders", "source_endpoint_id": source["id"],
             "target_endpoint_id": target["id"], "mapping_id": mapping["id"]},
        )  # fmt: skip
        return int(flow["id"])
    finally:
        engine.dispose()


BATCH_SIZES = "batch_sizes.txt"  # next to the worker's folder; the harness adds it to the row


def _write_batch_sizes(metrics_url: str, path: Path) -> None:
    """The delivery pipeline's batches as the worker counted them
    (``synapseops_road_batch_records``): how many, and records per batch on average."""
    try:
        text = httpx.get(metrics_url, timeout=5).text
    except httpx.HTTPError:
        return
    figures: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("synapseops_road_batch_records_") and INTEGRATION_DELIVERY in line:
            name, _, value = line.rpartition(" ")
            figures[name.split("{")[0].rsplit("_", 1)[1]] = float(value)
    count, total = figures.get("count", 0.0), figures.get("sum", 0.0)
    if count:
        path.write_text(f"{count:,.0f} batches, {total / count:,.1f} records each on average")


def start_at_end(bootstrap: str, group: str, topics: tuple[str, ...]) -> None:
    """Commit ``group``'s offsets at the end of ``topics``: ``integration.events`` keeps every
    earlier run's records, which a new group would otherwise read (and skip: not this run's
    endpoint) before this run's, their CPU counted as this row's."""
    consumer = Consumer(consumer_config(KafkaSettings(bootstrap=bootstrap), group))
    try:
        known = consumer.list_topics(timeout=10).topics
        ends = []
        for topic in topics:
            for partition in known[topic].partitions if topic in known else ():
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition))
                ends.append(TopicPartition(topic, partition, high))
        if ends:
            consumer.commit(offsets=ends, asynchronous=False)
    finally:
        consumer.close()


def main() -> int:
    parser = peer_parser(__doc__ or "")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--work-dir", required=True, type=Path)
    args = parser.parse_args()
    server = make_url(args.database_url)
    name = f"bench_flow_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    worker: subprocess.Popen[bytes] | None = None
    try:
        upgrade(url)
        make_flow(url, args.input, args.output)
        start_at_end(args.bootstrap, args.group, (INTEGRATION_EVENTS.name,))
        env = {
            **os.environ,
            "SYNAPSEOPS_KAFKA_BOOTSTRAP": args.bootstrap,
            "SYNAPSEOPS_DATABASE_URL": url,
            "SYNAPSEOPS_WORKER_GROUP_ID": args.group,
            "SYNAPSEOPS_WORKER_PIPELINES": INTEGRATION_DELIVERY,
            "SYNAPSEOPS_WORKER_METRICS_PORT": str(_free_port()),
            "SYNAPSEOPS_DATA_DIR": str(args.work_dir),
        }
        cli = Path(sys.executable).with_name("synapseops")
        worker = subprocess.Popen([str(cli), "worker"], env=env)
        metrics = f"http://127.0.0.1:{env['SYNAPSEOPS_WORKER_METRICS_PORT']}/metrics"

        def stop(signum: int, frame: FrameType | None) -> None:
            if worker is not None and worker.poll() is None:
                _write_batch_sizes(metrics, args.work_dir.parent / BATCH_SIZES)
                worker.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            return worker.wait(timeout=None)
        except subprocess.TimeoutExpired:  # pragma: no cover - no timeout given
            return 1
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
