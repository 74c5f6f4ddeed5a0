"""max.connection.creation.rate at the acceptor (Kafka's ConnectionQuotas.waitForConnectionSlot):
connections opened quickly are all served, the ones over the rate after a delay, none refused;
the inter-broker listener is exempt; the rate is a dynamic broker config.

The rate is made deterministic by the quota window: with ``quota.window.num=2`` and
``quota.window.size.seconds=10`` the rate is counted over at least 10 s, so at a bound of 1/s the
first 10 connections are accepted at once and each later one is held (1 s, then 2 s, ...)."""

from __future__ import annotations

from waiting import wait_until
from wire import Wire

from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

WINDOW = {"quota.window.num": "2", "quota.window.size.seconds": "10"}
BROKER_RESOURCE = 4


def _serve_all(bootstrap: str, count: int) -> list[Wire]:
    """Open ``count`` connections at once, send each a Metadata request, and read every answer."""
    wires = [Wire(bootstrap) for _ in range(count)]
    for wire in wires:
        wire.send(REQUESTS[3](topics=[], allow_auto_topic_creation=False), 12)
    for wire in wires:
        assert wire.receive().brokers  # served, not refused
    return wires


def _delayed(broker: BrokerThread, listener: str) -> int:
    return broker.call(lambda: broker.broker.limits.listeners[listener].delayed)


def _total(broker: BrokerThread) -> int:
    return broker.call(lambda: broker.broker.limits.total)


def test_connections_over_the_creation_rate_are_delayed_not_refused():
    with BrokerThread(config={**WINDOW, "max.connection.creation.rate": "1"}) as b:
        wires = _serve_all(b.bootstrap_servers, 12)
        # 10 within the rate, the 11th and 12th held before being served
        assert _delayed(b, "PLAINTEXT") == 2
        assert _total(b) == 12
        for wire in wires:
            wire.close()
        wait_until(lambda: _total(b) == 0, message="connections released")


def test_listener_rate_and_inter_broker_listener_exemption():
    config = {
        **WINDOW,
        "listeners": "PLAINTEXT://127.0.0.1:0,EXTERNAL://127.0.0.1:0",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "max.connection.creation.rate": "1",
        "listener.name.external.max.connection.creation.rate": "2",
    }
    with BrokerThread(config=config) as b:
        internal = b.call(lambda: f"127.0.0.1:{b.broker.bound['PLAINTEXT'][1]}")
        external = b.call(lambda: f"127.0.0.1:{b.broker.bound['EXTERNAL'][1]}")
        # the inter-broker listener is not counted in the broker-wide rate (Kafka's protectedListener)
        wires = _serve_all(internal, 12)
        assert _delayed(b, "PLAINTEXT") == 0
        # EXTERNAL: its own bound (2/s) is above the broker-wide one (1/s): the broker-wide one holds
        wires += _serve_all(external, 11)
        assert _delayed(b, "EXTERNAL") == 1
        for wire in wires:
            wire.close()


def test_creation_rate_is_a_dynamic_broker_config():
    with BrokerThread(config={**WINDOW, "max.connection.creation.rate": "1"}) as b:
        admin = Wire(b.bootstrap_servers)
        R = REQUESTS[44].AlterConfigsResource
        request = REQUESTS[44](validate_only=False, resources=[R(
            resource_type=BROKER_RESOURCE, resource_name="1",
            configs=[R.AlterableConfig(name="max.connection.creation.rate", config_operation=0, value="100")])])
        (result,) = admin.call(request, 1).responses
        assert result.error_code == ErrorCode.NONE, result.error_message
        wait_until(lambda: b.call(lambda: b.broker.limits.broker_rate.bound) == 100,
                   message="the dynamic max.connection.creation.rate to be applied")
        wires = _serve_all(b.bootstrap_servers, 20)
        assert _delayed(b, "PLAINTEXT") == 0
        # a bad value is refused naming the key, and changes nothing
        request.resources[0].configs[0].value = "-5"
        (result,) = admin.call(request, 1).responses
        assert result.error_code == ErrorCode.INVALID_REQUEST
        assert "max.connection.creation.rate" in (result.error_message or "")
        assert b.call(lambda: b.broker.limits.broker_rate.bound) == 100
        # Kafka checks the whole new config: max.connections.per.ip 0 needs overrides
        request.resources[0].configs[0].name = "max.connections.per.ip"
        request.resources[0].configs[0].value = "0"
        (result,) = admin.call(request, 1).responses
        assert result.error_code == ErrorCode.INVALID_REQUEST
        assert "max.connections.per.ip.overrides" in (result.error_message or "")
        wires.append(Wire(b.bootstrap_servers))  # the broker still accepts
        assert wires[-1].call(3, 12, topics=[], allow_auto_topic_creation=False).brokers
        for wire in wires + [admin]:
            wire.close()


