"""Controller registrations: ControllerRegistration (70) and UnregisterController (94), Kafka 4.4.

Every controller registers itself with the active controller once its metadata caught up and the
metadata.version supports it (3.7-IV0, level 15), as Kafka's ``ControllerRegistrationManager``:
a ControllerRegistration request (its id, incarnation id, controller listener endpoints, supported
features), sent again whenever the image does not hold its current incarnation. The active
controller writes a RegisterControllerRecord (``ClusterControlManager.registerController``); the
image keeps the registrations (``MetadataImage.controllers``) and snapshots carry them.

UnregisterController (94, ``kafka-cluster.sh unregister-controller``,
``kafka-metadata-quorum.sh remove-controller --unregister``) removes a registration with an
UnregisterControllerRecord (the controller's side: kbroker/controller/operations/quorum.py); CLUSTER
ALTER is required (on the controller listener, of the connection's principal). Served on the
controller listener and forwarded from the broker listeners.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Protocol

from kbroker.api.context import (
    RequestContext,
    requester,
    require,
    response_as,
)
from kbroker.api.controller_listener import connection_authorized
from kbroker.api.error_response import refusal
from kbroker.api.registry import api
from kbroker.api.services import Forwarding
from kbroker.config import BrokerConfig
from kbroker.controller.errors import ControllerError
from kbroker.controller.operations.host import Authorizing, ControllerHolder
from kbroker.controller.operations.quorum import (
    UnregisterControllerHost,
    unregister_controller,
    unregister_controller_error,
)
from kbroker.metadata.client import UNREGISTER_CONTROLLER
from kbroker.metadata.features import METADATA_VERSION, SUPPORTED_FEATURES
from kbroker.metadata.image import MetadataImage
from kbroker.raft.io import RaftDriver
from kbroker.security.acls import ALTER, CLUSTER_ACTION
from kbroker.security.internode import InterNodeSecurity
from kbroker_protocol.errors import ErrorCode, default_message
from kbroker_protocol.messages.controller_registration import (
    ControllerRegistrationRequest,
    ControllerRegistrationResponse,
)
from kbroker_protocol.messages.metadata_records import RegisterControllerRecord
from kbroker_protocol.messages.request_header import RequestHeader
from kbroker_protocol.messages.unregister_controller import (
    UnregisterControllerRequest,
    UnregisterControllerResponse,
)

log = logging.getLogger(__name__)

CONTROLLER_REGISTRATION = 70
MV_CONTROLLER_REGISTRATION = 15  # IBP_3_7_IV0
RETRY_S = 1.0

refusal(UNREGISTER_CONTROLLER)(unregister_controller_error)
# Kafka's ControllerRegistrationRequest.getErrorResponse: the code and its default message
refusal(CONTROLLER_REGISTRATION)(
    lambda request, version, code: ControllerRegistrationResponse(error_code=code, error_message=default_message(code)))


class RegistrationServing(ControllerHolder, Authorizing, Protocol):
    """ControllerRegistration on the controller listener as it uses the node: the authorizer (the
    connection's CLUSTER_ACTION) and the controller that writes the registration."""


class RegistrationApis(RegistrationServing, UnregisterControllerHost, Protocol):
    """The node :func:`install` adds both APIs to: what each uses, and its Raft driver (whose
    handler table serves the controller listener)."""

    @property
    def raft(self) -> RaftDriver | None: ...


class RegistrationDescribed(Protocol):
    """What a controller's registration request names of its node: its id, and its controller
    listener (the Raft driver's address, the configured listener's name and protocol)."""

    @property
    def node_id(self) -> int: ...

    @property
    def raft(self) -> RaftDriver | None: ...

    @property
    def config(self) -> BrokerConfig: ...


class RegisteringController(RegistrationDescribed, Protocol):
    """What a controller's own registration uses of its node (``kbroker.broker.Broker``): what its
    request names, its committed image (the MetadataLoader's, as Kafka's
    ControllerRegistrationManager is a publisher of the loader), its inter-node security."""

    @property
    def image(self) -> MetadataImage: ...

    @property
    def internode_security(self) -> InterNodeSecurity: ...


def install(broker: RegistrationApis) -> None:
    """On a controller: the two APIs on its controller listener (the node starts its own
    registration, :func:`register_self`)."""
    raft = broker.raft
    assert raft is not None
    raft.handlers[CONTROLLER_REGISTRATION] = lambda header, body: controller_registration_on_controller(
        broker, header, body)
    raft.handlers[UNREGISTER_CONTROLLER] = lambda header, body: unregister_controller_on_controller(broker, header, body)


async def controller_registration_on_controller(broker: RegistrationServing, header: RequestHeader,
                                                request: ControllerRegistrationRequest) -> ControllerRegistrationResponse:
    """ControllerRegistration: CLUSTER_ACTION on the cluster for the connection's principal (a
    controller's) first, as Kafka's ``handleControllerRegistration``; refused, CLUSTER_AUTHORIZATION_FAILED
    with the code's default message (its ``getErrorResponse``)."""
    if not connection_authorized(broker, CLUSTER_ACTION):
        code = int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
        return ControllerRegistrationResponse(error_code=code, error_message=default_message(code))
    return await controller_registration(broker, request)


async def unregister_controller_on_controller(broker: UnregisterControllerHost, header: RequestHeader,
                                              request: UnregisterControllerRequest) -> UnregisterControllerResponse:
    """UnregisterController sent to the controller listener: ALTER on the cluster for the
    connection's principal first (Kafka's ``ControllerApis.handleUnregisterController``:
    ``authorizeClusterOperation(request, ALTER)``); refused, CLUSTER_AUTHORIZATION_FAILED."""
    if not connection_authorized(broker, ALTER):
        return unregister_controller_error(request, header.request_api_version,
                                           int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED))
    return await unregister_controller(broker, request)


