"""Delegation tokens on a three-node cluster (processes): create, renew and expire go from any broker
to the active controller (Envelope), every broker learns the token from the metadata log and lets
the client log in with it, and an expired token is refused everywhere."""

from __future__ import annotations

import re

from cluster_fixture import Cluster
from waiting import wait_until

from kbroker.cluster import free_ports
from tests.security.delegation_token_helpers import (
    PLAIN_JAAS,
    SECRET,
    E,
    create,
    describe,
    login_plain,
    scram_token_login,
)


def test_tokens_across_a_cluster(tmp_path) -> None:
    c = Cluster(tmp_path / "cluster", 3, {
        "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "sasl.jaas.config": PLAIN_JAAS,
        "connection.failed.authentication.delay.ms": "0",
        "delegation.token.secret.key": SECRET,
        "delegation.token.expiry.check.interval.ms": "200",
    })
    # every node also gets a SASL_PLAINTEXT listener on a port of its own
    sasl: dict[int, str] = {}
    for node_id, port in zip(c.node_ids, free_ports(len(c.node_ids)), strict=True):
        path = c.layout.properties_path(node_id)
        text = re.sub(r"^listeners=(.*)$", rf"listeners=\1,SASL_PLAINTEXT://127.0.0.1:{port}",
                      path.read_text(), flags=re.M)
        path.write_text(text)
        sasl[node_id] = f"127.0.0.1:{port}"
    try:
        c.start()
        alice = login_plain(sasl[1], "alice")
        r = create(alice, renewers=("User:bob",))
        assert r.error_code == E.NONE, c.logs()
        token_id, token_hmac = r.token_id, bytes(r.hmac)
        alice.close()

        def logs_in(node_id: int) -> bool:
            w, final = scram_token_login(sasl[node_id], token_id, token_hmac)
            w.close()
            return final.error_code == E.NONE

        for node_id in c.node_ids:  # every broker learns the token from the metadata log
            wait_until(lambda n=node_id: logs_in(n), 30, 0.05, f"a token login on node {node_id}", c.logs)

        bob = login_plain(sasl[2], "bob")
        renewed = bob.call(39, 2, hmac=token_hmac, renew_period_ms=60000)
        assert renewed.error_code == E.NONE
        bob.close()
        carol = login_plain(sasl[3], "carol")
        assert carol.call(39, 2, hmac=token_hmac, renew_period_ms=1).error_code == E.DELEGATION_TOKEN_OWNER_MISMATCH
        wait_until(lambda: [t.expiry_timestamp for t in describe(carol).tokens] == [renewed.expiry_timestamp_ms],
                   30, 0.05, "the renewal on node 3", c.logs)
        # expire in 1 ms through node 3: the active controller's sweep removes it, no node lets it in
        alice3 = login_plain(sasl[3], "alice")
        assert alice3.call(40, 2, hmac=token_hmac, expiry_time_period_ms=1).error_code == E.NONE
        alice3.close()
        for node_id in c.node_ids:
            wait_until(lambda n=node_id: not logs_in(n), 30, 0.05, f"the token refused on node {node_id}", c.logs)
        wait_until(lambda: describe(carol).tokens == [], 30, 0.05, "the token removed", c.logs)
        carol.close()
    finally:
        c.kill_all()
