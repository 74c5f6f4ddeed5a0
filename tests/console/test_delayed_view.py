"""The console's pending delayed records: read from __kbroker_delayed with Fetch, decoded by
kbroker.delayed's decoder, pending while above the partition's progress watermark."""

from __future__ import annotations

import pytest

from kbroker.testing import BrokerThread
from tests.console.helpers import get, post
from tests.integration.waiting import wait_until


@pytest.fixture(scope="module")
def base():
    with BrokerThread({"kbroker.http.listeners": "http://127.0.0.1:0", "offsets.topic.num.partitions": "1",
                       "kbroker.delayed.topic.num.partitions": "2", "kbroker.delayed.topic.replication.factor": "1",
                       "kbroker.delayed.topic.min.isr": "1"}) as b:
        yield b.broker.metrics.http.url


def test_pending_delayed_records_until_delivered(base) -> None:
    assert get(base, "/api/delayed") == {"topic": "__kbroker_delayed", "pending": [], "truncated": False}
    post(base, "/api/topics", {"name": "later", "partitions": 2})
    post(base, "/api/topics/later/produce", {"partition": 1, "key": "k-long", "value": "in ten minutes",
                                             "headers": [{"key": "kbroker-deliver-after-ms", "value": "600000"}]})
    post(base, "/api/topics/later/produce", {"partition": 0, "value": "<script>soon</script>",
                                             "headers": [{"key": "kbroker-deliver-after-ms", "value": "300"}]})

    def delivered() -> bool:
        return any(r["value"]["text"] == "<script>soon</script>"
                   for r in get(base, "/api/topics/later/messages?partition=all")["records"])

    wait_until(delivered, message="the short-delay record delivered to its topic")
    view = get(base, "/api/delayed")
    assert view["truncated"] is False and view["count"] == 1
    [row] = view["pending"]
    assert (row["topic"], row["partition"], row["key"]["text"], row["value"]["text"]) == (
        "later", 1, "k-long", "in ten minutes")
    assert row["due"] - row["timestamp"] >= 600000 - 1000
    assert not any(r["value"]["text"] == "in ten minutes"
                   for r in get(base, "/api/topics/later/messages?partition=all")["records"])