def _mv(image: MetadataImage) -> int:
    return image.features.get(METADATA_VERSION, 0)


def _active(broker: ControllerHolder) -> bool:
    controller = broker.controller
    return controller is not None and controller.is_active()


async def controller_registration(broker: ControllerHolder, request: ControllerRegistrationRequest
                                  ) -> ControllerRegistrationResponse:
    R = ControllerRegistrationResponse
    if not _active(broker):
        return R(error_code=ErrorCode.NOT_CONTROLLER, error_message=None)
    if _mv(require(broker.controller, "the controller").image) < MV_CONTROLLER_REGISTRATION:
        return R(error_code=ErrorCode.UNSUPPORTED_VERSION,
                 error_message="The current MetadataVersion is too old to support controller registrations.")
    C = RegisterControllerRecord
    record = C(controller_id=request.controller_id, incarnation_id=request.incarnation_id, zk_migration_ready=False,
               end_points=[C.ControllerEndpoint(name=e.name, host=e.host, port=e.port,
                                                security_protocol=e.security_protocol) for e in request.listeners],
               features=[C.ControllerFeature(name=f.name, min_supported_version=f.min_supported_version,
                                             max_supported_version=f.max_supported_version)
                         for f in request.features])
    try:
        controller = require(broker.controller, "the controller")
        async with controller.exclusive():
            await controller.write([record])
    except ControllerError as exc:
        return R(error_code=exc.code, error_message=exc.message)
    return R(error_code=ErrorCode.NONE, error_message=None)


# -- the broker listeners: forwarded ---------------------------------------------------------------


@api(UnregisterControllerRequest, UnregisterControllerResponse, 0, 0)
async def handle_unregister_controller(ctx: RequestContext[Forwarding], request: UnregisterControllerRequest
                                       ) -> UnregisterControllerResponse:
    response = await ctx.broker.controller_client.forward(UNREGISTER_CONTROLLER, request, ctx.api_version,
                                                          requester(ctx))
    return response_as(response, UnregisterControllerResponse)


# -- this controller's own registration ------------------------------------------------------------


def registration_request(broker: RegistrationDescribed, incarnation: uuid.UUID) -> ControllerRegistrationRequest:
    R = ControllerRegistrationRequest
    protocols = {"PLAINTEXT": 0, "SSL": 1, "SASL_PLAINTEXT": 2, "SASL_SSL": 3}
    raft = broker.raft
    assert raft is not None  # a controller's
    host, port = raft.advertised_address()
    listeners = [R.Listener(name=e.listener, host=host, port=port,
                            security_protocol=protocols.get(e.security_protocol, 0))
                 for e in broker.config.controller_listeners[:1]]
    features = [R.Feature(name=name, min_supported_version=lo, max_supported_version=hi)
                for name, (lo, hi) in sorted(SUPPORTED_FEATURES.items())]
    return R(controller_id=broker.node_id, incarnation_id=incarnation, zk_migration_ready=False,
             listeners=listeners, features=features)


async def register_self(broker: RegisteringController) -> None:
    """Kafka's ControllerRegistrationManager: keep this controller's registration (this process's
    incarnation) in the metadata, asking the active controller (maybe this node) over the
    controller listener."""
    from kbroker.metadata.channel import ControllerChannel, channel_timeouts
    from kbroker.metadata.client import ControllerUnavailable

    raft = broker.raft
    assert raft is not None  # a controller's
    incarnation = uuid.uuid4()
    channel = ControllerChannel(lambda: raft.leader_id if raft.leader_id >= 0 else None,
                                lambda: {**raft.addresses, broker.node_id: raft.advertised_address()},
                                client_id=f"controller-{broker.node_id}-registration",
                                **channel_timeouts(broker.config),
                                open_connection=broker.internode_security.controller_opener(
                                    f"controller-{broker.node_id}-registration"))
    try:
        while True:
            await asyncio.sleep(RETRY_S)
            current = broker.image.controllers.get(broker.node_id)
            if current is not None and current.incarnation_id == incarnation:
                continue
            if _mv(broker.image) < MV_CONTROLLER_REGISTRATION or raft.leader_id < 0 or not raft.port:
                continue
            try:
                resp = await channel.send(CONTROLLER_REGISTRATION, registration_request(broker, incarnation),
                                          timeout_ms=5000)
            except (ControllerUnavailable, OSError) as exc:
                log.debug("controller registration: %s", exc)
                continue
            except Exception:  # noqa: BLE001 - a version mismatch, a bug: logged, tried again (as Kafka's
                # ControllerRegistrationManager retries after a failure), not the end of the registration
                log.exception("controller %d: registration failed; trying again", broker.node_id)
                continue
            if resp.error_code == ErrorCode.NONE:
                log.info("registered controller %d (incarnation %s)", broker.node_id, incarnation)
            else:
                log.info("controller registration answered %s", ErrorCode(resp.error_code).name)
    finally:
        await channel.close()