def _alter(wire: Wire, resource: str, key: str, value: str | None, operation: int = 0):
    R = REQUESTS[44].AlterConfigsResource
    request = REQUESTS[44](validate_only=False, resources=[R(
        resource_type=BROKER_RESOURCE, resource_name=resource,
        configs=[R.AlterableConfig(name=key, config_operation=operation, value=value)])])
    (result,) = wire.call(request, 1).responses
    return result.error_code, result.error_message


def test_listener_limits_are_dynamic_broker_configs():
    with BrokerThread(config=WINDOW) as b:
        admin = Wire(b.bootstrap_servers)
        quota = lambda: b.call(lambda: (b.broker.limits.listeners["PLAINTEXT"].max_connections,  # noqa: E731
                                        b.broker.limits.listeners["PLAINTEXT"].rate.bound))
        key = "listener.name.plaintext.max.connections"
        # the cluster-wide default level is allowed for these (Kafka's ClusterLevelListenerConfigs)
        assert _alter(admin, "", key, "3") == (ErrorCode.NONE, None)
        assert _alter(admin, "1", "listener.name.plaintext.max.connection.creation.rate", "7") == (ErrorCode.NONE, None)
        wait_until(lambda: quota() == (3, 7), message="the listener limits applied", details=quota)
        code, message = _alter(admin, "1", key, "0")
        assert code == ErrorCode.INVALID_REQUEST and key in (message or "")
        code, message = _alter(admin, "1", key, "many")
        assert code == ErrorCode.INVALID_REQUEST and key in (message or "")
        # at the listener's max.connections (3: admin and two more) the next one waits for a slot
        others = [Wire(b.bootstrap_servers) for _ in range(2)]
        for wire in others:
            assert wire.call(3, 12, topics=[], allow_auto_topic_creation=False).brokers
        wait_until(lambda: b.call(lambda: b.broker.limits.slot_available("PLAINTEXT")) is False,
                   message="the listener at its max.connections")
        assert _alter(admin, "", key, None, operation=1) == (ErrorCode.NONE, None)  # DELETE
        wait_until(lambda: quota()[0] == 2**31 - 1, message="the listener limit removed", details=quota)
        late = Wire(b.bootstrap_servers)
        assert late.call(3, 12, topics=[], allow_auto_topic_creation=False).brokers
        for wire in [admin, late, *others]:
            wire.close()


def _metadata(wire: Wire) -> bool:
    return bool(wire.call(3, 12, topics=[], allow_auto_topic_creation=False).brokers)


def _closed_by_broker(wire: Wire) -> bool:
    wire.sock.settimeout(20)
    try:
        return wire.sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_protected_listener_over_max_connections_closes_the_least_recently_used_other():
    config = {
        "listeners": "PLAINTEXT://127.0.0.1:0,EXTERNAL://127.0.0.1:0",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "max.connections": "2",
    }
    with BrokerThread(config=config) as b:
        internal = b.call(lambda: f"127.0.0.1:{b.broker.bound['PLAINTEXT'][1]}")
        external = b.call(lambda: f"127.0.0.1:{b.broker.bound['EXTERNAL'][1]}")
        first, second = Wire(external), Wire(external)
        assert _metadata(first) and _metadata(second) and _metadata(first)  # second: least recently used
        # the inter-broker listener is not held at max.connections: it is accepted, and the broker
        # closes the least recently used connection of another listener (Kafka's closeExcessConnections)
        broker_link = Wire(internal)
        assert _metadata(broker_link)
        assert _closed_by_broker(second)
        assert _metadata(first)
        wait_until(lambda: _total(b) == 2, message="the closed connection released")
        # lowering max.connections dynamically closes the excess the same way
        assert _alter(broker_link, "1", "max.connections", "1") == (ErrorCode.NONE, None)
        assert _closed_by_broker(first)
        assert _metadata(broker_link)
        for wire in (first, second, broker_link):
            wire.close()
