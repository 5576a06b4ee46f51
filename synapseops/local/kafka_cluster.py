"""A KRaft cluster of several brokers on one machine, for trying failover locally.

``synapseops kafka start --brokers 3`` runs three nodes, each a combined broker and
controller: the controller quorum is all three (a static quorum, ``controller.quorum.voters``),
so any one node may die — the other two keep a metadata majority and elect new partition
leaders. Separate controllers would cost three more JVMs on a laptop for no gain in what a
local cluster can show; with combined nodes, killing one kills a broker and a voter at once,
the harder case.

Layout under ``settings.data_dir``::

    kafka-cluster/brokers         how many nodes this cluster has (``stop``/``status`` read it)
    kafka-cluster/cluster.id      the id every node's storage is formatted with
    kafka-cluster/node-<n>/       server.properties, log4j2.yaml, data/ of node n
    logs/kafka-<n>.log, run/kafka-<n>.pid

Node ``n`` (1-based) listens on the bootstrap port + 2(n-1) and its controller on the
controller port + 2(n-1): with the defaults 9092/9093, 9094/9095 and 9096/9097. Each JVM gets
``heap`` (512 MiB: three fit a small machine). Internal topics and topics created without
their own settings get replication ``min(3, n)`` and ``min.insync.replicas`` one less (2 of
3): an ``acks=all`` write survives one node down. The platform's own topics take theirs from
``SYNAPSEOPS_KAFKA_REPLICATION_FACTOR`` / ``_MIN_INSYNC_REPLICAS`` (3 / 2 for this cluster;
:meth:`LocalCluster.environment` prints them with the bootstrap list).

A killed node loses its partition leaderships after ``broker.session.timeout.ms`` (6 s here,
9 s by default: a local failover should be seen quickly); restarted, it catches up and
rejoins every ISR, and :meth:`LocalCluster.under_replicated` falls back to 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaException

from synapseops.errors import ConfigurationError
from synapseops.kafka import create_admin
from synapseops.local.kafka_broker import LocalBroker, render_node_properties
from synapseops.local.processes import log_tail
from synapseops.settings import KafkaSettings, Settings

NODE_HEAP = "512m"
CLUSTER_DIR = "kafka-cluster"
# Failover within seconds (defaults: 2 s heartbeat, 9 s session).
FAILOVER = ("broker.heartbeat.interval.ms=1000", "broker.session.timeout.ms=6000")


@dataclass(frozen=True)
class NodeAddress:
    node_id: int
    host: str
    port: int
    controller_port: int


def node_addresses(kafka: KafkaSettings, brokers: int) -> list[NodeAddress]:
    """Where each of ``brokers`` nodes listens (module doc); refuses overlapping ports."""
    if brokers < 1 or brokers % 2 == 0:
        raise ConfigurationError(
            f"--brokers {brokers}: a controller quorum needs an odd number of nodes (1, 3, 5); "
            "an even one survives no more failures than one node fewer"
        )
    nodes = [
        NodeAddress(n, kafka.host, kafka.port + 2 * (n - 1), kafka.controller_port + 2 * (n - 1))
        for n in range(1, brokers + 1)
    ]
    ports = [p for node in nodes for p in (node.port, node.controller_port)]
    if len(set(ports)) != len(ports):
        raise ConfigurationError(
            f"the ports of {brokers} nodes overlap ({sorted(ports)}): node n listens on "
            "SYNAPSEOPS_KAFKA_BOOTSTRAP's port + 2(n-1) and SYNAPSEOPS_KAFKA_CONTROLLER_PORT "
            "+ 2(n-1); put the controller port at the bootstrap port + 1"
        )
    return nodes


class ClusterNode(LocalBroker):
    """One node of a :class:`LocalCluster`: a :class:`LocalBroker` with its own folders,
    ports, pid file and log, and the cluster's quorum and replication in its properties."""

    def __init__(
        self,
        settings: Settings,
        home: Path,
        address: NodeAddress,
        voters: str,
        *,
        heap: str,
        cache_dir: Path | None,
    ) -> None:
        kafka = settings.kafka.model_copy(
            update={
                "bootstrap": f"{address.host}:{address.port}",
                "controller_port": address.controller_port,
                "heap": heap,
            }
        )
        super().__init__(settings.model_copy(update={"kafka": kafka}), cache_dir=cache_dir)
        self.address = address
        self.voters = voters
        self.replication = min(3, voters.count("@"))
        self.config_dir = home / f"node-{address.node_id}"
        self.log_dir = self.config_dir / "data"
        self.server_properties = self.config_dir / "server.properties"
        self.log4j_config = self.config_dir / "log4j2.yaml"
        self.log_path = settings.data_dir / "logs" / f"kafka-{address.node_id}.log"
        self.pid_path = settings.data_dir / "run" / f"kafka-{address.node_id}.pid"

    @property
    def name(self) -> str:
        return f"kafka-{self.address.node_id}"

    def properties(self) -> str:
        return render_node_properties(
            node_id=self.address.node_id,
            host=self.address.host,
            port=self.address.port,
            controller_port=self.address.controller_port,
            voters=self.voters,
            log_dir=self.log_dir,
            replication=self.replication,
            min_insync=max(1, self.replication - 1),
            extra=FAILOVER,
        )


