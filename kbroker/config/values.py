"""Config value types: Kafka's ConfigDef types, their parsers, and one key's spec (:class:`ConfigKey`).

Every key is parsed and validated by :meth:`ConfigKey.parse` alone (start-up, DescribeConfigs'
defaults, AlterConfigs, CreateTopics, stored topic and dynamic configs); a value that fails raises
:class:`ConfigError` naming the key in Kafka's words.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LONG_MAX = 2**63 - 1
INT_MAX = 2**31 - 1
# Kafka 4's floor for segment.bytes and log.segment.bytes (LogConfig: atLeast(1024 * 1024)).
SEGMENT_BYTES_MIN = 1024 * 1024


class ConfigError(ValueError):
    """An invalid configuration value; the message names the key.

    The text is Kafka's ``ConfigException``: ``Invalid value V for configuration K: reason``, or
    ``message`` as given for Kafka's checks that word it differently (list duplicates, unknown
    topic config names, conflicting values)."""

    def __init__(self, key: str, value: object, reason: str, message: str | None = None) -> None:
        shown = "null" if value is None else value
        super().__init__(message or f"Invalid value {shown} for configuration {key}: {reason}")
        self.key = key
        self.value = value
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Types (Kafka's ConfigDef.Type names; DescribeConfigs v3+ reports them as numbers)

CONFIG_TYPE_IDS = {
    "boolean": 1,
    "string": 2,
    "int": 3,
    "short": 4,
    "long": 5,
    "double": 6,
    "list": 7,
    "class": 8,
    "password": 9,
}


def _parse_bool(key: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    raise ConfigError(key, raw, "Expected value to be either true or false")


_INTEGER = re.compile(r"[+-]?[0-9]+")


def _parse_int(type_name: str, lo: int, hi: int) -> Callable[[str, str], int]:
    """Java's Integer/Short/Long.parseInt: ASCII digits with an optional sign, within the type."""

    def parse(key: str, raw: str) -> int:
        text = raw.strip()
        if not _INTEGER.fullmatch(text) or not lo <= (value := int(text)) <= hi:
            raise ConfigError(key, raw, f"Not a number of type {type_name}")
        return value

    return parse


_DOUBLE = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?[dDfF]?")


def _parse_double(key: str, raw: str) -> float:
    # Java's Double.parseDouble also takes NaN and Infinity; kbroker does not (no config of
    # Kafka's means anything with them, and NaN passes every range check).
    text = raw.strip()
    if not _DOUBLE.fullmatch(text):
        raise ConfigError(key, raw, "Not a number of type DOUBLE")
    return float(text.rstrip("dDfF"))


def _parse_string(key: str, raw: str) -> str:
    return raw.strip()


_LIST_SEPARATOR = re.compile(r"\s*,\s*")


def _parse_list(key: str, raw: str) -> list[str]:
    """Kafka's LIST: split on commas (and the blanks around them); empty text is the empty list."""
    raw = raw.strip()
    return _LIST_SEPARATOR.split(raw) if raw else []


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "boolean": _parse_bool,
    "string": _parse_string,
    "int": _parse_int("INT", -(2**31), INT_MAX),
    "short": _parse_int("SHORT", -(2**15), 2**15 - 1),
    "long": _parse_int("LONG", -(2**63), LONG_MAX),
    "double": _parse_double,
    "list": _parse_list,
    "class": _parse_string,
    "password": _parse_string,
}


