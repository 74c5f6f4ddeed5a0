"""A fuzzer of request *sequences*: the stateful conversations clients have with a broker
(join/sync/heartbeat/commit/leave/delete of a classic group, KIP-848 heartbeats,
init/add/produce/commit/end of a transaction, an idempotent producer's sequence numbers,
incremental fetch sessions, a topic created, used, grown, trimmed, reconfigured and deleted while
a fetch session holds it), with some steps mutated, repeated, skipped or
replayed from earlier in the conversation.

Each sequence is a generator yielding ``(request, version)`` and receiving the decoded response
(``None`` when there is none to give: a skipped, byte-mutated or unanswered step), so later steps
use the member ids, generations, producer ids and epochs and fetch sessions the broker handed out,
as real clients do. The driver sends every step followed by a probe (an ApiVersions request): the
probe's answer proves the step was answered or dropped (a Produce that became acks=0) rather than
stuck, and a step whose answer or close does not come within ``deadline_s`` is a hang.

Invariants checked here: every request is answered or its connection closed within the deadline;
a response decodes as the API and version of the request that was sent (as the broker decoded
it); a request that was not mutated is never answered by closing the connection; after every
sequence a clean client can still produce, fetch and find a coordinator. The third invariant --
the broker logs no traceback for client input -- is the caller's: ``tests/hostile/
test_sequence_fuzz.py`` watches the in-process broker's log records, ``scripts/fuzz_sequences.py``
a broker process's log. Steps that would legitimately wait (Fetch's max wait, a join's rebalance
and session timeouts) are capped at ``wait_cap_ms`` after mutation, so a deadline can tell a hang
from a long poll.
"""

from __future__ import annotations

import copy
import random
import socket
import struct
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kbroker.testing.conversations import (
    DT,
    FC,
    MD,
    SEQUENCES,
    Context,
    E,
    F,
    P,
    _first_error,
    _leaves,
)
from kbroker_protocol import messages
from kbroker_protocol.api import decode_request, decode_response, encode_request
from kbroker_protocol.exceptions import ProtocolError
from kbroker_protocol.messages import RequestHeader
from kbroker_protocol.mutation import mutate
from kbroker_protocol.records import Record, build_batch

if TYPE_CHECKING:
    from kbroker_protocol.primitives import Message

__all__ = ["SEQUENCES", "Finding", "Hang", "SequenceFuzzer", "Stats"]

# Fields a broker may legitimately wait on before answering: capped after a mutation.
WAIT_FIELDS = ("max_wait_ms", "rebalance_timeout_ms", "session_timeout_ms", "timeout_ms")
PROBE_KEY, PROBE_VERSION = 18, 3
PROBE_CID_BASE = 0x70000000


class Hang(Exception):
    """A request neither answered nor its connection closed within the deadline."""


@dataclass
class Finding:
    kind: str  # "hang", "bad-response", "closed-on-clean", "clean-client"
    sequence: str
    detail: str
    frame: bytes = b""

    def __str__(self) -> str:
        tail = f" frame={self.frame.hex()}" if self.frame else ""
        return f"{self.kind} in {self.sequence}: {self.detail}{tail}"


@dataclass
class Stats:
    sequences: int = 0
    requests: int = 0
    mutated: int = 0
    closed: int = 0
    findings: list[Finding] = field(default_factory=list)
    # (API key, top-level error code or None) of the responses to steps sent as built: shows how
    # far the conversations get.
    outcomes: Counter[tuple[int | None, int | None]] = field(default_factory=Counter)


class Conn:
    """A socket to the broker that sends one frame and a probe and reads until the probe's answer."""

    def __init__(self, bootstrap: str, deadline_s: float) -> None:
        host, port = bootstrap.split(",")[0].rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=deadline_s)
        self.probes = 0

    def close(self) -> None:
        self.sock.close()

    def _read_exact(self, n: int) -> bytes | None:
        out = bytearray()
        while len(out) < n:
            try:
                chunk = self.sock.recv(n - len(out))
            except TimeoutError:
                raise Hang(f"no answer nor close within {self.sock.gettimeout()} s") from None
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            out += chunk
        return bytes(out)

    def exchange(self, frames: list[bytes]) -> tuple[list[bytes], bool]:
        """Send ``frames`` then a probe; returns the responses that came before the probe's, and
        whether the broker closed the connection instead of answering the probe."""
        self.probes += 1
        cid = PROBE_CID_BASE + self.probes
        probe = encode_request(RequestHeader(request_api_key=PROBE_KEY, request_api_version=PROBE_VERSION,
                                             correlation_id=cid, client_id="probe"),
                               messages.ApiVersionsRequest(client_software_name="probe", client_software_version="1"))
        try:
            self.sock.sendall(b"".join(struct.pack(">i", len(f)) + f for f in [*frames, probe]))
        except (BrokenPipeError, ConnectionResetError):
            return [], True
        responses: list[bytes] = []
        while True:
            size = self._read_exact(4)
            if size is None:
                return responses, True
            payload = self._read_exact(struct.unpack(">i", size)[0])
            if payload is None:
                return responses, True
            if struct.unpack_from(">i", payload)[0] == cid:
                return responses, False
            responses.append(payload)


