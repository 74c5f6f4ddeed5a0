"""Kafka 4.4's ``kafka-streams-groups.sh`` (StreamsGroupCommand) against kbroker and against Apache
Kafka 4.4 side by side: a streams group joined over the wire (word count topology, one member) is
listed and described (offsets, members with their tasks, state), an unknown group is an error, and
both brokers give the same output but for the coordinator's address."""

from __future__ import annotations

import re
import uuid

import pytest
import reference_kafka
from waiting import wait_until
from wire import Wire, create_topic

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.find_coordinator import FindCoordinatorRequest
from tests.streams.streams_group_helpers import hb, join_ready, word_count_topology

SETTINGS = {**reference_kafka.TEST_SETTINGS, "group.streams.initial.rebalance.delay.ms": "0"}


def streams_groups(bootstrap: str, *args: str) -> tuple[int, str]:
    res = reference_kafka.run_tool("org.apache.kafka.tools.streams.StreamsGroupCommand",
                                   ["--bootstrap-server", bootstrap, *args])
    return res.returncode, res.stdout


def session(bootstrap: str) -> dict[str, tuple[int, str]]:
    app = f"wc-{uuid.uuid4().hex[:8]}"
    w = Wire(bootstrap)
    try:
        create_topic(w, f"{app}-in", 2)

        def coordinator_ready():  # as clients do: Kafka creates __consumer_offsets on FindCoordinator
            resp = w.call(FindCoordinatorRequest(key_type=0, coordinator_keys=[app]), 4)
            return resp.coordinators[0].error_code == ErrorCode.NONE
        wait_until(coordinator_ready, message="the group coordinator")
        topology = word_count_topology(app, f"{app}-in")
        # A first join may meet the coordinator still loading (NOT_COORDINATOR on Kafka): retried, as clients do.
        wait_until(lambda: hb(w, app, "member-1", 0, topology=topology).error_code == ErrorCode.NONE,
                   message="the member joined")
        join_ready(w, app, "member-1", topology)
    finally:
        w.close()
    out = {}
    for name, args in [("list", ["--list"]), ("offsets", ["--describe", "--group", app]),
                       ("members", ["--describe", "--group", app, "--members"]),
                       ("state", ["--describe", "--group", app, "--state"]),
                       ("unknown", ["--describe", "--group", app + "-none"])]:
        code, text = streams_groups(bootstrap, *args)
        text = text.replace(app, "APP")
        text = re.sub(r"\d+\.\d+\.\d+\.\d+:\d+ \(\d+\)", "HOST:PORT (ID)", text)  # the coordinator
        out[name] = (code, text)
    return out


@pytest.mark.timeout(600)
def test_streams_groups_tool_same_on_kbroker_and_kafka(tmp_path):
    with BrokerThread(dict(SETTINGS), data_dir=str(tmp_path / "kbroker")) as b:
        on_kbroker = session(b.bootstrap_servers)
    handle = reference_kafka.start_reference_kafka(tmp_path / "kafka", {"group.streams.initial.rebalance.delay.ms": "0"})
    try:
        on_kafka = session(handle.bootstrap)
    finally:
        handle.stop()
    assert on_kbroker["list"][0] == 0 and "APP" in on_kbroker["list"][1].split()
    assert on_kbroker["state"] == (0, on_kbroker["state"][1])
    assert "Stable" in on_kbroker["state"][1] and "sticky" in on_kbroker["state"][1]
    assert "ACTIVE: 0:[0,1]; 1:[0,1];" in on_kbroker["members"][1]
    assert on_kbroker["unknown"][0] == 1 and "Group APP-none not found." in on_kbroker["unknown"][1]
    for name in ("offsets", "members", "state", "unknown"):
        # The offsets listing comes in no fixed order.
        assert sorted(on_kbroker[name][1].splitlines()) == sorted(on_kafka[name][1].splitlines()), name
        assert on_kbroker[name][0] == on_kafka[name][0], name
