"""A broker's registration with the active controller over the controller listener.

A stepping stone until ``cluster-control``'s ``broker_lifecycle`` (registration and heartbeats over
``controller-seam``'s ``ControllerChannel``) takes over: BrokerRegistration (v4) is sent to the
voters' controller listeners (``controller.quorum.voters``), the active controller first when this
node knows it, and retried on NOT_CONTROLLER or a connection failure until the active controller
answers. The registration is then in the metadata log, which this node replicates.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import uuid
from typing import Any

from kbroker.controller.features import SUPPORTED_FEATURES
from protocol.api import decode_response, encode_request
from protocol.errors import ErrorCode
from protocol.messages import RequestHeader
from protocol.messages.broker_registration import BrokerRegistrationRequest

Broker = Any  # kbroker.broker.Broker (not imported: the controller layer stays below the broker)

log = logging.getLogger(__name__)

BROKER_REGISTRATION = 62
REGISTRATION_VERSION = 4
_SIZE = struct.Struct(">i")
_PROTOCOL_IDS = {"PLAINTEXT": 0, "SSL": 1, "SASL_PLAINTEXT": 2, "SASL_SSL": 3}


async def send_request(host: str, port: int, api_key: int, version: int, body: Any, timeout: float = 2.0,
                       client_id: str = "kbroker") -> Any:
    """One request on a new connection; the decoded response body."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            header = RequestHeader(request_api_key=api_key, request_api_version=version, correlation_id=1,
                                   client_id=client_id)
            payload = encode_request(header, body)
            writer.write(_SIZE.pack(len(payload)) + payload)
            await writer.drain()
            size = _SIZE.unpack(await reader.readexactly(4))[0]
            frame = await reader.readexactly(size)
            _header, resp = decode_response(frame, api_key, version)
            return resp
        finally:
            writer.close()


async def register_with_controller(broker: Broker, endpoints: list[tuple[str, str, int]]) -> int:
    """Register ``broker`` (its advertised ``endpoints``) with the active controller; returns the
    broker epoch once the registration is applied to this node's image."""
    cfg = broker.config
    protocols = {e.listener: e.security_protocol for e in cfg.listeners}
    request = BrokerRegistrationRequest(
        broker_id=broker.node_id, cluster_id=broker.cluster_id, incarnation_id=uuid.uuid4(),
        listeners=[BrokerRegistrationRequest.Listener(name=name, host=host, port=port,
                                                      security_protocol=_PROTOCOL_IDS.get(protocols.get(name, ""), 0))
                   for name, host, port in endpoints],
        features=[BrokerRegistrationRequest.Feature(name=n, min_supported_version=lo, max_supported_version=hi)
                  for n, (lo, hi) in SUPPORTED_FEATURES.items()],
        rack=cfg.get("broker.rack") if "broker.rack" in cfg.values else None, log_dirs=[], previous_broker_epoch=-1,
    )
    raft = broker.raft
    assert raft is not None
    addresses = dict(cfg.quorum_voters) or dict(raft.addresses)
    attempt = 0
    while True:
        leader = raft.leader_id
        order = sorted(addresses, key=lambda v: (v != leader, v))
        for voter in order:
            host, port = addresses[voter]
            try:
                resp = await send_request(host, port, BROKER_REGISTRATION, REGISTRATION_VERSION, request,
                                          client_id=f"broker-{broker.node_id}-registration")
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
                log.debug("registration with controller %d at %s:%d failed: %s", voter, host, port, exc)
                continue
            if resp.error_code == ErrorCode.NOT_CONTROLLER:
                continue
            if resp.error_code != 0:
                name = ErrorCode(resp.error_code).name if resp.error_code in ErrorCode._value2member_map_ \
                    else resp.error_code
                raise RuntimeError(f"the controller refused the registration of broker {broker.node_id}: {name}")
            epoch = resp.broker_epoch
            # wait until this node's image has the registration (it replicates the metadata log)
            while True:
                reg = broker.image.brokers.get(broker.node_id)
                if reg is not None and reg.epoch == epoch:
                    break
                await asyncio.sleep(0.01)
            log.info("registered with the active controller %d (broker epoch %d)", voter, epoch)
            return epoch
        attempt += 1
        if attempt % 50 == 0:
            log.info("still looking for the active controller to register with (leader known: %d)", raft.leader_id)
        await asyncio.sleep(0.05)
