"""The HTTP control endpoint and the command line: fault rules, pause and resume over HTTP, ``kbroker ctl``,
the control listener's checks, and kbroker's --trace, --control and --from-snapshot options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from waiting import wait_until
from wire import Wire, create_topic, produce

from kbroker.broker import StartupError
from kbroker.testing import BrokerThread
from tests.integration.control_helpers import _no_faults_fixture, broker_fixture, http  # noqa: F401 (fixtures)

# -- the HTTP endpoint ---------------------------------------------------------------------------


def test_http_fault_lifecycle(broker):
    status, out = http(broker, "POST", "/faults", {"api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER", "count": 1})
    assert status == 200 and isinstance(out["id"], int)
    rule_id = out["id"]
    status, out = http(broker, "GET", "/faults")
    assert status == 200
    assert [(r["id"], r["api"], r["error"], r["fired"]) for r in out["faults"]] == [
        (rule_id, "Produce", "NOT_LEADER_OR_FOLLOWER", 0)]
    status, out = http(broker, "GET", f"/faults/{rule_id}")
    assert status == 200 and out["count"] == 1
    status, out = http(broker, "POST", "/faults", [{"api": "Fetch", "action": "delay", "delay_ms": 5},
                                                   {"api": "Metadata", "action": "drop", "probability": 0.5,
                                                    "seed": 7}])
    assert status == 200 and len(out["ids"]) == 2
    assert http(broker, "DELETE", f"/faults/{rule_id}") == (200, {"deleted": rule_id})
    assert http(broker, "DELETE", f"/faults/{rule_id}")[0] == 404
    assert http(broker, "DELETE", "/faults") == (200, {"deleted": 2})
    assert http(broker, "GET", "/faults") == (200, {"faults": []})
    assert http(broker, "GET", "/faults/fired") == (200, {"fired": []})


@pytest.mark.parametrize(("body", "field"), [
    ({"api": "Produc", "error": "NOT_LEADER_OR_FOLLOWER"}, "api"),
    ({"api": "Produce", "error": "NOT_A_LEADER"}, "error"),
    ({"api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER", "count": -1}, "count"),
    ({"api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER", "every": 0}, "every"),
    ({"api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER", "probability": 1.5}, "probability"),
    ({"api": "Produce", "action": "explode"}, "action"),
    ({"api": "Produce", "action": "delay"}, "delay_ms"),
    ({"api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER", "colour": "red"}, "colour"),
    ({"api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER", "partition": 0}, "partition"),
    ([{"api": "Produce", "error": "NONE"}, {"api": "Nope", "error": "NONE"}], "[1].api"),
    ("a string", "body"),
])
def test_http_bad_rules_are_refused_naming_the_field_and_nothing_is_applied(broker, body, field):
    status, out = http(broker, "POST", "/faults", body)
    assert status == 400, out
    assert out["field"] == field and field.split(".")[-1].strip("[]01") in out["error"]
    assert http(broker, "GET", "/faults") == (200, {"faults": []})


def test_http_bad_requests(broker):
    status, out = http(broker, "POST", "/faults", raw=b"{not json")
    assert (status, out["field"]) == (400, "body")
    assert "not JSON" in out["error"]
    assert http(broker, "POST", "/clock/advance", {"ms": 1000})[0] == 409  # the clock is real
    status, out = http(broker, "POST", "/clock/advance", {"ms": -5})
    assert (status, out["field"]) == (400, "ms")
    assert http(broker, "GET", "/nowhere")[0] == 404
    assert http(broker, "PUT", "/faults", {})[0] == 405
    assert http(broker, "DELETE", "/faults/abc")[0] == 400
    assert http(broker, "GET", "/faults") == (200, {"faults": []})


def test_http_pause_and_resume(broker):
    assert http(broker, "POST", "/pause", {}) == (200, {"paused": True})
    assert http(broker, "GET", "/status")[1]["paused"] is True
    assert http(broker, "POST", "/resume", {}) == (200, {"paused": False})
    assert http(broker, "GET", "/status")[1]["paused"] is False


def test_control_listener_must_be_loopback_and_not_a_kafka_port(tmp_path):
    with pytest.raises(StartupError, match="loopback"):
        BrokerThread({"kbroker.control.listeners": "0.0.0.0:0"}).start()
    with pytest.raises(StartupError, match="host:port"):
        BrokerThread({"kbroker.control.listeners": "nowhere"}).start()


def test_no_control_endpoint_unless_configured(kbroker_factory):
    b = kbroker_factory()
    assert b.broker.control.http is None
    assert b.broker.request_hooks is None  # the dispatcher pays nothing


def test_kbroker_ctl_command_line(broker):
    env = dict(os.environ, KBROKER_CONTROL_URL=broker.control_url)

    def ctl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "kbroker", "ctl", *args], env=env, capture_output=True,
                              text=True, timeout=60)

    done = ctl("faults", "add", "api=Produce", "error=NOT_LEADER_OR_FOLLOWER", "count=1", "topic=a")
    assert done.returncode == 0, done.stderr
    rule_id = json.loads(done.stdout)["id"]
    assert [r["id"] for r in broker.faults()] == [rule_id]
    assert broker.fault(rule_id)["topic"] == "a"
    listed = ctl("faults", "list")
    assert json.loads(listed.stdout)["faults"][0]["error"] == "NOT_LEADER_OR_FOLLOWER"
    bad = ctl("faults", "add", "api=Produce", "error=NOPE")
    assert bad.returncode == 1 and "field error" in bad.stderr
    assert ctl("clock", "advance", "1000").returncode == 1
    assert json.loads(ctl("clock", "show").stdout)["clock"] == "real"
    assert ctl("faults", "clear").returncode == 0
    assert broker.faults() == []


# -- the command line ----------------------------------------------------------------------------


def _stdout_line(proc, prefix: str) -> str:
    """The first stdout line of a BrokerProcess starting with ``prefix`` (read as it comes)."""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.proc.stdout, selectors.EVENT_READ)

    def line() -> str | None:
        for text in proc.stdout.decode(errors="replace").splitlines():
            if text.startswith(prefix):
                return text
        if sel.select(timeout=0.2):
            proc.stdout += os.read(proc.proc.stdout.fileno(), 4096)
        return None

    return wait_until(line, message=f"a line starting {prefix!r}")


def test_kbroker_trace_option_and_control_endpoint_line(tmp_path):
    from tests.integration.cli_helpers import BrokerProcess, base_args, produce

    trace = tmp_path / "trace.jsonl"
    proc = BrokerProcess([*base_args(tmp_path / "data"), "--trace", str(trace), "--override",
                          "kbroker.trace.apis=Produce,Metadata", "--override", "kbroker.control.listeners=127.0.0.1:0"],
                         tmp_path)
    try:
        ready = proc.wait_ready()
        host, port = ready.group(2), int(ready.group(3))
        url = _stdout_line(proc, "kbroker control endpoint: ").split(": ", 1)[1]
        with urllib.request.urlopen(url + "/status", timeout=30) as resp:
            assert json.loads(resp.read())["trace"] is True
        produce(host, port, "traced-cli", 3)
    finally:
        assert proc.stop() == 0
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    assert {r["api"] for r in records} == {"Produce", "Metadata"}  # the filter: no ApiVersions etc.
    produced = [r for r in records if r["api"] == "Produce"]
    assert produced[0]["client_id"] == "cli" and produced[0]["errors"] == {}
    assert produced[0]["request"]["topic_data"][0]["partition_data"][0]["records"]["records"] == 3


def test_kbroker_bad_trace_filter_stops_start_up(tmp_path):
    from tests.integration.cli_helpers import BrokerProcess, base_args

    proc = BrokerProcess([*base_args(tmp_path / "data"), "--trace", str(tmp_path / "t.jsonl"), "--override",
                          "kbroker.trace.apis=Produce,Bogus"], tmp_path)
    assert proc.proc.wait(60) == 1
    proc.stop()
    assert "kbroker.trace.apis" in proc.stderr() and "Bogus" in proc.stderr()


def test_kbroker_from_snapshot_option(tmp_path):
    from tests.integration.cli_helpers import BrokerProcess, base_args, end_offset

    snap = tmp_path / "snap"
    with BrokerThread() as b:
        wire = Wire(b.bootstrap_servers)
        try:
            create_topic(wire, "snapped")
            produce(wire, "snapped", 0, 4)
        finally:
            wire.close()
        b.snapshot(str(snap))
    proc = BrokerProcess([*base_args(tmp_path / "data"), "--from-snapshot", str(snap)], tmp_path)
    try:
        ready = proc.wait_ready()
        assert end_offset(ready.group(2), int(ready.group(3)), "snapped") == 4
    finally:
        assert proc.stop() == 0
    # the data dir is not empty any more: refused, nothing touched
    proc = BrokerProcess([*base_args(tmp_path / "data"), "--from-snapshot", str(snap)], tmp_path)
    assert proc.proc.wait(60) == 2
    proc.stop()
    assert "not empty" in proc.stderr()