class LocalCluster:
    """``brokers`` :class:`ClusterNode` s under ``settings.data_dir`` (see the module doc)."""

    def __init__(
        self,
        settings: Settings,
        brokers: int = 3,
        *,
        heap: str = NODE_HEAP,
        cache_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.home = settings.data_dir / CLUSTER_DIR
        addresses = node_addresses(settings.kafka, brokers)
        voters = ",".join(f"{a.node_id}@{a.host}:{a.controller_port}" for a in addresses)
        cache = cache_dir or settings.data_dir / "cache"
        self.nodes = [
            ClusterNode(settings, self.home, a, voters, heap=heap, cache_dir=cache)
            for a in addresses
        ]
        self.bootstrap = ",".join(f"{a.host}:{a.port}" for a in addresses)

    @classmethod
    def recorded(cls, settings: Settings) -> LocalCluster | None:
        """The cluster ``kafka start --brokers N`` made in this data folder, if any."""
        path = settings.data_dir / CLUSTER_DIR / "brokers"
        if not path.exists():
            return None
        return cls(settings, int(path.read_text().strip()))

    @property
    def kafka(self) -> KafkaSettings:
        return self.settings.kafka.model_copy(update={"bootstrap": self.bootstrap})

    def environment(self) -> dict[str, str]:
        """What the platform's processes need to use this cluster."""
        replication = self.nodes[0].replication
        return {
            "SYNAPSEOPS_KAFKA_BOOTSTRAP": self.bootstrap,
            "SYNAPSEOPS_KAFKA_REPLICATION_FACTOR": str(replication),
            "SYNAPSEOPS_KAFKA_MIN_INSYNC_REPLICAS": str(max(1, replication - 1)),
        }

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> None:
        """Format (once) and start every node that is not running, then wait until all of
        them are in the cluster's metadata."""
        single = LocalBroker(self.settings)
        if single.is_running():
            raise ConfigurationError(
                f"the single-node broker of this data folder runs (pid {single.pid()}) on the "
                "ports node 1 needs; `synapseops kafka stop` it first"
            )
        recorded = self.home / "brokers"
        if recorded.exists() and int(recorded.read_text()) != len(self.nodes):
            # A static quorum cannot change its voters in place.
            raise ConfigurationError(
                f"this data folder's cluster has {recorded.read_text().strip()} nodes; to run "
                f"{len(self.nodes)}, stop it and delete {self.home} (its topics go with it)"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        cluster_id = self._cluster_id()
        recorded.write_text(f"{len(self.nodes)}\n")
        for node in self.nodes:
            node.format(cluster_id)
        # No node answers until a majority of voters runs: start them all, then wait.
        for node in self.nodes:
            if node.start(wait=False) is None:
                raise ConfigurationError(
                    f"a Kafka broker that is not {node.name} of this data folder answers on "
                    f"{node.address.host}:{node.address.port}; stop it or choose other ports "
                    "(SYNAPSEOPS_KAFKA_BOOTSTRAP, SYNAPSEOPS_KAFKA_CONTROLLER_PORT)"
                )
        self.wait_joined(timeout)

    def _cluster_id(self) -> str:
        path = self.home / "cluster.id"
        if path.exists():
            return path.read_text().strip()
        self.nodes[0].fetch()
        cluster_id = self.nodes[0].new_cluster_id()
        path.write_text(cluster_id + "\n")
        return cluster_id

    def wait_joined(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.pid() is None:
                    raise ConfigurationError(
                        f"{node.name} exited while starting; the end of {node.log_path}:\n"
                        + log_tail(node.log_path)
                    )
            if self.brokers_in_metadata() == len(self.nodes):
                return
            time.sleep(0.5)
        raise ConfigurationError(
            f"the {len(self.nodes)} nodes did not all join within {timeout:.0f}s; "
            f"brokers in metadata: {self.brokers_in_metadata()}"
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every node (a clean controlled shutdown each)."""
        for node in reversed(self.nodes):
            node.stop(timeout)

    def status(self) -> list[dict[str, object]]:
        return [
            {"name": node.name, "pid": node.pid(), "healthy": node.healthy()} for node in self.nodes
        ]

    # ---- what the cluster says --------------------------------------------------------------

    def brokers_in_metadata(self, timeout: float = 3.0) -> int:
        try:
            return len(create_admin(self.kafka).list_topics(timeout=timeout).brokers)
        except KafkaException:
            return 0

    def under_replicated(self, timeout: float = 5.0) -> int:
        """Partitions (every topic) with fewer in-sync replicas than replicas, per the admin
        client; raises :class:`KafkaException` when no node answers."""
        metadata = create_admin(self.kafka).list_topics(timeout=timeout)
        return sum(
            len(partition.isrs) < len(partition.replicas)
            for topic in metadata.topics.values()
            for partition in topic.partitions.values()
        )

    def leader_of(self, topic: str, partition: int = 0, timeout: float = 5.0) -> ClusterNode:
        meta = create_admin(self.kafka).list_topics(topic, timeout=timeout)
        leader = meta.topics[topic].partitions[partition].leader
        return next(node for node in self.nodes if node.address.node_id == leader)
