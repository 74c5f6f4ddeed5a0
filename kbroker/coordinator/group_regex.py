"""KIP-848 regular expression subscriptions: resolved per group, filtered by DESCRIBE authorization.

As Kafka's ``GroupMetadataManager.maybeUpdateRegularExpressions`` and ``TopicRegexResolver``: the
regular expressions the members of a group subscribe to are resolved together, for the group,
against every topic name of the metadata image (``fullmatch``: Kafka's RE2/J ``matches``), then
every matching topic the principal of the heartbeat that triggered the resolution may not DESCRIBE
is dropped from every expression (``filterTopicDescribeAuthorizedTopics``: one DESCRIBE check per
distinct topic; a denial is not logged, as Kafka's ``Action(..., logIfDenied=false)``). A member
subscribed to an expression gets the topics of the group's resolution of it, which is shared by
every member subscribed to the same expression.

A refresh is asynchronous and batched, as Kafka's (``maybeUpdateRegularExpressions``, its executor
and ``handleRegularExpressionsResult``): a heartbeat asks for one (:meth:`RegexResolutions.should_refresh`)
when the group subscribes to expressions, none is under way for the group, the last one is more
than 10 s old (``REGEX_BATCH_REFRESH_MIN_INTERVAL_MS``; none yet counts as old), and either a
member just brought an expression nobody in the group subscribed to, an expression has no
resolution, a topic was created after the last resolution, or the last one is older than
``group.consumer.regex.refresh.interval.ms`` (an internal key of Kafka's, default 600000 ms; a
change of ACLs is seen then). The refresh runs after the heartbeat is answered (``ConsumerGroupState``) and resolves
every expression the group subscribed to then, in one batch; its result is a write of its own: a
record per expression still subscribed to and, when an expression's topics (or the subscribed
partitions) changed, a new group epoch, so the members get the new topics at their next heartbeat.

The resolutions are the group's (``ConsumerGroup.resolved_regexes``) and persisted as Kafka
persists them: every resolution writes a ``ConsumerGroupRegularExpression`` record (type 16: the
sorted topics, the offset of the metadata image resolved against as its version, the time) per
expression, and an expression nobody in the group subscribes to any more (its last member changed
its subscription or left) or a deleted group gets a tombstone; loading the partition replays them,
so a coordinator that takes the group over (or restarts) has them. The image a coordinator starts
with counts as bringing every topic (as Kafka's first image after start-up does), so resolutions
older than that are refreshed by the next heartbeat.

An expression without a resolution (a member just subscribed and the refresh has not completed)
matches nothing, as an unresolved expression in Kafka: the member subscribed to it alone is
assigned nothing until the refresh.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from kbroker.config import BROKER_DEFAULTS
from kbroker.metadata.image import MetadataImage

# Kafka's AclOperation.DESCRIBE and ResourceType.TOPIC codes (kbroker.security.acls has them all; the
# coordinator layer sits below security and sees the authorizer only through the protocol below)
DESCRIBE, TOPIC = 8, 2


class Authorizer(Protocol):
    """What the resolution uses of kbroker.security.acls.Authorizer."""

    enabled: bool

    def authorize(self, principal: str, host: str, operation: int, resource_type: int, name: str,
                  log_denied: bool = True) -> bool: ...

log = logging.getLogger(__name__)

REGEX_REFRESH_INTERVAL_MS: int = BROKER_DEFAULTS["group.consumer.regex.refresh.interval.ms"]
REGEX_BATCH_REFRESH_MIN_INTERVAL_MS = 10_000  # Kafka's GroupMetadataManager.REGEX_BATCH_REFRESH_MIN_INTERVAL_MS


@dataclass(frozen=True, slots=True)
class Requester:
    """The principal and client address of the heartbeat that resolves a group's expressions."""

    principal: str
    host: str


@dataclass(frozen=True, slots=True)
class ResolvedRegex:
    """Kafka's ``ResolvedRegularExpression``: the topics, the version (the offset of the metadata
    image they were resolved against) and when (``ConsumerGroupRegularExpressionValue``)."""

    topics: frozenset[str]
    version: int
    resolved_at_ms: int