@dataclass(frozen=True, slots=True)
class ConfigKey:
    """One key: Kafka's type, default (as Kafka writes it) and validator.

    ``minimum``/``maximum`` are Kafka's ``Range.atLeast``/``between``; ``choices`` its
    ``ValidString.in``; ``list_choices`` its ``ValidList.in``; ``nonempty`` a ``ValidList`` that
    refuses the empty list; ``check`` any other validator of Kafka's (called with the key name,
    the parsed value and the raw text)."""

    name: str
    type: str
    default: str | None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    list_choices: tuple[str, ...] | None = None
    nonempty: bool = False
    check: Callable[[str, Any, str], object] | None = None  # raises ConfigError; its result is unused
    read_only: bool = True
    sensitive: bool = False
    applied: bool = True  # False: accepted for compatibility, has no effect in kbroker
    doc: str = ""  # DescribeConfigs' documentation (v3+, when asked for)

    def parse(self, raw: str) -> Any:
        value = _PARSERS[self.type](self.name, raw)
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(self.name, raw, f"Value must be at least {_fmt(self.minimum)}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(self.name, raw, f"Value must be no more than {_fmt(self.maximum)}")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(self.name, raw, f"String must be one of: {', '.join(self.choices)}")
        if self.type == "list":
            _check_list(self, value, raw)
        if self.check is not None:
            self.check(self.name, value, raw)
        return value


def _check_list(key: ConfigKey, items: list[str], raw: str) -> None:
    """Kafka's ValidList: not empty (where required), no duplicates, no empty entries, and each
    entry one of ``list_choices`` when given."""
    name = key.name
    if key.nonempty and not items:
        valid = f"[{', '.join(key.list_choices)}]" if key.list_choices else "any non-empty value"
        raise ConfigError(name, raw, "", f"Configuration '{name}' must not be empty. Valid values include: {valid}")
    if len(set(items)) != len(items):
        raise ConfigError(name, raw, "", f"Configuration '{name}' values must not be duplicated.")
    for item in items:
        if not item:
            raise ConfigError(name, raw, "", f"Configuration '{name}' values must not be empty.")
        if key.list_choices is not None and item not in key.list_choices:
            raise ConfigError(name, item, f"String must be one of: {', '.join(key.list_choices)}")


def _one_of_ignoring_case(*valid: str) -> Callable[[str, object, str], None]:
    """Kafka's ``ConfigDef.CaseInsensitiveValidString.in``."""
    def check(name: str, value: object, raw: str) -> None:
        if str(value).lower() not in valid:
            raise ConfigError(name, raw, f"String must be one of (case insensitive): {', '.join(valid)}")
    return check


def _gzip_level(name: str, value: int, raw: str) -> None:
    # Kafka's CompressionType.GZIP.levelValidator: Deflater's 1..9, or -1 for its default.
    if value > 9 or (value < 1 and value != -1):
        raise ConfigError(name, raw, "Value must be between 1 and 9 or equal to -1")


# Kafka's Selectable.USE_DEFAULT_BUFFER_SIZE: a socket buffer key at -1 leaves the OS default.
USE_DEFAULT_BUFFER_SIZE = -1


def buffer_size(name: str, value: int, raw: str) -> None:
    """A socket buffer size (socket.send.buffer.bytes, ...): -1 or positive. Kafka's ConfigDef has
    no validator for these, but Java's setSendBufferSize/setReceiveBufferSize refuse anything
    below 1 when the socket is set up ("negative send size"), so Kafka cannot open its listeners
    (or serve a connection) with such a value; kbroker refuses it at start-up, naming the key."""
    if value < 1 and value != USE_DEFAULT_BUFFER_SIZE:
        raise ConfigError(name, raw, "Value must be -1 (the OS default) or at least 1")


_THROTTLED_REPLICA = re.compile(r"([0-9]+:[0-9]+)?")


def _throttled_replicas(name: str, value: list[str], raw: str) -> None:
    # Kafka's ThrottledReplicaListValidator: the literal '*' or partitionId:brokerId entries.
    items = [str(v).strip() for v in value]
    if not (all(_THROTTLED_REPLICA.fullmatch(i) for i in items) or "".join(items) == "*"):
        raise ConfigError(name, raw, f"{name} must be the literal '*' or a list of replicas in the following "
                          "format: [partitionId]:[brokerId],[partitionId]:[brokerId],...")


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


_k = ConfigKey  # the key table's rows: _k(name, type, default, validators...)


def format_config_value(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value)
    return str(value)

