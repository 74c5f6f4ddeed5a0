"""KIP-848 regular expression subscriptions: resolved per group, filtered by DESCRIBE authorization.

As Kafka's ``GroupMetadataManager.maybeUpdateRegularExpressions`` and ``TopicRegexResolver``: the
regular expressions the members of a group subscribe to are resolved together, for the group,
against every topic name of the metadata image (``fullmatch``: Kafka's RE2/J ``matches``), then
every matching topic the principal of the heartbeat that triggered the resolution may not DESCRIBE
is dropped from every expression (``filterTopicDescribeAuthorizedTopics``: one DESCRIBE check per
distinct topic; a denial is not logged, as Kafka's ``Action(..., logIfDenied=false)``). A member
subscribed to an expression gets the topics of the group's resolution of it, which is shared by
every member subscribed to the same expression.

A heartbeat resolves the group's expressions again when one of them has no resolution yet (a member
just subscribed to it), when the image's set of topic names changed since the last resolution, or
when the last one is older than ``group.consumer.regex.refresh.interval.ms`` (Kafka's default,
600000 ms; a change of ACLs is seen then). Kafka resolves asynchronously and bumps the group epoch
when the result comes back, and resolves a group at most every 10 s; here the resolution runs
inside the heartbeat, so a new matching topic is picked up at the next heartbeat.

An expression without a resolution (after a restart, until a heartbeat resolves it: Kafka keeps
resolutions in ``ConsumerGroupRegularExpression`` records, kbroker does not) matches nothing when an
authorizer is configured, as an unresolved expression does in Kafka; without one, it is matched
against the image directly (there is nothing to filter, so the result is the same).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from kbroker.controller.image import MetadataImage

# Kafka's AclOperation.DESCRIBE and ResourceType.TOPIC codes (kbroker.security.acls has them all; the
# coordinator layer sits below security and sees the authorizer only through the protocol below)
DESCRIBE, TOPIC = 8, 2


class Authorizer(Protocol):
    """What the resolution uses of kbroker.security.acls.Authorizer."""

    enabled: bool

    def authorize(self, principal: str, host: str, operation: int, resource_type: int, name: str,
                  log_denied: bool = True) -> bool: ...

log = logging.getLogger(__name__)

REGEX_REFRESH_INTERVAL_MS = 600_000  # Kafka's group.consumer.regex.refresh.interval.ms default


@dataclass(frozen=True, slots=True)
class Requester:
    """The principal and client address of the heartbeat that resolves a group's expressions."""

    principal: str
    host: str


@dataclass(frozen=True, slots=True)
class ResolvedRegex:
    """Kafka's ``ResolvedRegularExpression``: the topics, the topic-name generation of the image
    they were resolved against and when."""

    topics: frozenset[str]
    generation: int
    resolved_at_ms: int


def resolve(regexes: Collection[str], topic_names: Collection[str], authorizer: Authorizer | None,
            requester: Requester | None) -> dict[str, set[str]]:
    """Every expression's matching topics, less those ``requester`` may not DESCRIBE (none are
    checked without an enabled authorizer, or for an internal request: ``requester`` None)."""
    resolved: dict[str, set[str]] = {regex: set() for regex in regexes}
    compiled: list[tuple[str, re.Pattern[str]]] = []
    for regex in regexes:
        try:
            compiled.append((regex, re.compile(regex)))
        except re.error as exc:  # validated on the heartbeat; as Kafka, logged and ignored here
            log.error("Couldn't parse regular expression '%s' due to `%s`. Ignoring it.", regex, exc)
    for name in topic_names:
        for regex, pattern in compiled:
            if pattern.fullmatch(name):
                resolved[regex].add(name)
    if authorizer is not None and authorizer.enabled and requester is not None:
        candidates = set().union(*resolved.values())
        denied = {t for t in candidates if not authorizer.authorize(requester.principal, requester.host, DESCRIBE,
                                                                      TOPIC, t, log_denied=False)}
        for topics in resolved.values():
            topics -= denied
    return resolved


class RegexResolutions:
    """The resolved expressions of every consumer group of a coordinator."""

    def __init__(self, image: Callable[[], MetadataImage], authorizer: Callable[[], Authorizer | None],
                 now_ms: Callable[[], int]) -> None:
        self._image = image
        self._authorizer = authorizer
        self._now_ms = now_ms
        self._groups: dict[str, dict[str, ResolvedRegex]] = {}
        self._names: frozenset[str] = frozenset()
        self._generation = 0
        self._seen_offset: int | None = None

    def _topic_generation(self) -> int:
        """A number that changes when the image's set of topic names does."""
        image = self._image()
        if image.offset != self._seen_offset:
            self._seen_offset = image.offset
            names = frozenset(image.topics)
            if names != self._names:
                self._names = names
                self._generation += 1
        return self._generation

    def refresh(self, group_id: str, regexes: set[str], requester: Requester | None,
                live_groups: Mapping[str, object]) -> None:
        """Resolve the group's expressions again if one is new, the topics changed or the last
        resolution is older than the refresh interval, authorizing for ``requester``."""
        for gone in [g for g in self._groups if g not in live_groups and g != group_id]:
            del self._groups[gone]
        current = {r: v for r, v in self._groups.get(group_id, {}).items() if r in regexes}
        if not regexes:
            self._groups.pop(group_id, None)
            return
        generation, now = self._topic_generation(), self._now_ms()
        if (regexes <= current.keys() and all(v.generation == generation for v in current.values())
                and all(now - v.resolved_at_ms < REGEX_REFRESH_INTERVAL_MS for v in current.values())):
            self._groups[group_id] = current
            return
        resolved = resolve(regexes, self._names, self._authorizer(), requester)
        self._groups[group_id] = {r: ResolvedRegex(frozenset(t), generation, now) for r, t in resolved.items()}
        log.info("consumer group %s: resolved regular expressions %s for %s: %s", group_id, sorted(regexes),
                 requester.principal if requester else "an internal request",
                 {r: sorted(t) for r, t in resolved.items()})

    def topics(self, group_id: str, regex: str) -> set[str]:
        """The existing topics of the group's resolution of ``regex``."""
        image = self._image()
        found = self._groups.get(group_id, {}).get(regex)
        if found is not None:
            return {t for t in found.topics if image.topic(t) is not None}
        authorizer = self._authorizer()
        if authorizer is not None and authorizer.enabled:
            return set()
        return resolve([regex], list(image.topics), None, None)[regex]
