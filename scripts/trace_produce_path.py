#!/usr/bin/env python3
"""Trace the Produce path of a running kbroker, from the socket to the segment file (issue 14).

Starts a broker in-process, sends idempotent acks=all Produce requests with confluent-kafka, and
records for one of them: the *chain* (the kbroker files on the call stack at the moment the batch
is written to the segment, outermost first) and every kbroker file whose code ran while the request
was handled (lookups through typed seams included), each with its layer from
``scripts/check_imports.py``. Prints both; ``docs/architecture.md`` explains them.

    .venv/bin/python scripts/trace_produce_path.py
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from check_imports import LAYERS, layer_of  # noqa: E402


@dataclass(frozen=True)
class ProducePath:
    chain: list[str]  # files on the stack when the segment is written, outermost first
    ran: list[str]  # every kbroker file whose code ran for the request, in first-call order


def _rel(filename: str) -> str | None:
    if "/kbroker/" not in filename or "/kbroker/testing/" in filename:
        return None
    return "kbroker/" + filename.split("/kbroker/", 1)[1]


def module_of(rel: str) -> str:
    return rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def layer_name(rel: str) -> str:
    rank = layer_of(module_of(rel))
    return LAYERS[rank][0] if rank < len(LAYERS) else "composition root"


def trace() -> ProducePath:
    from confluent_kafka import Producer

    from kbroker.log import segment
    from kbroker.testing import BrokerThread

    stacks: list[list[str]] = []
    write = segment.LogSegment.write

    def traced_write(self: Any, buffers: Any, nbytes: int) -> None:
        files: list[str] = []
        for frame in traceback.extract_stack()[:-1]:
            rel = _rel(frame.filename)
            if rel is not None and (not files or files[-1] != rel):
                files.append(rel)
        stacks.append([*files, "kbroker/log/segment.py"])
        write(self, buffers, nbytes)

    ran: list[str] = []

    def serving(frame: FrameType | None) -> bool:
        # a call made for the request: one of its frames is the connection's or the handler's
        # (timers and the Raft driver running meanwhile are left out)
        while frame is not None:
            if frame.f_code.co_filename.endswith(("kbroker/server/connection.py", "kbroker/api/produce.py")):
                return True
            frame = frame.f_back
        return False

    def profile(frame: FrameType, event: str, _arg: object) -> None:
        if event == "call":
            rel = _rel(frame.f_code.co_filename)
            if rel is not None and rel not in ran and serving(frame):
                ran.append(rel)

    segment.LogSegment.write = traced_write  # type: ignore[method-assign]
    try:
        with BrokerThread({}) as broker:
            producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "acks": "all",
                                 "enable.idempotence": True, "linger.ms": 0})
            for value in (b"create the topic", b"warm"):
                producer.produce("trace", value)
                producer.flush(30)
            stacks.clear()
            broker.call(sys.setprofile, profile)
            producer.produce("trace", b"traced")
            producer.flush(30)
            broker.call(sys.setprofile, None)
    finally:
        segment.LogSegment.write = write  # type: ignore[method-assign]
    if len(stacks) != 1:
        raise RuntimeError(f"expected one segment write for the traced produce, saw {len(stacks)}")
    return ProducePath(stacks[0], ran)


def main() -> None:
    path = trace()
    print("chain (on the stack when the segment is written, outermost first):")
    for rel in path.chain:
        print(f"  {rel:48} {layer_name(rel)}")
    print(f"\nevery file that ran for the request ({len(path.ran)}, in first-call order):")
    for rel in path.ran:
        print(f"  {rel:48} {layer_name(rel)}")


if __name__ == "__main__":
    main()
