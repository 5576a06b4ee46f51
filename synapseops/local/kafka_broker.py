"""The project's own Apache Kafka broker: jars from Maven Central, one KRaft node, run by ``java``.

Layout under ``settings.data_dir``::

    cache/kafka-<version>/libs/      the broker's jars (fetched once, ``.complete`` marks done)
    kafka/server.properties          rendered from Settings on every start (ports may change)
    kafka/log4j2.yaml                Kafka 4.x logs through log4j2
    kafka/data/                      the log dirs: topics and the KRaft metadata (kept forever)
    logs/kafka.log                   everything the JVM writes
    run/kafka.pid

A broker that already answers on the bootstrap address (the developer's, or CI's) is used as it
is: :meth:`LocalBroker.start` never starts a second one beside it.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import time
from pathlib import Path

from synapseops.errors import ConfigurationError
from synapseops.kafka import broker_reachable
from synapseops.local.processes import (
    live_pid,
    log_tail,
    pid_alive,
    port_in_use,
    spawn,
    terminate,
)
from synapseops.settings import Settings

log = logging.getLogger(__name__)

MIN_JAVA = 17
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Nearest-wins dependency mediation would otherwise pick slf4j 1.7 (no log4j2 binding found:
# the broker starts silent); these three make the log4j2 pipeline of Kafka 4.x complete.
LOGGING_JARS = (
    ("org.slf4j", "slf4j-api", "2.0.17"),
    ("org.apache.logging.log4j", "log4j-core", "2.24.3"),
    ("org.apache.logging.log4j", "log4j-slf4j2-impl", "2.24.3"),
)

POM_TEMPLATE = """\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.synapseops.local</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""

LOG4J2_YAML = """\
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: state.change.logger
        level: WARN
      - name: org.apache.kafka.controller
        level: INFO
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
"""


def render_pom(version: str) -> str:
    coordinates = [("org.apache.kafka", "kafka_2.13", version), *LOGGING_JARS]
    dependencies = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in coordinates
    )
    return POM_TEMPLATE.format(dependencies=dependencies)


def render_node_properties(
    *,
    node_id: int,
    host: str,
    port: int,
    controller_port: int,
    voters: str,
    log_dir: Path,
    replication: int = 1,
    min_insync: int = 1,
    extra: tuple[str, ...] = (),
) -> str:
    """One combined broker+controller KRaft node of a static quorum (``voters``:
    ``id@host:port,...``); ``replication`` and ``min_insync`` for the internal topics and
    for topics created without their own."""
    lines = [
        "# Rendered by synapseops.local from Settings; edits are overwritten.",
        "process.roles=broker,controller",
        f"node.id={node_id}",
        f"controller.quorum.voters={voters}",
        f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        f"advertised.listeners=PLAINTEXT://{host}:{port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        f"log.dirs={log_dir}",
        "num.partitions=1",
        f"offsets.topic.replication.factor={replication}",
        f"transaction.state.log.replication.factor={replication}",
        f"transaction.state.log.min.isr={min_insync}",
        f"share.coordinator.state.topic.replication.factor={replication}",
        f"share.coordinator.state.topic.min.isr={min_insync}",
        f"default.replication.factor={replication}",
        f"min.insync.replicas={min_insync}",
        # A lone consumer should not wait 3 s for companions that never come.
        "group.initial.rebalance.delay.ms=0",
        # Topics come from the registry (`synapseops topics apply`), never from a typo.
        "auto.create.topics.enable=false",
        *extra,
    ]
    return "\n".join(lines) + "\n"


def render_server_properties(settings: Settings, log_dir: Path) -> str:
    """The single node: every internal topic has exactly one replica."""
    kafka = settings.kafka
    host, controller = kafka.host, kafka.controller_port
    return render_node_properties(
        node_id=1,
        host=host,
        port=kafka.port,
        controller_port=controller,
        voters=f"1@{host}:{controller}",
        log_dir=log_dir,
    )


