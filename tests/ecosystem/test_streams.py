"""A Kafka Streams 4.4 application with processing.guarantee=exactly_once_v2, with the classic group
protocol and with the streams rebalance protocol (KIP-1071, group.protocol=streams), on kbroker and
on Apache Kafka 4.4: word count (repartition topic, count store and its changelog), a
windowed sum (window store), a stream-table join; kill -9 of the application mid-run and a restart
from the changelogs leave, under read_committed, each output update exactly once.

Caching is off, so the outputs are every update: a word's counts must read 1, 2, ..., n, a window's
sums the running sums of its clicks, the join one enriched record per click. A lost or repeated
input record, or state restored wrongly after the kill, breaks those sequences. Input keeps arriving
while the app runs, so the kill lands with transactions open (commit.interval.ms=1000). Checked once
by hand: the same test with processing.guarantee=at_least_once fails on the word counts.
"""

from __future__ import annotations

import random
import subprocess
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import ecosystem_jars
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from ecosystem_brokers import Broker, start_broker
from waiting import wait_until
from wire import Wire

APP_SOURCE = Path(__file__).resolve().parent / "java" / "EosStreamsApp.java"
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
USERS = [f"user{i}" for i in range(4)]
PARTITIONS = 2
# The killed instance stays a member of its group until its session times out; the restarted one gets
# the tasks only then. The app asks for a 6 s session (the brokers' group.min.session.timeout.ms) with
# the classic protocol (the client's session.timeout.ms, EosStreamsApp.java); the streams protocol's
# session is the broker's group.streams.session.timeout.ms (default 45 s, and its minimum 45 s too),
# its heartbeat interval group.streams.heartbeat.interval.ms (5 s, at least
# group.streams.min.heartbeat.interval.ms). 6 s on both, heartbeats every second, so the restart
# waits 6 s for the dead member rather than 45 s. The group's first rebalance is not delayed either
# (the classic protocol's group.initial.rebalance.delay.ms is 0 in TEST_SETTINGS). The app's
# producers' transaction.timeout.ms is 6 s (Streams' default 10 s); the coordinator looks for
# timed-out transactions (the killed instance's open one) every second rather than every 10 s.
BROKER_OVERRIDES = {
    "group.streams.session.timeout.ms": "6000",
    "group.streams.min.session.timeout.ms": "6000",
    "group.streams.heartbeat.interval.ms": "1000",
    "group.streams.min.heartbeat.interval.ms": "1000",
    "group.streams.initial.rebalance.delay.ms": "0",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000",
}


@pytest.fixture(scope="module", params=["kbroker", "kafka"])
def broker(request, tmp_path_factory) -> Iterator[Broker]:
    with start_broker(request.param, tmp_path_factory.mktemp(request.param), BROKER_OVERRIDES) as b:
        yield b


def compile_app(out: Path) -> Path:
    libs = ecosystem_jars.ensure_jars()
    subprocess.run(["javac", "-nowarn", "-d", str(out), "-cp", f"{libs}/*", str(APP_SOURCE)], check=True)
    return out


@pytest.fixture(scope="module")
def app_classes(tmp_path_factory) -> Path:
    """EosStreamsApp compiled once for the module's tests (a javac run is 2-3 s), read-only to them."""
    return compile_app(tmp_path_factory.mktemp("classes"))


