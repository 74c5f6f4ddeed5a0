"""``format --add-scram`` (Kafka's ``ScramParser``): SCRAM credentials written into the bootstrap
metadata, so that brokers can authenticate to each other with SCRAM from the first start (the
credentials reach every broker in the metadata log, over the controller listener).

An argument is ``<mechanism>=[name=<user>,password=<password>]`` (or ``saltedpassword=<base64>``
with ``salt=<base64>``; ``iterations`` defaults to 4096, within the mechanism's 4096-16384); values
may be double-quoted. Bad arguments raise :class:`ValueError` with Kafka's FormatterException
message.
"""

from __future__ import annotations

import base64
import binascii

from kbroker.security.scram import (
    MECHANISMS_BY_NAME,
    ScramMechanism,
    credential_from_salted,
    salted_password,
    secure_random_string,
)
from kbroker_protocol.messages.metadata_records import UserScramCredentialRecord


def scram_records(arguments: list[str]) -> list[UserScramCredentialRecord]:
    return [_record(*_mechanism_argument(argument)) for argument in arguments]


def _mechanism_argument(text: str) -> tuple[ScramMechanism, str]:
    text = text.strip()
    i = text.find("=")
    if i < 0:
        raise ValueError(f"Failed to find equals sign in SCRAM argument '{text}'")
    name, config = text[:i], text[i + 1:]
    mechanism = MECHANISMS_BY_NAME.get(name)
    if mechanism is None:
        raise ValueError(f"The add-scram mechanism {name} is not supported.")
    if not config.startswith("["):
        raise ValueError("Expected configuration string to start with [")
    if not config.endswith("]"):
        raise ValueError("Expected configuration string to end with ]")
    return mechanism, config[1:-1]


def _component(text: str) -> tuple[str, str]:
    i = text.find("=")
    if i < 0:
        raise ValueError(f"No equals sign found in SCRAM component: {text}")
    value = text[i + 1:]
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        value = value[1:-1]
    return text[:i], value


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"Failed to decode given {what}: {value}") from None


def _record(mechanism: ScramMechanism, config: str) -> UserScramCredentialRecord:
    components = dict(_component(c) for c in config.split(","))
    name = components.pop("name", None)
    if name is None:
        raise ValueError("You must supply 'name' to add-scram")
    salt_text = components.pop("salt", None)
    salt = _b64(salt_text, "salt") if salt_text is not None else None
    iterations_text = components.pop("iterations", None)
    try:
        iterations = int(iterations_text) if iterations_text is not None else 4096
    except ValueError:
        raise ValueError(f"Failed to parse iterations count: {iterations_text}") from None
    password = components.pop("password", None)
    salted_text = components.pop("saltedpassword", None)
    salted: bytes | None = None
    if password is None:
        if salted_text is None:
            raise ValueError("You must supply one of 'password' or 'saltedpassword' to add-scram")
        if salt is None:
            raise ValueError("You must supply 'salt' with 'saltedpassword' to add-scram")
        salted = _b64(salted_text, "saltedPassword")
    if components:
        raise ValueError(f"Unknown SCRAM configurations: {', '.join(sorted(components))}")
    if salt is None:
        salt = secure_random_string().encode()  # Kafka's ScramFormatter.secureRandomBytes
    label = mechanism.name.replace("-", "_")
    if iterations < mechanism.min_iterations:
        raise ValueError(f"The 'iterations' value must be >= {mechanism.min_iterations} for add-scram using {label}")
    if iterations > mechanism.max_iterations:
        raise ValueError(f"The 'iterations' value must be <= {mechanism.max_iterations} for add-scram using {label}")
    if salted is None:
        assert password is not None
        salted = salted_password(mechanism, password, salt, iterations)
    credential = credential_from_salted(mechanism, salt, salted, iterations)
    return UserScramCredentialRecord(name=name, mechanism=mechanism.type, salt=salt,
                                     stored_key=credential.stored_key, server_key=credential.server_key,
                                     iterations=iterations)