def parse_java_major(version_output: str) -> int | None:
    """``openjdk version "17.0.15"`` → 17; ``java version "1.8.0_392"`` → 8."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


class LocalBroker:
    """One single-node KRaft broker under ``settings.data_dir``, addressed by ``settings.kafka``.

    ``cache_dir`` defaults to ``{data_dir}/cache``; a second broker (a test's) may share the
    developer's cache instead of fetching the jars again.
    """

    def __init__(self, settings: Settings, *, cache_dir: Path | None = None) -> None:
        self.settings = settings
        data_dir = settings.data_dir
        self.home = (cache_dir or data_dir / "cache") / f"kafka-{settings.kafka.version}"
        self.libs = self.home / "libs"
        self.config_dir = data_dir / "kafka"
        self.log_dir = self.config_dir / "data"
        self.server_properties = self.config_dir / "server.properties"
        self.log4j_config = self.config_dir / "log4j2.yaml"
        self.log_path = data_dir / "logs" / "kafka.log"
        self.pid_path = data_dir / "run" / "kafka.pid"

    # -- jars ---------------------------------------------------------------------------------

    @property
    def fetched(self) -> bool:
        return (self.home / ".complete").exists()

    def fetch(self) -> Path:
        """Download the broker and its runtime dependencies through Maven (once)."""
        if self.fetched:
            return self.libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise ConfigurationError(
                "Maven (mvn) is not on PATH; it fetches the Kafka broker: apt-get install maven"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.libs, ignore_errors=True)  # a fetch cut short is redone from zero
        pom = self.home / "pom.xml"
        pom.write_text(render_pom(self.settings.kafka.version))
        argv = [
            mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={self.libs}",
        ]  # fmt: skip
        log.info("fetching the kafka %s jars from Maven Central", self.settings.kafka.version)
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not any(self.libs.glob("kafka_2.13-*.jar")):
            output = _ANSI.sub("", result.stdout + result.stderr)
            tail = "\n".join(line for line in output.splitlines()[-20:] if line.strip())
            raise ConfigurationError(
                f"Maven could not fetch org.apache.kafka:kafka_2.13:{self.settings.kafka.version}"
                f" (is Maven Central reachable?); mvn said:\n{tail}"
            )
        (self.home / ".complete").write_text(self.settings.kafka.version + "\n")
        return self.libs

    # -- java -------------------------------------------------------------------------------

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise ConfigurationError(
                f"no java on PATH; the Kafka broker needs Java {MIN_JAVA}+: "
                "apt-get install openjdk-17-jre-headless"
            )
        result = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
        major = parse_java_major(result.stderr + result.stdout)
        if major is None or major < MIN_JAVA:
            raise ConfigurationError(
                f"{java} is Java {major or '?'}; the Kafka broker needs Java {MIN_JAVA}+"
            )
        return java

    def _run_tool(self, java: str, *args: str) -> str:
        argv = [java, "-cp", f"{self.libs}/*", "kafka.tools.StorageTool", *args]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ConfigurationError(
                f"kafka StorageTool {args[0]} failed: {(result.stderr or result.stdout)[-2000:]}"
            )
        return result.stdout

    # -- storage ------------------------------------------------------------------------------

    @property
    def formatted(self) -> bool:
        return (self.log_dir / "meta.properties").exists()

    def properties(self) -> str:
        """The ``server.properties`` this broker runs with."""
        return render_server_properties(self.settings, self.log_dir)

    def write_config(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.server_properties.write_text(self.properties())
        self.log4j_config.write_text(LOG4J2_YAML)

    def new_cluster_id(self) -> str:
        return self._run_tool(self._java(), "random-uuid").strip().splitlines()[-1]

    def format(self, cluster_id: str | None = None) -> None:
        """Format the storage once (with ``cluster_id``, or a new one); existing data (topics,
        offsets) is never formatted again."""
        self.write_config()
        if self.formatted:
            return
        java = self._java()
        self.fetch()
        cluster_id = cluster_id or self.new_cluster_id()
        self._run_tool(java, "format", "-t", cluster_id, "-c", str(self.server_properties))
        log.info("formatted kafka storage in %s (cluster %s)", self.log_dir, cluster_id)

    # -- process ------------------------------------------------------------------------------

    def pid(self) -> int | None:
        return live_pid(self.pid_path)

    def is_running(self) -> bool:
        return self.pid() is not None

    def healthy(self, timeout: float = 3.0) -> bool:
        """True when a broker answers metadata requests on the bootstrap address."""
        kafka = self.settings.kafka
        return port_in_use(kafka.host, kafka.port) and broker_reachable(kafka, timeout)

    def start(self, wait: bool = True, timeout: float = 60.0) -> int | None:
        """Run the broker detached; returns its pid, or None when another broker already answers.

        Idempotent: a running broker of ours is left alone, and so is any broker that answers
        on the bootstrap address.
        """
        kafka = self.settings.kafka
        pid = self.pid()
        if pid is not None:
            if wait:
                self._wait_ready(pid, timeout)
            return pid
        if self.healthy():
            log.info("a kafka broker already answers on %s; using it", kafka.bootstrap)
            return None
        for port in (kafka.port, kafka.controller_port):
            if port_in_use(kafka.host, port):
                raise ConfigurationError(
                    f"port {kafka.host}:{port} is taken by a process that is not a Kafka broker "
                    "of this data folder; stop it or set SYNAPSEOPS_KAFKA_BOOTSTRAP / "
                    "SYNAPSEOPS_KAFKA_CONTROLLER_PORT"
                )
        java = self._java()
        self.fetch()
        self.format()
        heap = kafka.heap
        argv = [
            java, f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={self.log4j_config}",
            "-cp", f"{self.libs}/*", "kafka.Kafka", str(self.server_properties),
        ]  # fmt: skip
        pid = spawn(argv, log_path=self.log_path, pid_path=self.pid_path, cwd=self.config_dir)
        log.info("started kafka broker (pid %d) on %s", pid, kafka.bootstrap)
        if wait:
            self._wait_ready(pid, timeout)
        return pid

    def _wait_ready(self, pid: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                self.pid_path.unlink(missing_ok=True)
                raise ConfigurationError(
                    f"the kafka broker exited while starting; the end of {self.log_path}:\n"
                    + log_tail(self.log_path)
                )
            if self.healthy(timeout=2.0):
                return
            time.sleep(0.5)
        raise ConfigurationError(
            f"the kafka broker (pid {pid}) did not answer on {self.settings.kafka.bootstrap} "
            f"within {timeout:.0f}s; the end of {self.log_path}:\n" + log_tail(self.log_path)
        )

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a clean controlled shutdown), SIGKILL only after ``timeout``."""
        pid = self.pid()
        if pid is not None:
            terminate(pid, timeout)
            log.info("stopped kafka broker (pid %d)", pid)
        self.pid_path.unlink(missing_ok=True)
