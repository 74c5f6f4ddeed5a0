"""Kafka 4.4's ``kafka-delegation-tokens.sh`` (DelegationTokenCommand) against kbroker, and the
Java client logging in with the token it made (SCRAM with ``tokenauth="true"`` in its
ScramLoginModule line, as Kafka's documentation configures token clients)."""

from __future__ import annotations

import uuid

from kbroker.testing import BrokerThread
from tests.security.delegation_token_helpers import address, describe, login_plain, token_config
from tests.security.kafka_tools_helpers import client_properties, tool


def test_kafka_delegation_tokens_tool_and_a_java_client_with_the_token(tmp_path) -> None:
    with BrokerThread(token_config()) as b:
        sasl = address(b, "SASL_PLAINTEXT")
        alice = client_properties(tmp_path / "alice.properties", **{
            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
            "sasl.jaas.config": 'org.apache.kafka.common.security.plain.PlainLoginModule required '
                                'username="alice" password="alice-secret";'})
        tokens = ("DelegationTokenCommand", "--bootstrap-server", sasl, "--command-config", alice)
        res = tool(*tokens, "--create", "--max-life-time-period", "-1", "--renewer-principal", "User:bob")
        lines = [line for line in res.stdout.splitlines() if line.strip()]
        assert lines[1].startswith("Created delegation token with tokenId : ")
        token_id = lines[1].rsplit(" ", 1)[1]
        row = lines[-1].split()
        assert row[0] == token_id and row[2:5] == ["User:alice", "User:alice", "[User:bob]"]
        token_hmac = row[1]

        # the Java client logs in with the token: its principal is alice's
        with_token = client_properties(tmp_path / "token.properties", **{
            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required '
                                f'username="{token_id}" password="{token_hmac}" tokenauth="true";'})
        topic = f"token-topic-{uuid.uuid4().hex[:6]}"
        res = tool("TopicCommand", "--bootstrap-server", sasl, "--command-config", with_token, "--create",
                   "--topic", topic, "--partitions", "1", "--replication-factor", "1")
        assert res.stdout.strip() == f"Created topic {topic}."
        # ... but may not ask for tokens with it (DELEGATION_TOKEN_REQUEST_NOT_ALLOWED)
        res = tool("DelegationTokenCommand", "--bootstrap-server", sasl, "--command-config", with_token,
                   "--describe", ok=False)
        assert res.returncode != 0
        assert "UnsupportedByAuthenticationException" in res.stdout + res.stderr

        res = tool(*tokens, "--renew", "--hmac", token_hmac, "--renew-time-period", "3600000")
        assert "Completed renew operation. New expiry date : " in res.stdout
        w = login_plain(sasl, "alice")
        try:
            [t] = describe(w).tokens
            assert t.expiry_timestamp - t.issue_timestamp <= 3600000 + 60000
        finally:
            w.close()

        res = tool(*tokens, "--expire", "--hmac", token_hmac, "--expiry-time-period", "-1")
        assert "Completed expire operation. New expiry date : " in res.stdout
        # the expired token no longer logs in
        res = tool("TopicCommand", "--bootstrap-server", sasl, "--command-config", with_token, "--list", ok=False)
        assert res.returncode != 0
        assert ("SaslAuthenticationException: Authentication failed during authentication due to invalid "
                "credentials with SASL mechanism SCRAM-SHA-512") in res.stdout + res.stderr
