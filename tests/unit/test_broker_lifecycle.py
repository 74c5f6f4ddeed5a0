"""The broker's registration and heartbeat lifecycle (kbroker.metadata.broker_lifecycle) as Kafka
4.4's BrokerLifecycleManager: the state machine alone, then the driver over a fake channel backed
by the real controller logic, on a virtual clock."""

from __future__ import annotations

import asyncio
import uuid

from kbroker.controller.cluster_control import ClusterControl
from kbroker.metadata.broker_lifecycle import (
    BROKER_HEARTBEAT,
    BROKER_REGISTRATION,
    BrokerLifecycleManager,
    BrokerState,
    ControllerUnavailable,
    LifecycleMachine,
)
from kbroker.metadata.features import SUPPORTED_FEATURES
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages.broker_heartbeat import BrokerHeartbeatResponse
from kbroker_protocol.messages.broker_registration import BrokerRegistrationResponse
from tests.unit.cluster_helpers import CLUSTER_ID, MemoryLog, heartbeat, registration


def machine(**kw) -> LifecycleMachine:
    m = LifecycleMachine(1, CLUSTER_ID, listeners=[("PLAINTEXT", "localhost", 9092, 0)],
                         features=dict(SUPPORTED_FEATURES), log_dirs=[uuid.uuid4()], **kw)
    m.metadata_offset = lambda: 41
    return m


def ok_registration(epoch=7):
    return BrokerRegistrationResponse(error_code=ErrorCode.NONE, broker_epoch=epoch)


def hb_response(*, caught_up=True, fenced=True, shut_down=False, error=ErrorCode.NONE):
    return BrokerHeartbeatResponse(error_code=error, is_caught_up=caught_up, is_fenced=fenced,
                                   should_shut_down=shut_down)


# -- the state machine ---------------------------------------------------------------------------


def test_registration_is_retried_every_heartbeat_interval_until_accepted():
    m = machine()
    m.start(0)
    api_key, req = m.poll(0)
    assert api_key == BROKER_REGISTRATION and req.broker_id == 1 and req.cluster_id == CLUSTER_ID
    assert m.poll(0) is None  # one exchange in flight at a time
    m.on_failure(api_key, 5, "controller unavailable")
    assert m.poll(2004) is None and m.next_wakeup() == 2005
    api_key, _ = m.poll(2005)
    m.on_response(api_key, BrokerRegistrationResponse(error_code=ErrorCode.DUPLICATE_BROKER_REGISTRATION), 2010)
    assert not m.registered and m.poll(4009) is None
    api_key, _ = m.poll(4010)
    m.on_response(api_key, ok_registration(), 4011)
    assert m.registered and m.broker_epoch == 7 and m.state == BrokerState.STARTING
    api_key, req = m.poll(4011)  # the first heartbeat goes at once
    assert api_key == BROKER_HEARTBEAT
    assert (req.broker_epoch, req.current_metadata_offset, req.want_fence, req.want_shut_down) == (7, 41, True, False)


def test_startup_states_starting_recovery_running():
    m = machine()
    m.start(0)
    m.on_response(*m.poll(0)[:1], ok_registration(), 0)
    m.poll(0)
    m.on_response(BROKER_HEARTBEAT, hb_response(caught_up=False), 1)
    assert m.state == BrokerState.STARTING and m.next_at == 11
    m.poll(11)
    m.on_response(BROKER_HEARTBEAT, hb_response(caught_up=True), 12)
    assert m.state == BrokerState.RECOVERY and m.caught_up and m.next_at == 22
    _, req = m.poll(22)
    assert req.want_fence  # not ready to unfence yet
    m.on_response(BROKER_HEARTBEAT, hb_response(fenced=True), 23)
    assert m.state == BrokerState.RECOVERY and m.next_at == 2023
    m.set_ready_to_unfence(100)
    _, req = m.poll(100)
    assert not req.want_fence
    m.on_response(BROKER_HEARTBEAT, hb_response(fenced=False), 101)
    assert m.state == BrokerState.RUNNING and m.unfenced and m.next_at == 2101