@dataclass(slots=True)
class RegexUpdate:
    """What a refresh changed in a group's resolutions: the expressions (re)resolved, whose records
    are written, and those no member subscribes to any more, tombstoned."""

    resolved: dict[str, ResolvedRegex]
    deleted: list[str]


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


def prune(resolved: dict[str, ResolvedRegex], regexes: Collection[str]) -> list[str]:
    """Drop the resolutions of expressions not in ``regexes`` (nobody subscribes to them any more);
    returns them, sorted (Kafka tombstones them)."""
    deleted = sorted(r for r in resolved if r not in regexes)
    for regex in deleted:
        del resolved[regex]
    return deleted


class RegexResolutions:
    """Resolves the expressions of a coordinator's consumer groups against its metadata image; the
    resolutions themselves are each group's (``resolved`` below)."""

    def __init__(self, image: Callable[[], MetadataImage], authorizer: Callable[[], Authorizer | None],
                 now_ms: Callable[[], int],
                 refresh_interval_ms: Callable[[], int] = lambda: REGEX_REFRESH_INTERVAL_MS) -> None:
        self._image = image
        self._authorizer = authorizer
        self._now_ms = now_ms
        self._refresh_interval_ms = refresh_interval_ms  # group.consumer.regex.refresh.interval.ms
        # The offset of the image in which a topic last appeared (Kafka's
        # lastMetadataImageWithNewTopics): the image at hand at first (as Kafka's first image after
        # start-up brings every topic as new), then each TopicRecord's (``on_metadata_record``).
        self._topics_changed_at = image().offset

    def on_metadata_record(self, record: object) -> None:
        """The metadata image's listener: a new topic makes older resolutions stale."""
        if type(record).__name__ == "TopicRecord":
            self._topics_changed_at = self._image().offset

    def should_refresh(self, resolved: Mapping[str, ResolvedRegex], regexes: Collection[str],
                       new_regex: bool) -> bool:
        """Kafka's conditions 2 and 3 of ``maybeUpdateRegularExpressions`` for a group subscribing to
        ``regexes`` with the resolutions ``resolved`` (a refresh is not under way: the caller checks
        that): the last refresh is more than 10 s old, and a member just brought an expression
        nobody subscribed to (``new_regex``), one has no resolution, a topic appeared since, or the
        last refresh is older than the refresh interval."""
        if not regexes:
            return False
        now = self._now_ms()
        last = max((v.resolved_at_ms for v in resolved.values()), default=None)
        if last is not None and now <= last + REGEX_BATCH_REFRESH_MIN_INTERVAL_MS:
            return False
        return (new_regex or any(r not in resolved for r in regexes)
                or any(v.version < self._topics_changed_at for v in resolved.values())
                or (last is not None and now > last + self._refresh_interval_ms()))

    def resolve_batch(self, group_id: str, regexes: Collection[str], requester: Requester | None
                      ) -> dict[str, ResolvedRegex]:
        """Kafka's ``TopicRegexResolver.resolveRegularExpressions``: every expression of the batch
        against the image at hand, authorizing for ``requester``; stamped with the image's offset
        and the time."""
        image = self._image()
        found = resolve(regexes, list(image.topics), self._authorizer(), requester)
        now = self._now_ms()
        log.info("consumer group %s: resolved regular expressions %s for %s: %s", group_id, sorted(regexes),
                 requester.principal if requester else "an internal request",
                 {r: sorted(t) for r, t in found.items()})
        return {r: ResolvedRegex(frozenset(t), image.offset, now) for r, t in found.items()}

    def topics(self, resolved: Mapping[str, ResolvedRegex], regex: str) -> set[str]:
        """The existing topics of the group's resolution of ``regex`` (none while it is unresolved)."""
        found = resolved.get(regex)
        if found is None:
            return set()
        image = self._image()
        return {t for t in found.topics if image.topic(t) is not None}
