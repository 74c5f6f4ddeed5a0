"""A formatted combined broker+controller node whose CLIENT and CONTROLLER listeners are both
SASL_PLAINTEXT (PLAIN), with the StandardAuthorizer and ``admin`` (the node's own user) its super
user: for tests of what the controller listener authorizes. Yielded once the controller's own
registration is in the image (nothing else is written then unless a test writes)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from waiting import wait_until
from wire import Wire, plain_login

from kbroker.cluster import free_ports
from kbroker.config import BrokerConfig
from kbroker.security import acls as A
from kbroker.storage import format_storage, random_uuid
from kbroker.testing import BrokerThread
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS

PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"


def sasl_node_config(data: Path, port: int, cport: int, users: Sequence[str]) -> dict[str, str]:
    """The combined node's config: CLIENT and CONTROLLER listeners SASL_PLAINTEXT (PLAIN) on ``port``
    and ``cport``, ``admin`` and ``users`` (password ``<user>-secret``), the StandardAuthorizer with
    admin its super user."""
    jaas = (f'{PLAIN} required username="admin" password="admin-secret" user_admin="admin-secret" '
            + " ".join(f'user_{u}="{u}-secret"' for u in users) + ";")
    return {
        "process.roles": "broker,controller", "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{cport}", "controller.listener.names": "CONTROLLER",
        "listeners": f"CLIENT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
        "listener.security.protocol.map": "CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "inter.broker.listener.name": "CLIENT", "log.dirs": str(data),
        "sasl.mechanism.inter.broker.protocol": "PLAIN", "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.client.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.client.plain.sasl.jaas.config": jaas,
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": jaas,
        "authorizer.class.name": A.STANDARD_AUTHORIZER, "super.users": "User:admin",
        "connection.failed.authentication.delay.ms": "0",
    }


def grant_on_cluster(admin: Wire, acls: Sequence[tuple[str, int]]) -> None:
    """ALLOW each (principal, operation) on the cluster, as ``admin``."""
    r = admin.call(30, 3, creations=[REQUESTS[30].AclCreation(
        resource_type=A.CLUSTER, resource_name=A.CLUSTER_NAME, resource_pattern_type=A.LITERAL,
        principal=principal, host="*", operation=operation, permission_type=A.ALLOW)
        for principal, operation in acls])
    assert [x.error_code for x in r.results] == [ErrorCode.NONE] * len(acls)


@contextmanager
def controller_sasl_node(data: Path, users: Sequence[str], acls: Sequence[tuple[str, int]],
                         setup: Callable[[Wire], None] | None = None) -> Iterator[tuple[BrokerThread, str]]:
    """The running node and its controller listener's address. ``users`` log in with password
    ``<user>-secret``; ``acls`` are (principal, operation) ALLOWs on the cluster, created by admin
    through the client listener after ``setup(admin)``."""
    port, cport = free_ports(2)
    config = sasl_node_config(data, port, cport, users)
    format_storage(BrokerConfig(config, warn=False), random_uuid(), out=io.StringIO())
    with BrokerThread(config, data_dir=str(data)) as b:
        admin = plain_login(f"127.0.0.1:{port}", "admin")
        try:
            if setup is not None:
                setup(admin)
            grant_on_cluster(admin, acls)
        finally:
            admin.close()
        # the controller registers itself (RegisterControllerRecord) shortly after the node is ready:
        # once that is in its image, the metadata log stays as it is unless a test writes to it
        wait_until(lambda: b.call(lambda: 1 in b.broker.image.controllers), 30, 0.05,
                   "the controller's own registration")
        yield b, f"127.0.0.1:{cport}"
