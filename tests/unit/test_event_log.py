"""kbroker.api.produce.EventLog: at most one line a second per key, the events between counted."""

from __future__ import annotations

import logging

import pytest

from kbroker.api.produce import EventLog


def test_one_line_per_key_and_interval_with_the_events_not_logged_counted(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="evlog-test")
    now = [100.0]
    events = EventLog(logging.getLogger("evlog-test"), interval=1.0, clock=lambda: now[0])
    assert events.log(("a",), logging.INFO, "event %s", "a1")
    assert events.log(("b",), logging.INFO, "event %s", "b1")  # another key: its own line
    now[0] = 100.5
    assert not events.log(("a",), logging.INFO, "event %s", "a2")
    assert not events.log(("a",), logging.INFO, "event %s", "a3")
    now[0] = 101.0
    assert events.log(("a",), logging.INFO, "event %s", "a4")
    now[0] = 102.5
    assert events.log(("a",), logging.INFO, "event %s", "a5")
    assert [r.getMessage() for r in caplog.records if r.name == "evlog-test"] == [
        "event a1", "event b1", "event a4 (2 more like it since the last line)", "event a5"]


def test_a_disabled_level_logs_nothing_and_the_keys_stay_bounded(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING, logger="evlog-test2")
    events = EventLog(logging.getLogger("evlog-test2"), clock=lambda: 0.0, max_keys=2)
    assert not events.log(("a",), logging.INFO, "quiet")
    assert events.log(("a",), logging.WARNING, "w a") and events.log(("b",), logging.WARNING, "w b")
    assert events.log(("c",), logging.WARNING, "w c")  # the table was full: forgotten, not refused
    assert events.log(("a",), logging.WARNING, "w a again")  # forgotten with the rest
    assert [r.getMessage() for r in caplog.records if r.name == "evlog-test2"] == ["w a", "w b", "w c", "w a again"]