def test_an_event_during_an_exchange_sends_again_right_after_it():
    m = machine()
    m.start(0)
    m.on_response(BROKER_REGISTRATION, (m.poll(0), ok_registration())[1], 0)
    m.poll(0)
    m.set_ready_to_unfence(1)  # while the heartbeat is in flight
    m.on_response(BROKER_HEARTBEAT, hb_response(caught_up=True), 2)
    assert m.next_at == 2  # not 10 ms later: immediately


def test_heartbeat_errors_are_retried_without_reregistering():
    m = machine()
    m.start(0)
    m.on_response(BROKER_REGISTRATION, (m.poll(0), ok_registration())[1], 0)
    m.poll(0)
    m.on_response(BROKER_HEARTBEAT, hb_response(error=ErrorCode.STALE_BROKER_EPOCH), 1)
    assert m.registered and m.next_at == 2001
    assert m.poll(2001)[0] == BROKER_HEARTBEAT
    m.on_failure(BROKER_HEARTBEAT, 2002, "controller unavailable")
    m.resend_registration(2003)
    assert m.poll(2003)[0] == BROKER_REGISTRATION


def test_gives_up_when_registration_never_succeeds():
    m = machine(initial_registration_timeout_ms=60_000)
    m.start(0)
    t, attempts = 0, []
    while True:
        request = m.poll(t)
        if m.state == BrokerState.SHUTTING_DOWN:
            break
        if request is not None:
            attempts.append(t)
            m.on_failure(request[0], t, "controller unavailable")
        t = m.next_wakeup()
    assert t == 60_000 and m.shutdown_reason == "registration timeout"
    assert attempts == list(range(0, 60_000, 2000))


def _running(m: LifecycleMachine) -> None:
    m.start(0)
    m.on_response(BROKER_REGISTRATION, (m.poll(0), ok_registration())[1], 0)
    m.set_ready_to_unfence(0)
    m.poll(0)
    m.on_response(BROKER_HEARTBEAT, hb_response(caught_up=True), 0)
    m.poll(0)
    m.on_response(BROKER_HEARTBEAT, hb_response(fenced=False), 0)
    assert m.state == BrokerState.RUNNING


def test_controlled_shutdown_heartbeats_until_the_controller_lets_go():
    m = machine()
    _running(m)
    m.begin_controlled_shutdown(500)
    assert m.state == BrokerState.PENDING_CONTROLLED_SHUTDOWN
    _, req = m.poll(500)
    assert req.want_shut_down
    m.on_response(BROKER_HEARTBEAT, hb_response(fenced=False), 501)
    assert m.next_at == 551  # 50 ms until the first answer came
    m.poll(551)
    m.on_response(BROKER_HEARTBEAT, hb_response(fenced=False), 552)
    assert m.next_at == 2552  # then the heartbeat interval
    m.poll(2552)
    m.on_response(BROKER_HEARTBEAT, hb_response(fenced=True, shut_down=True), 2553)
    assert m.state == BrokerState.SHUTTING_DOWN and m.shutdown_reason == "controlled shutdown complete"
    assert m.poll(10_000) is None


def test_controlled_shutdown_before_running_shuts_down_at_once():
    m = machine()
    m.start(0)
    m.begin_controlled_shutdown(1)
    assert m.state == BrokerState.SHUTTING_DOWN and m.shutdown_reason == "controlled shutdown skipped"


# -- the driver, against the real controller logic -----------------------------------------------


class VirtualClock:
    """Time moves only when every task waits: a wait with a timeout jumps to its end."""

    def __init__(self) -> None:
        self.t = 0

    def now(self) -> int:
        return self.t

    async def wait(self, event: asyncio.Event, timeout_ms: int | None) -> None:
        for _ in range(5):  # let the other tasks run first
            await asyncio.sleep(0)
            if event.is_set():
                return
        if timeout_ms is None:
            await event.wait()
        else:
            self.t += timeout_ms