class App:
    def __init__(self, work: Path, classes: Path, bootstrap: str, app_id: str, prefix: str, protocol: str) -> None:
        self.work, self.classes = work, classes
        self.args = [bootstrap, app_id, "", prefix, protocol]
        self.proc: subprocess.Popen | None = None
        self.runs = 0

    def start(self) -> None:
        """Each start has a state directory of its own, as an instance restarted on another host:
        its stores are restored from their changelog topics through the broker. (Reusing the
        killed instance's directory fails in the client, against Kafka 4.4 as well: kill -9 can
        leave a RocksDB window segment without its MANIFEST, and Kafka Streams 4.4 opens every
        existing segment at start-up (StateDirectory.initializeStartupStores) and dies on it.)"""
        self.runs += 1
        self.args[2] = str(self.work / f"state-{self.runs}")
        log = self.work / f"log4j2-{self.runs}.properties"
        ecosystem_jars.log4j_file(log, self.work / f"app-{self.runs}.log")
        cmd = ecosystem_jars.java_command("EosStreamsApp", self.args, log4j=log, extra_classpath=[self.classes])
        self.out = self.work / f"stdout-{self.runs}.log"
        with open(self.out, "wb") as f:
            self.proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)

    def state_seen(self, state: str) -> bool:
        assert self.proc is not None
        text = self.out.read_text(errors="replace") if self.out.exists() else ""
        assert "STATE ERROR" not in text, text[-3000:]
        assert self.proc.poll() is None, text[-3000:]
        return f"STATE {state}" in text

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Output:
    """A read_committed reader of one output topic, kept open across the run."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4().hex[:6]}",
                           "isolation.level": "read_committed", "enable.auto.commit": False})
        self.c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        self.records: list[tuple[str, str]] = []

    def poll(self) -> int:
        while batch := self.c.consume(1000, 0.1):
            for m in batch:
                assert m.error() is None, m.error()
                self.records.append((m.key().decode(), m.value().decode()))
        return len(self.records)

    def close(self) -> None:
        self.c.close()


def by_key(records: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for k, v in records:
        out[k].append(v)
    return dict(out)


@pytest.mark.parametrize("protocol", ["classic", "streams"])
def test_exactly_once_streams_survive_kill9(broker, app_classes: Path, tmp_path: Path, protocol: str) -> None:
    rnd = random.Random(7)
    prefix = f"s{uuid.uuid4().hex[:6]}-"
    app_id = f"{prefix}app"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topics = ["text", "clicks", "users", "word-counts", "click-sums", "enriched"]
    for f in admin.create_topics([NewTopic(prefix + t, PARTITIONS, 1) for t in topics]).values():
        f.result(30)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    base_ms = int(time.time() * 1000) - 3_600_000
    for i, user in enumerate(USERS):
        producer.produce(prefix + "users", f"name{i}".encode(), key=user.encode(), timestamp=base_ms)
    sentences: list[tuple[str, str]] = []
    clicks: list[tuple[str, int, int]] = []

    def produce_phase(n: int) -> None:
        for _ in range(n):
            user = rnd.choice(USERS)
            line = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(1, 6)))
            sentences.append((user, line))
            producer.produce(prefix + "text", line.encode(), key=user.encode())
            ts = base_ms + 1000 + 700 * len(clicks)
            amount = rnd.randint(1, 9)
            clicks.append((user, amount, ts))
            producer.produce(prefix + "clicks", str(amount).encode(), key=user.encode(), timestamp=ts)
        assert producer.flush(30) == 0

    app = App(tmp_path, app_classes, broker.bootstrap, app_id, prefix, protocol)
    outs = {t: Output(broker.bootstrap, prefix + t) for t in ("word-counts", "click-sums", "enriched")}
    # Input keeps arriving the whole time (paced, 10 sentences and clicks a batch), so the app is
    # killed mid-run, with transactions open, and more input arrives while it is down.
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            produce_phase(10)
            stop.wait(0.1)  # pacing of the load, not synchronisation

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        app.start()
        wait_until(lambda: outs["word-counts"].poll() >= 100 and app.state_seen("RUNNING"), timeout=180,
                   interval=0.05, message="first committed output", details=lambda: app.out.read_text()[-2000:])
        app.kill9()
        at_kill = len(clicks)
        wait_until(lambda: len(clicks) >= at_kill + 200, timeout=60, message="input while the app is down")
        app.start()
        wait_until(lambda: outs["word-counts"].poll() >= 100 and app.state_seen("RUNNING"), timeout=180,
                   interval=0.1, message="the restarted app running")
        # The application's group is of the protocol it was given (ListGroups v5's group type).
        w = Wire(broker.bootstrap)
        try:
            listed = w.call(16, 5, states_filter=[], types_filter=[])
        finally:
            w.close()
        assert {g.group_id: g.group_type for g in listed.groups}.get(app_id) == protocol
        at_restart = len(clicks)
        wait_until(lambda: len(clicks) >= at_restart + 200, timeout=60, message="input after the restart")
        stop.set()
        feeder.join(30)
        assert not feeder.is_alive()
        words = [w for _, line in sentences for w in line.split()]
        want = {"word-counts": len(words), "click-sums": len(clicks), "enriched": len(clicks)}

        def complete() -> bool:
            app.state_seen("RUNNING")
            return all(outs[t].poll() >= n for t, n in want.items())

        wait_until(complete, timeout=240, interval=0.2, message="all output",
                   details=lambda: {t: len(o.records) for t, o in outs.items()})
        # Nothing beyond: a little more polling finds no extra (duplicate) records.
        for o in outs.values():
            o.poll()
    finally:
        stop.set()
        app.stop()
        for o in outs.values():
            o.close()

    counts = defaultdict(int)
    for w in words:
        counts[w] += 1
    assert by_key(outs["word-counts"].records) == {w: [str(i) for i in range(1, n + 1)] for w, n in counts.items()}
    sums: dict[str, list[str]] = defaultdict(list)
    running: dict[str, int] = defaultdict(int)
    for user, amount, ts in clicks:
        window = f"{user}@{ts - ts % 60_000}"
        running[window] += amount
        sums[window].append(str(running[window]))
    assert by_key(outs["click-sums"].records) == dict(sums)
    names = {u: f"name{i}" for i, u in enumerate(USERS)}
    enriched: dict[str, list[str]] = defaultdict(list)
    for user, amount, _ in clicks:
        enriched[user].append(f"{names[user]}:{amount}")
    assert by_key(outs["enriched"].records) == dict(enriched)
    # The internal topics Streams created: the repartition topic and the stores' changelogs.
    internal = {f"{app_id}-by-word-repartition": "delete", f"{app_id}-word-counts-changelog": "compact",
                f"{app_id}-click-sums-changelog": "compact,delete"}
    md = admin.list_topics(timeout=30)
    for t, policy in internal.items():
        assert t in md.topics, sorted(md.topics)
        res = ConfigResource(ConfigResource.Type.TOPIC, t)
        assert admin.describe_configs([res])[res].result(30)["cleanup.policy"].value == policy
