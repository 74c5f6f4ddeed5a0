"""A single-node fault run: kbroker under a seeded schedule of kill -9 / restart (and SIGSTOP /
SIGCONT pauses) with healing periods between, the queue workload throughout, a final drain, the
checker and a report."""

from __future__ import annotations

import json
import logging
import random
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import clientlog
from .broker import BrokerProcess, free_port
from .explain import score
from .history import History
from .report import build, plot, text
from .workload import Workload, create_topic, drain

log = logging.getLogger("faults.runner")


@dataclass
class RunConfig:
    out: Path
    cycles: int = 10
    seed: int = 0
    flush: str = "default"  # "every": log.flush.interval.messages=1; "default": the broker's default policy
    partitions: int = 3
    producers: int = 2
    rate: float = 200.0  # sends per second per producer
    heal_min: float = 0.3  # seconds of calm (workload running) before each fault...
    heal_max: float = 1.5
    down_max: float = 0.3  # ...and of the broker staying dead after a kill
    pause_probability: float = 0.2
    pause_max: float = 1.0
    after_resume: float = 0.0  # seconds the broker runs after a pause before the kill (it serves what queued up)
    progress_timeout: float = 30.0  # a cycle waits this long at most for a new acknowledged write per producer
    # Simulated machine crash (the page cache lost): after each kill, cut this many bytes off the end
    # of every partition's newest segment. Acknowledged writes are then lost: the checker must say so.
    truncate_after_kill: int = 0
    producer_debug: str = ""  # librdkafka debug contexts for the producers, logged to clients.log
    message_timeout_ms: int = 60000  # the producers' message.timeout.ms


def _wait_progress(workload: Workload, since: list[int], timeout: float) -> bool:
    """Wait (bounded) until every producer had a send acknowledged since the counts ``since``."""
    deadline = time.monotonic() + timeout
    while not all(now > before for now, before in zip(workload.acked, since, strict=True)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)  # polling interval of a bounded wait
    return True


def truncate_tails(data: Path, topic: str, nbytes: int) -> int:
    """Cut ``nbytes`` off the newest segment of every partition of ``topic``; bytes removed in all."""
    removed = 0
    for partition in sorted(data.glob(f"{topic}-*")):
        segments = sorted(partition.glob("*.log"))
        if not segments:
            continue
        size = segments[-1].stat().st_size
        cut = min(size, nbytes)
        with open(segments[-1], "r+b") as f:
            f.truncate(size - cut)
        removed += cut
    return removed


def run(config: RunConfig) -> dict[str, Any]:
    config.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(config.seed)
    history = History(config.out / "history.jsonl")
    broker = BrokerProcess(config.out / "data", free_port(), config.flush, config.partitions,
                           config.out / "broker.log")
    nemesis = "nemesis"
    topic = "queue"
    cycles_done = 0
    progress: list[bool] = []
    workload: Workload | None = None
    drain_complete = False
    if config.producer_debug:
        handler = logging.FileHandler(config.out / "clients.log")
        handler.setFormatter(logging.Formatter(clientlog.FORMAT))
        handler.addFilter(clientlog.history_time_filter(history.now))
        clients = logging.getLogger("faults.clients")
        clients.addHandler(handler)
        clients.setLevel(logging.DEBUG)
        clients.propagate = False
    try:
        broker.start()
        history.record(nemesis, "info", "start")
        create_topic(broker.bootstrap, topic, config.partitions)
        workload = Workload(history, broker.bootstrap, topic, config.partitions, config.producers, config.rate,
                            producer_debug=config.producer_debug, message_timeout_ms=config.message_timeout_ms)
        workload.start()
        for cycle in range(config.cycles):
            acked_before = list(workload.acked)
            time.sleep(rng.uniform(config.heal_min, config.heal_max))  # the healing period: clients run
            progress.append(_wait_progress(workload, acked_before, config.progress_timeout))
            if rng.random() < config.pause_probability:
                broker.signal(signal.SIGSTOP)
                history.record(nemesis, "info", "pause")
                time.sleep(rng.uniform(0.05, config.pause_max))
                broker.signal(signal.SIGCONT)
                history.record(nemesis, "info", "resume")
                time.sleep(config.after_resume)  # the broker answers what the clients sent meanwhile
            broker.kill()
            history.record(nemesis, "info", "kill", cycle=cycle)
            if config.truncate_after_kill:
                removed = truncate_tails(config.out / "data", topic, config.truncate_after_kill)
                history.record(nemesis, "info", "truncate", cycle=cycle, bytes=removed)
            time.sleep(rng.uniform(0.0, config.down_max))
            broker.start()
            history.record(nemesis, "info", "start", cycle=cycle)
            cycles_done += 1
        # Heal: the clients must make progress once more before they stop.
        acked_before = list(workload.acked)
        progress.append(_wait_progress(workload, acked_before, config.progress_timeout))
        workload.stop()
        drain_complete = drain(history, broker.bootstrap, topic, config.partitions)
    finally:
        if workload is not None:
            workload.stop()
        broker.stop()
        history.close()
    report = build(history.ops, {"flush": config.flush, "seed": config.seed, "cycles": cycles_done,
                                 "broker_starts": broker.starts, "progress_each_cycle": all(progress),
                                 "cycles_without_progress": progress.count(False),
                                 "drain_complete": drain_complete,
                                 "config": {k: str(v) for k, v in asdict(config).items()}})
    # The cluster runner's scoring: duplicates (and their reorders) that librdkafka's epoch bump after
    # a message timeout explains are counted apart; broker_valid ignores them, valid stays strict.
    score(report, history.ops, drain_complete and all(progress),
          clientlog.load(config.out / "clients.log", history.ops))
    (config.out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (config.out / "report.txt").write_text(text(report))
    report["plot"] = plot(history.ops, config.out / "report.png")
    return report
