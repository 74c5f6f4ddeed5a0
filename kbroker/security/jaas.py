"""Kafka's JAAS line (``sasl.jaas.config``), parsed as Kafka's JaasConfig does with Java's
StreamTokenizer: ``<LoginModuleClass> <flag> (<option>=<value>)*;``, words of letters, digits,
``.``, ``-``, ``_`` and ``$``, single- or double-quoted values with backslash escapes, and ``//``
and ``/* */`` comments. A value that is a bare number is not a value (Kafka: ``Value not
specified for key``), so passwords are quoted.

PLAIN's users are the ``user_<name>="<password>"`` options of the PlainLoginModule entry, as
Kafka's PlainServerCallbackHandler reads them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

PLAIN_LOGIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
_FLAGS = ("REQUIRED", "REQUISITE", "SUFFICIENT", "OPTIONAL")
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


class JaasError(ValueError):
    """A JAAS line Kafka would refuse; the message is Kafka's."""


@dataclass(slots=True)
class JaasEntry:
    login_module: str
    flag: str
    options: dict[str, str] = field(default_factory=dict)


_WORD, _NUMBER, _QUOTED, _EOF = "word", "number", "quoted", "eof"


def _is_word_char(c: str) -> bool:
    return c.isalpha() or c.isdigit() or c in "._-$" or ord(c) >= 160


def _tokens(text: str) -> Iterator[tuple[str, str | None]]:
    """(kind, value) tokens; ordinary characters (``=``, ``;``) come as (char, char)."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c <= " ":
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c == "/":  # StreamTokenizer's comment character: the rest of the line
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif c in "\"'":
            i += 1
            out = []
            while i < n and text[i] != c and text[i] not in "\n\r":
                ch = text[i]
                if ch == "\\" and i + 1 < n:
                    nxt = text[i + 1]
                    if nxt in "01234567":
                        j = i + 1
                        while j < n and j < i + 4 and text[j] in "01234567":
                            j += 1
                        out.append(chr(int(text[i + 1 : j], 8) & 0xFF))
                        i = j
                        continue
                    out.append(_ESCAPES.get(nxt, nxt))
                    i += 2
                    continue
                out.append(ch)
                i += 1
            i += 1  # the closing quote (or the line end)
            yield _QUOTED, "".join(out)
        elif c.isdigit() or c == "." or (c == "-" and i + 1 < n and (text[i + 1].isdigit() or text[i + 1] == ".")):
            j = i + 1
            while j < n and (text[j].isdigit() or text[j] == "."):
                j += 1
            yield _NUMBER, text[i:j]
            i = j
        elif _is_word_char(c):
            j = i + 1
            while j < n and _is_word_char(text[j]):
                j += 1
            yield _WORD, text[i:j]
            i = j
        else:
            yield c, c
            i += 1
    yield _EOF, None


def _sval(kind: str, value: str | None) -> str | None:
    return value if kind in (_WORD, _QUOTED) else None


def parse_jaas(text: str) -> list[JaasEntry]:
    """The entries of a JAAS line; raises :class:`JaasError` with Kafka's message."""
    tokens = _tokens(text)
    entries: list[JaasEntry] = []
    kind, value = next(tokens)
    while kind != _EOF:
        module = _sval(kind, value)
        kind, value = next(tokens)
        if kind == _EOF:
            raise JaasError("Login module control flag not specified in JAAS config")
        flag = _sval(kind, value)
        if flag is None:
            raise JaasError("Login module control flag is not available in the JAAS config")
        if flag.upper() not in _FLAGS:
            raise JaasError(f"Invalid login module control flag '{flag}' in JAAS config")
        entry = JaasEntry(module or "", flag.upper())
        kind, value = next(tokens)
        while kind not in (_EOF, ";"):
            key = _sval(kind, value)
            eq_kind, _ = next(tokens)
            val_kind, val = next(tokens)
            if eq_kind != "=" or val_kind == _EOF or _sval(val_kind, val) is None:
                raise JaasError(f"Value not specified for key '{key}' in JAAS config")
            entry.options[key or ""] = val or ""
            kind, value = next(tokens)
        if kind != ";":
            raise JaasError("JAAS config entry not terminated by semi-colon")
        entries.append(entry)
        kind, value = next(tokens)
    if not entries:
        raise JaasError("Login module not specified in JAAS config")
    return entries


def server_entry(text: str) -> JaasEntry:
    """The one login module of a broker's ``sasl.jaas.config`` (Kafka's JaasContext refuses more)."""
    entries = parse_jaas(text)
    if len(entries) != 1:
        raise JaasError(f"JAAS config property contains {len(entries)} login modules, should be 1 module")
    return entries[0]


def plain_users(entry: JaasEntry) -> dict[str, str]:
    """PLAIN's users: the ``user_<name>`` options of a PlainLoginModule entry."""
    if entry.login_module != PLAIN_LOGIN_MODULE:
        return {}
    return {k[len("user_"):]: v for k, v in entry.options.items() if k.startswith("user_")}
