"""A share-group client at the wire for the tests: heartbeat, fetch and acknowledge by hand."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from wire import Wire

from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS
from kbroker_protocol.records import iter_records

E = ErrorCode
HB, DESCRIBE, FETCH, ACK = 76, 77, 78, 79
ACCEPT, RELEASE, REJECT, GAP, RENEW = 1, 2, 3, 0, 4


def topic_id(wire: Wire, name: str) -> uuid.UUID:
    Req = REQUESTS[3]
    resp = wire.call(3, 12, topics=[Req.MetadataRequestTopic(name=name)], allow_auto_topic_creation=False)
    return resp.topics[0].topic_id


def heartbeat(wire: Wire, group: str, member: str, epoch: int, topics: list[str] | None = None,
              rack: str | None = None):
    return wire.call(HB, 1, group_id=group, member_id=member, member_epoch=epoch, rack_id=rack,
                     subscribed_topic_names=topics)


def values(records) -> list[bytes]:
    data = bytes(records or b"")
    return [r.value for r in iter_records(data)] if data else []


def offsets_of(records) -> list[int]:
    data = bytes(records or b"")
    return [r.offset for r in iter_records(data)] if data else []


@dataclass
class ShareClient:
    """One member's share session: ``fetch`` and ``ack`` keep the session epoch."""

    wire: Wire
    group: str
    member: str = field(default_factory=lambda: uuid.uuid4().hex[:22])
    epoch: int = 0
    member_epoch: int = 0

    def fetch(self, tid: uuid.UUID, partition: int = 0, *, acks: list[tuple[int, int, list[int]]] | None = None,
              max_records: int = 500, max_wait_ms: int = 0, epoch: int | None = None, version: int = 1, **extra):
        Req = REQUESTS[FETCH]
        P = Req.FetchTopic.FetchPartition
        batches = [P.AcknowledgementBatch(first_offset=f, last_offset=last, acknowledge_types=t)
                   for f, last, t in (acks or [])]
        use_epoch = self.epoch if epoch is None else epoch
        resp = self.wire.call(FETCH, version, group_id=self.group, member_id=self.member,
                              share_session_epoch=use_epoch, max_wait_ms=max_wait_ms, min_bytes=1,
                              max_bytes=extra.pop("max_bytes", 1 << 20), max_records=max_records, batch_size=500,
                              topics=[Req.FetchTopic(topic_id=tid, partitions=[
                                  P(partition_index=partition, acknowledgement_batches=batches)])],
                              forgotten_topics_data=[], **extra)
        if resp.error_code == E.NONE and epoch is None:
            self.epoch = 1 if self.epoch == 0 else (self.epoch + 1 if self.epoch > 0 else self.epoch)
        return resp

    def ack(self, tid: uuid.UUID, acks: list[tuple[int, int, list[int]]], partition: int = 0,
            epoch: int | None = None, version: int = 1, **extra):
        Req = REQUESTS[ACK]
        P = Req.AcknowledgeTopic.AcknowledgePartition
        use_epoch = self.epoch if epoch is None else epoch
        resp = self.wire.call(ACK, version, group_id=self.group, member_id=self.member,
                              share_session_epoch=use_epoch,
                              topics=[Req.AcknowledgeTopic(topic_id=tid, partitions=[P(
                                  partition_index=partition, acknowledgement_batches=[
                                      P.AcknowledgementBatch(first_offset=f, last_offset=last, acknowledge_types=t)
                                      for f, last, t in acks])])], **extra)
        if resp.error_code == E.NONE and epoch is None and self.epoch > 0:
            self.epoch += 1
        return resp

    def join(self, topics: list[str]):
        resp = heartbeat(self.wire, self.group, self.member, 0, topics)
        assert resp.error_code == E.NONE, (resp.error_code, resp.error_message)
        self.member_epoch = resp.member_epoch
        return resp

    def heartbeat(self):
        """Keep the group membership (the manual clock's advances count against its session)."""
        resp = heartbeat(self.wire, self.group, self.member, self.member_epoch)
        assert resp.error_code == E.NONE, (resp.error_code, resp.error_message)
        self.member_epoch = resp.member_epoch
        return resp


def part(resp, index: int = 0):
    """The only topic's partition ``index`` of a ShareFetch/ShareAcknowledge response."""
    for t in resp.responses:
        for p in t.partitions:
            if p.partition_index == index:
                return p
    raise AssertionError(f"partition {index} not in {resp}")


def acquired(resp, index: int = 0) -> list[tuple[int, int, int]]:
    return [(a.first_offset, a.last_offset, a.delivery_count) for a in part(resp, index).acquired_records]