class ControllerChannel:
    """The node-to-controller channel, answered by ClusterControl over a MemoryLog."""

    def __init__(self, log: MemoryLog, clock: VirtualClock) -> None:
        self.log = log
        self.clock = clock
        self.cc = ClusterControl(CLUSTER_ID)
        self.cc.attach(log.image)
        self.cc.activate(log.image, 0)
        self.sent: list[tuple[int, int, object]] = []
        self.unavailable = 0  # fail this many sends first

    async def send(self, api_key: int, request):
        self.sent.append((self.clock.now(), api_key, request))
        if self.unavailable:
            self.unavailable -= 1
            raise ControllerUnavailable("no controller")
        now = self.clock.now()
        if api_key == BROKER_REGISTRATION:
            response, records = self.cc.register_broker(self.log.image, request, 4, now, self.log.next_offset)
            self.log.commit(records)
            return response
        response, records = self.cc.heartbeat(self.log.image, request, now)
        last = self.log.commit(records)
        self.cc.heartbeat_committed(request.broker_id, last)
        # Broker 2, running alongside, heartbeats as often, caught up with the log.
        other = self.log.image.brokers[2]
        _, records = self.cc.heartbeat(self.log.image, heartbeat(2, other.epoch, self.log.image.offset), now)
        self.log.commit(records)
        return response


def test_a_broker_registers_runs_and_shuts_down_in_a_controlled_way():
    log = MemoryLog()
    clock = VirtualClock()
    channel = ControllerChannel(log, clock)
    channel.unavailable = 2
    # Broker 2 is another running broker that will take over leadership.
    _, records = channel.cc.register_broker(log.image, registration(2), 4, 0, log.next_offset)
    log.commit(records)
    _, records = channel.cc.heartbeat(log.image, heartbeat(2, log.image.brokers[2].epoch, log.image.offset), 0)
    log.commit(records)
    m = LifecycleMachine(1, CLUSTER_ID, listeners=[("PLAINTEXT", "localhost", 9093, 0)],
                         features=dict(SUPPORTED_FEATURES), log_dirs=[uuid.uuid4()])
    manager = BrokerLifecycleManager(m, channel, lambda: log.image.offset, clock)

    async def scenario() -> None:
        runner = asyncio.ensure_future(manager.run())
        await manager.wait_for(lambda m: m.caught_up)
        assert [api for _, api, _ in channel.sent[:3]] == [BROKER_REGISTRATION] * 3
        assert [t for t, _, _ in channel.sent[:3]] == [0, 2000, 4000]  # retried at the interval
        assert manager.state == BrokerState.RECOVERY and log.image.brokers[1].fenced
        manager.set_ready_to_unfence()
        await manager.wait_for(lambda m: m.state == BrokerState.RUNNING)
        assert not log.image.brokers[1].fenced
        log.topic("t", [[1, 2]])
        # Heartbeats keep the session alive for as long as the broker runs.
        await manager.wait_for(lambda m: clock.now() > 60_000)
        assert channel.cc.fence_expired(log.image, clock.now()) == []
        assert await manager.controlled_shutdown()
        assert manager.state == BrokerState.SHUTTING_DOWN
        p = log.image.partition("t", 0)
        assert p.leader == 2 and p.isr == [2]
        assert log.image.brokers[1].fenced
        await runner

    asyncio.run(scenario())


def test_the_driver_gives_the_channel_its_timeout_and_retries_a_version_mismatch():
    from kbroker.metadata.broker_lifecycle import ControllerVersionMismatch

    class Channel:
        def __init__(self) -> None:
            self.calls: list = []

        async def send(self, api_key, request, *, timeout_ms=None):
            self.calls.append((api_key, timeout_ms))
            if len(self.calls) == 1:
                raise ControllerVersionMismatch(api_key, 0)
            return ok_registration()

    clock = VirtualClock()
    channel = Channel()
    manager = BrokerLifecycleManager(machine(), channel, lambda: 0, clock, send_timeout_ms=4500)

    async def scenario() -> None:
        manager.start()
        assert await manager.step()  # the registration fails on the version problem
        assert not manager.machine.registered and not await manager.step()  # retried only after the interval
        clock.t += 2000
        assert await manager.step()
        assert manager.machine.registered and manager.broker_epoch == 7

    asyncio.run(scenario())
    assert channel.calls == [(BROKER_REGISTRATION, 4500)] * 2


