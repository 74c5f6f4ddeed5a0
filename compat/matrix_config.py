"""What compat/run_matrix.py runs: the paths, Apache Kafka's reference launcher (scripts/reference_kafka.py),
the scenarios, the brokers' settings (one node, cluster, SASL_SSL), the --broker kinds and aliases, and
each client's scenario program."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COMPAT = ROOT / "compat"

CACHE = ROOT / ".cache"

PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable


def _load_reference_kafka():
    # reference_kafka imports its sibling modules (reference_kafka_base, reference_kafka_jvm) by name
    if str(ROOT / "scripts") not in sys.path:
        sys.path.append(str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location("reference_kafka", ROOT / "scripts" / "reference_kafka.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["reference_kafka"] = mod
    spec.loader.exec_module(mod)
    return mod


reference_kafka = _load_reference_kafka()

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]

SCENARIOS = [f"produce_consume_{c}" for c in CODECS] + [
    "keyed_ordering",
    "headers_timestamps",
    "group_three_leave",
    "commit_resume",
    "admin_topics",
    "offsets_by_timestamp",
    "idempotent_producer",
    "transactions_read_committed",
    "record_at_size_limit",
    "record_beyond_size_limit",
    "unknown_topic",
    "share_group_two_consumers",
    "share_group_dead_letters",
]

# Both brokers get exactly these settings. Topic auto-creation is off for the whole run: every
# scenario creates its topics with an admin client, and `unknown_topic` checks that producing to
# a missing topic fails and does not create it. message.max.bytes stays at Kafka's default.
BROKER_SETTINGS: dict[str, str] = {
    **reference_kafka.TEST_SETTINGS,
    "auto.create.topics.enable": "false",
}

# The cluster column: three nodes, everything replicated three times, acks=all needing two
# in-sync replicas; the same on both brokers.
CLUSTER_NODES = 3

CLUSTER_SETTINGS: dict[str, str] = {
    **BROKER_SETTINGS,
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "share.coordinator.state.topic.replication.factor": "3",
    "share.coordinator.state.topic.min.isr": "2",
}

# The cluster column in the test suite (tests/compat/test_matrix.py), against kbroker only: the
# scenarios a cluster changes something for (replication and acks=all, partitions led by different
# brokers, group and transaction coordinators and their markers on other brokers, the high
# watermark, a 1 MiB batch replicated, topic administration with three replicas), with every
# client. The codec, headers, beyond-the-limit and unknown-topic scenarios add nothing there to
# their one-node runs. The whole column: `compat/run_matrix.py --broker cluster`.
CLUSTER_CI_SCENARIOS = [
    "produce_consume_none",
    "keyed_ordering",
    "group_three_leave",
    "commit_resume",
    "admin_topics",
    "offsets_by_timestamp",
    "idempotent_producer",
    "transactions_read_committed",
    "record_at_size_limit",
]

# The security column: one node each whose clients connect over SASL_SSL (TLS with a CA the run
# makes, SCRAM logins), the rest of the settings as the one-node column.
SASL_MECHANISMS = ["SCRAM-SHA-256", "SCRAM-SHA-512"]

SASL_USER, SASL_PASSWORD = "compat-user", "compat-secret"

SCRAM_JAAS = "org.apache.kafka.common.security.scram.ScramLoginModule required;"

# The security column in the test suite (tests/compat/test_matrix.py), against kbroker only: every
# client logs in over SASL_SSL and runs a compressed produce/consume, a group commit and resume,
# topic administration and a transaction. The whole column: `compat/run_matrix.py --broker sasl`.
SASL_CI_SCENARIOS = ["produce_consume_lz4", "commit_resume", "admin_topics", "transactions_read_committed"]

KINDS = ["kbroker", "kafka", "kbroker-cluster", "kafka-cluster", "kbroker-sasl", "kafka-sasl"]

ALIASES = {"both": ["kbroker", "kafka"], "cluster": ["kbroker-cluster", "kafka-cluster"],
           "sasl": ["kbroker-sasl", "kafka-sasl"], "all": KINDS}

BROKER_NAMES = {
    "kbroker": "kbroker (1 node)",
    "kafka": f"Apache Kafka {reference_kafka.KAFKA_VERSION} (KRaft, 1 node)",
    "kbroker-cluster": f"kbroker cluster ({CLUSTER_NODES} nodes, broker+controller each)",
    "kafka-cluster": f"Apache Kafka {reference_kafka.KAFKA_VERSION} cluster (KRaft, {CLUSTER_NODES} nodes, "
                     "broker+controller each)",
    "kbroker-sasl": "kbroker (1 node, clients over SASL_SSL with SCRAM)",
    "kafka-sasl": f"Apache Kafka {reference_kafka.KAFKA_VERSION} (KRaft, 1 node, clients over SASL_SSL with SCRAM)",
}


def is_cluster(kind: str) -> bool:
    return kind.endswith("-cluster")


def settings_for(kind: str) -> dict[str, str]:
    return CLUSTER_SETTINGS if is_cluster(kind) else BROKER_SETTINGS


def parse_kinds(spec: str) -> list[str]:
    """``--broker``: kinds and aliases, comma separated, in KINDS order, without repeats."""
    wanted: set[str] = set()
    for item in (s.strip() for s in spec.split(",")):
        if item in ALIASES:
            wanted.update(ALIASES[item])
        elif item in KINDS:
            wanted.add(item)
        else:
            raise ValueError(f"unknown broker {item!r}; known: {', '.join(KINDS + list(ALIASES))}")
    return [k for k in KINDS if k in wanted]


JAVA = ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto"]


def client_commands() -> dict[str, list[str]]:
    jc = CACHE / "java-clients"
    return {
        "kafka-python": [PY, str(COMPAT / "python" / "kafka_python_scenarios.py")],
        "aiokafka": [PY, str(COMPAT / "python" / "aiokafka_scenarios.py")],
        "confluent-kafka": [PY, str(COMPAT / "python" / "confluent_scenarios.py")],
        "kcat": [PY, str(COMPAT / "python" / "kcat_scenarios.py")],
        "java-3.x": [*JAVA, "-cp", f"{jc / 'classes'}:{jc / '3.9'}/*", "kbroker.compat.Scenarios"],
        "java-4.x": [*JAVA, "-cp", f"{jc / 'classes'}:{jc / '4'}/*", "kbroker.compat.Scenarios"],
        "franz-go": [str(CACHE / "go-bin" / "franz")],
        "sarama": [str(CACHE / "go-bin" / "sarama")],
        "kafkajs": ["node", str(COMPAT / "node" / "scenarios.js")],
    }


CLIENTS = list(client_commands())


def log(msg: str) -> None:
    print(f"[matrix] {msg}", file=sys.stderr, flush=True)