def frame_of(request: Any, version: int, correlation_id: int) -> bytes:
    header = RequestHeader(request_api_key=request.API_KEY, request_api_version=version,
                           correlation_id=correlation_id, client_id="seqfuzz")
    return encode_request(header, request)


def cap_waits(body: object, cap_ms: int) -> bool:
    """Cap the fields the broker may wait on; True if one was changed."""
    changed = False
    for name in WAIT_FIELDS:
        value = getattr(body, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > cap_ms:
            setattr(body, name, cap_ms)
            changed = True
    return changed


def hostile_value(value: object, rng: random.Random, strings: list[str]) -> object:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return rng.choice([0, -1, 1, value + 1, value - 1, 0x7FFFFFFF, -0x80000000, 0x7FFF, -2,
                           rng.randrange(-3, 100)])
    if isinstance(value, str) or value is None:
        return rng.choice(["", None, (value or "") + "x", "x" * rng.choice([1, 249, 300]),
                           rng.choice(strings) if strings else "s", "\u00e9\x00"])
    if isinstance(value, bytes | bytearray | memoryview):
        return rng.choice([b"", None, mutate(bytes(value), rng)])
    if isinstance(value, uuid.UUID):
        return rng.choice([uuid.UUID(int=0), uuid.uuid4(), uuid.UUID(int=rng.getrandbits(128))])
    if isinstance(value, list):
        return rng.choice([[], None, value * 2, value[:1], list(reversed(value))])
    return value


def mutate_fields(request: object, rng: random.Random, strings: list[str]) -> None:
    """Replace one to three fields anywhere in ``request`` (nested structs and lists included)."""
    for _ in range(rng.choice((1, 1, 2, 3))):
        leaves = _leaves(request)
        if not leaves:
            return
        obj, name, value = rng.choice(leaves)
        setattr(obj, name, hostile_value(value, rng, strings))


# -- the driver -----------------------------------------------------------------------------


class SequenceFuzzer:
    """Runs sequences against a broker at ``bootstrap``; findings accumulate in ``stats``.

    ``setup()`` creates the fuzz topic (two partitions) and waits for the coordinators' topics."""

    def __init__(self, bootstrap: str, seed: int, *, wait_cap_ms: int = 500, deadline_s: float = 15.0,
                 mutation_rate: float = 0.3) -> None:
        self.bootstrap = bootstrap
        self.rng = random.Random(seed)
        self.wait_cap_ms = wait_cap_ms
        self.deadline_s = deadline_s
        self.mutation_rate = mutation_rate
        self.stats = Stats()
        self.strings: list[str] = []
        self.topic = "seqfuzz"
        self.topic_id = uuid.UUID(int=0)
        self.serial = 0
        self._cid = 0

    # A blocking call for set-up and the clean-client check (never mutated).
    def _call(self, conn: Conn, request: Any, version: int) -> Any:
        self._cid += 1
        responses, closed = conn.exchange([frame_of(request, version, self._cid)])
        self.stats.requests += 1
        if closed or len(responses) != 1:
            raise ConnectionError(f"api {request.API_KEY} v{version}: closed={closed}, {len(responses)} responses")
        return decode_response(responses[0], request.API_KEY, version)[1]

    def setup(self) -> None:
        conn = Conn(self.bootstrap, self.deadline_s)
        try:
            CT = messages.CreateTopicsRequest
            resp = self._call(conn, CT(topics=[CT.CreatableTopic(name=self.topic, num_partitions=2, replication_factor=1,
                                                                 assignments=[], configs=[])],
                                       timeout_ms=5000, validate_only=False), 7)
            result = resp.topics[0]
            if result.error_code not in (E.NONE, E.TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"cannot create {self.topic}: {result.error_code}")
            meta = self._call(conn, messages.MetadataRequest(topics=[messages.MetadataRequest.MetadataRequestTopic(name=self.topic)],
                                         allow_auto_topic_creation=False, include_topic_authorized_operations=False), 12)
            self.topic_id = meta.topics[0].topic_id
            for key_type, key in ((0, "setup-group"), (1, "setup-txn")):
                for _ in range(50):  # the first asks create the coordinators' topics
                    found = self._call(conn, FC(key_type=key_type, coordinator_keys=[key]), 4)
                    if found.coordinators[0].error_code == E.NONE:
                        break
        finally:
            conn.close()

    def clean_client_works(self, name: str) -> bool:
        """A client that was not fuzzed can still produce, fetch back and find a coordinator."""
        try:
            conn = Conn(self.bootstrap, self.deadline_s)
        except OSError as exc:
            self._find("clean-client", name, f"cannot connect: {exc}")
            return False
        try:
            versions = self._call(conn, messages.ApiVersionsRequest(client_software_name="clean", client_software_version="1"), 3)
            batch = build_batch([Record(key=None, value=b"clean", timestamp=1_700_000_000_000)])
            produced = self._call(conn, P(transactional_id=None, acks=-1, timeout_ms=5000, topic_data=[
                P.TopicProduceData(name=self.topic, partition_data=[
                    P.TopicProduceData.PartitionProduceData(index=0, records=batch)])]), 9)
            part = produced.responses[0].partition_responses[0]
            fetched = self._call(conn, F(replica_id=-1, max_wait_ms=0, min_bytes=0, max_bytes=1 << 20,
                                         isolation_level=0, session_id=0, session_epoch=-1, topics=[
                                             F.FetchTopic(topic=self.topic, partitions=[F.FetchTopic.FetchPartition(
                                                 partition=0, fetch_offset=max(part.base_offset, 0),
                                                 partition_max_bytes=65536)])],
                                         forgotten_topics_data=[], rack_id=""), 12)
            fpart = fetched.responses[0].partitions[0]
            found = self._call(conn, FC(key_type=0, coordinator_keys=[f"clean-{self.serial}"]), 4)
            problems = [what for what, bad in (
                ("ApiVersions", versions.error_code != E.NONE),
                (f"Produce {part.error_code}", part.error_code != E.NONE),
                (f"Fetch {fpart.error_code}", fpart.error_code != E.NONE or not fpart.records),
                (f"FindCoordinator {found.coordinators[0].error_code}",
                 found.coordinators[0].error_code not in (E.NONE, E.COORDINATOR_NOT_AVAILABLE)),
            ) if bad]
            if problems:
                self._find("clean-client", name, ", ".join(problems))
                return False
            return True
        except (Hang, ConnectionError, ProtocolError, OSError) as exc:
            self._find("clean-client", name, f"{type(exc).__name__}: {exc}")
            return False
        finally:
            conn.close()

    def _find(self, kind: str, sequence: str, detail: str, frame: bytes = b"") -> None:
        self.stats.findings.append(Finding(kind, sequence, detail, frame))

    def _prepare(self, request: Message, version: int, history: list[bytes]) -> tuple[list[bytes], bool]:
        """The frames to send for one step, and whether they are the step as the sequence built it."""
        rng = self.rng
        self._cid += 1
        clean = frame_of(request, version, self._cid)
        history.append(clean)
        if rng.random() >= self.mutation_rate:
            return [clean], True
        self.stats.mutated += 1
        how = rng.randrange(11)
        if how == 10:  # the step at another version the API has (older rules, other encodings)
            other = rng.randrange(request.MIN_VERSION, request.MAX_VERSION + 1)
            try:
                return [frame_of(request, other, self._cid)], False
            except (ValueError, TypeError, AttributeError, OverflowError, UnicodeEncodeError):
                how = 0
        if how < 4:  # change fields, then encode (fall back to bytes when the wire cannot carry it)
            mutated = copy.deepcopy(request)  # the sequence may reuse parts of its requests
            mutate_fields(mutated, rng, self.strings)
            cap_waits(mutated, self.wait_cap_ms)
            try:
                return [frame_of(mutated, version, self._cid)], False
            except (ValueError, TypeError, AttributeError, OverflowError, UnicodeEncodeError):
                pass
        if how < 7:
            return [self._capped(mutate(clean, rng))], False
        if how == 7:
            return [clean, clean], False  # the same step twice
        if how == 8:
            return [], False  # skipped
        return [clean, rng.choice(history)], False  # and a replay of an earlier step (how == 9)

    def _capped(self, frame: bytes) -> bytes:
        """A mutated frame whose decoded form would wait longer than the cap, re-encoded capped."""
        try:
            header, body = decode_request(frame)
        except ProtocolError:
            return frame
        if not cap_waits(body, self.wait_cap_ms):
            return frame
        try:
            return encode_request(header, body)
        except (ValueError, TypeError, AttributeError, OverflowError, UnicodeEncodeError):
            return frame_of(messages.ApiVersionsRequest(), 0, header.correlation_id)

    def _check_responses(self, name: str, frames: list[bytes], responses: list[bytes]) -> None:
        """Each response decodes as the API and version of its request, as the broker read it."""
        expected: list[tuple[bytes, tuple[int, int, int] | None]] = []
        for frame in frames:
            try:
                header, body = decode_request(frame)
            except ProtocolError:
                expected.append((frame, None))  # the broker closes the connection: no response
                continue
            if header.request_api_key == 0 and getattr(body, "acks", 1) == 0:
                continue  # no response
            expected.append((frame, (header.request_api_key, header.request_api_version, header.correlation_id)))
        if len(responses) > len(expected):
            self._find("bad-response", name, f"{len(responses)} responses to {len(frames)} requests",
                       frames[0] if frames else b"")
            return
        for data, (frame, want) in zip(responses, expected, strict=False):
            if want is None:
                continue
            key, version, cid = want
            try:
                resp_header, _body = decode_response(data, key, version)
            except ProtocolError as exc:
                if key == PROBE_KEY:  # an unsupported ApiVersions version is answered in v0
                    continue
                self._find("bad-response", name, f"api {key} v{version} response does not decode: {exc}", frame)
                continue
            if resp_header.correlation_id != cid:
                self._find("bad-response", name,
                           f"api {key} v{version}: correlation id {resp_header.correlation_id} for {cid}", frame)

    def run_sequence(self, name: str | None = None) -> None:
        rng = self.rng
        name = name or rng.choice(sorted(SEQUENCES))
        self.serial += 1
        ctx = Context(rng, self.topic, self.topic_id, self.wait_cap_ms, serial=self.serial * 1000)
        steps = SEQUENCES[name](ctx)
        history: list[bytes] = []
        conn: Conn | None = None
        response = None
        try:
            while True:
                try:
                    request, version = steps.send(response)
                except StopIteration:
                    break
                for attr in ("group_id", "member_id", "transactional_id"):
                    value = getattr(request, attr, None)
                    if isinstance(value, str) and value and len(self.strings) < 200:
                        self.strings.append(value)
                if conn is None:
                    conn = Conn(self.bootstrap, self.deadline_s)
                frames, as_built = self._prepare(request, version, history)
                try:
                    responses, closed = conn.exchange(frames)
                except Hang as exc:
                    self._find("hang", name, str(exc), frames[0] if frames else b"")
                    return
                self.stats.requests += len(frames)
                self._check_responses(name, frames, responses)
                response = None
                if closed:
                    self.stats.closed += 1
                    conn.close()
                    conn = None
                    if as_built:
                        self._find("closed-on-clean", name, f"api {request.API_KEY} v{version}", frames[0])
                elif as_built and len(responses) == 1:
                    try:
                        response = decode_response(responses[0], request.API_KEY, version)[1]
                    except ProtocolError:
                        response = None  # reported by _check_responses
                    self.stats.outcomes[(request.API_KEY, _first_error(response))] += 1
        finally:
            if conn is not None:
                conn.close()
            self.stats.sequences += 1

    def delete_other_topics(self, name: str) -> None:
        """Delete the topics sequences created and left (mutated steps may skip a deletion or create
        other names), so a long run does not accumulate them."""
        try:
            conn = Conn(self.bootstrap, self.deadline_s)
        except OSError as exc:
            self._find("clean-client", name, f"cannot connect: {exc}")
            return
        try:
            meta = self._call(conn, MD(topics=None, allow_auto_topic_creation=False,
                                       include_topic_authorized_operations=False), 12)
            names = [t.name for t in meta.topics if t.name != self.topic and not t.is_internal]
            if names:
                resp = self._call(conn, DT(topics=[DT.DeleteTopicState(name=n) for n in names],
                                           timeout_ms=5000), 6)
                failed = [(r.name, r.error_code) for r in resp.responses
                          if r.error_code not in (E.NONE, E.UNKNOWN_TOPIC_OR_PARTITION)]
                if failed:
                    self._find("clean-client", name, f"cannot delete leftover topics: {failed}")
        except (Hang, ConnectionError, ProtocolError, OSError) as exc:
            self._find("clean-client", name, f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()

    def run(self, sequences: int, *, after_each: Callable[[], None] | None = None) -> Stats:
        for _ in range(sequences):
            name = self.rng.choice(sorted(SEQUENCES))
            self.run_sequence(name)
            self.clean_client_works(name)
            if name == "topic_lifecycle":
                self.delete_other_topics(name)
            if after_each is not None:
                after_each()
        return self.stats