def test_an_unexpected_failure_of_a_send_is_logged_and_retried_not_the_end_of_the_lifecycle(caplog):
    """A send that raises what no handler expects (a channel's bug; once uvloop's RuntimeError on a
    write to a reset connection) is logged as an error and counted a failed exchange: the
    registration goes again after the interval and the heartbeats follow (a lifecycle task that
    ended there stopped the heartbeats silently, the controller fencing the broker for good)."""
    import logging

    class Channel:
        def __init__(self) -> None:
            self.calls: list[int] = []

        async def send(self, api_key, request):
            self.calls.append(api_key)
            if len(self.calls) == 1:
                raise RuntimeError("unable to perform operation: the handler is closed")
            return ok_registration() if api_key == BROKER_REGISTRATION else hb_response(fenced=True)

    clock = VirtualClock()
    channel = Channel()
    manager = BrokerLifecycleManager(machine(), channel, lambda: 0, clock)

    async def scenario() -> None:
        runner = asyncio.ensure_future(manager.run())
        heartbeating = asyncio.ensure_future(manager.wait_for(lambda m: m.registered and len(channel.calls) >= 3))
        await asyncio.wait([runner, heartbeating], return_when=asyncio.FIRST_COMPLETED)
        assert heartbeating.done() and not runner.done()
        runner.cancel()

    asyncio.run(scenario())
    assert channel.calls[:3] == [BROKER_REGISTRATION, BROKER_REGISTRATION, BROKER_HEARTBEAT]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == \
        ["broker 1: sending api 62 to the controller failed"]


# -- offline log dirs (KIP-858) ------------------------------------------------------------------


def _running_machine() -> LifecycleMachine:
    m = machine()
    m.start(0)
    m.on_response(*m.poll(0)[:1], ok_registration(), 0)
    m.set_ready_to_unfence(0)
    m.poll(0)
    m.on_response(BROKER_HEARTBEAT, hb_response(caught_up=True), 1)
    m.poll(11)
    m.on_response(BROKER_HEARTBEAT, hb_response(fenced=False), 12)
    assert m.state == BrokerState.RUNNING and m.next_at == 2012
    return m


def test_a_failed_dir_is_sent_in_the_next_heartbeat_at_once_and_in_every_one_after():
    m = _running_machine()
    d = uuid.uuid4()
    m.propagate_directory_failure(d, 100, timeout_ms=30000)
    api_key, req = m.poll(100)
    assert api_key == BROKER_HEARTBEAT and req.offline_log_dirs == [d]
    m.on_response(BROKER_HEARTBEAT, hb_response(fenced=False), 101)
    assert m.offline_dirs[d][0]  # acknowledged
    _, req = m.poll(2101)
    assert req.offline_log_dirs == [d]
    m.on_response(BROKER_HEARTBEAT, hb_response(fenced=False), 2102)
    assert m.poll(40000) is not None and m.state == BrokerState.RUNNING  # acknowledged: no timeout


def test_a_failed_dir_the_controller_never_hears_of_shuts_the_broker_down():
    m = _running_machine()
    d = uuid.uuid4()
    m.propagate_directory_failure(d, 100, timeout_ms=5000)
    _, req = m.poll(100)
    m.on_failure(BROKER_HEARTBEAT, 150, "controller unavailable")
    m.poll(2150)
    m.on_response(BROKER_HEARTBEAT, hb_response(error=ErrorCode.STALE_BROKER_EPOCH), 2151)
    assert m.next_wakeup() == 4151
    m.poll(4151)
    m.on_failure(BROKER_HEARTBEAT, 4152, "controller unavailable")
    assert m.next_wakeup() == 5100  # the deadline comes before the next heartbeat
    assert m.poll(5100) is None
    assert m.state == BrokerState.SHUTTING_DOWN and m.shutdown_reason == "couldn't communicate offline log dir"
