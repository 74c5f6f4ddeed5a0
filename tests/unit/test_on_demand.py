"""kbroker.wiring.on_demand: a service built on its first use, or with the broker's services when
the metadata holds one of its topics, started at once when built while the broker runs."""

from __future__ import annotations

import pytest

from kbroker.metadata.image import MetadataImage
from kbroker.metadata.metadata_records import TopicRecord
from kbroker.wiring.on_demand import OnDemand


class _Host:
    def __init__(self) -> None:
        self.image = MetadataImage()


class _Service:
    def __init__(self) -> None:
        self.events: list[str] = []


class _OnDemand(OnDemand[_Service]):
    topics = frozenset({"__own"})

    def __init__(self, host: _Host) -> None:
        super().__init__(host)
        self.built_count = 0
        self.reenter = False

    def _build(self) -> _Service:
        self.built_count += 1
        if self.reenter:
            self.get()
        return _Service()

    def _start_built(self, built: _Service) -> None:
        built.events.append("start")

    async def _stop_built(self, built: _Service) -> None:
        built.events.append("stop")


async def test_built_on_first_use_and_started_while_running() -> None:
    service = _OnDemand(_Host())
    service.start()
    assert not service.built
    first = service.get()
    assert first.events == ["start"] and service.get() is first and service.built_count == 1
    await service.stop()
    assert first.events == ["start", "stop"]
    service.start()  # (the control plane's reset: stopped, then started again)
    assert first.events == ["start", "stop", "start"]


async def test_built_before_the_start_is_started_with_it() -> None:
    service = _OnDemand(_Host())
    built = service.get()
    assert built.events == []
    service.start()
    assert built.events == ["start"]


async def test_built_at_start_when_the_metadata_holds_its_topic() -> None:
    host = _Host()
    host.image.topics["__own"] = object()  # type: ignore[assignment]
    service = _OnDemand(host)
    service.start()
    assert service.built and service.get().events == ["start"]


async def test_the_topics_creation_builds_it_while_running_only() -> None:
    host = _Host()
    service = _OnDemand(host)
    service.on_metadata_record(TopicRecord(name="__own"))
    assert not service.built  # not running yet: its start decides
    service.start()
    service.on_metadata_record(TopicRecord(name="other"))
    assert not service.built
    service.on_metadata_record(TopicRecord(name="__own"))
    assert service.built and service.get().events == ["start"]


async def test_needed_while_being_built_is_an_error() -> None:
    service = _OnDemand(_Host())
    service.reenter = True
    with pytest.raises(RuntimeError, match="being built"):
        service.get()
    assert not service.built
