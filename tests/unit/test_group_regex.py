"""Regex subscriptions resolved per group and filtered by DESCRIBE (kbroker.coordinator.group_regex),
as Kafka's GroupMetadataManager/TopicRegexResolver."""

from __future__ import annotations

from typing import Any, cast

from kbroker.coordinator.group_regex import (
    REGEX_BATCH_REFRESH_MIN_INTERVAL_MS,
    REGEX_REFRESH_INTERVAL_MS,
    RegexResolutions,
    Requester,
    ResolvedRegex,
    prune,
    resolve,
)
from kbroker.security import acls as A


class TopicRecord:
    """(What the resolutions' listener looks for.)"""


class FakeImage:
    def __init__(self, *names: str) -> None:
        self.topics: dict[str, object] = dict.fromkeys(names, object())
        self.offset = 1
        self.listeners: list[Any] = []

    def add(self, name: str) -> None:
        self.topics[name] = object()
        self.offset += 1
        for listener in self.listeners:
            listener(TopicRecord())

    def topic(self, name: str) -> object | None:
        return self.topics.get(name)


def _resolutions(image: FakeImage, auth: A.Authorizer | None, now: list[int]) -> RegexResolutions:
    regexes = RegexResolutions(lambda: cast(Any, image), lambda: auth, lambda: now[0])
    image.listeners.append(regexes.on_metadata_record)
    return regexes


def _authorizer(*describable: str) -> A.Authorizer:
    auth = A.Authorizer()
    auth.enabled = True
    for i, name in enumerate(describable):
        auth.acls[cast(Any, i)] = A.Acl(A.TOPIC, name, A.LITERAL, "User:alice", "*", A.DESCRIBE, A.ALLOW)
    return auth


ALICE, BOB = Requester("User:alice", "127.0.0.1"), Requester("User:bob", "127.0.0.1")


def test_resolve_drops_a_topic_the_requester_may_not_describe_from_every_regex() -> None:
    got = resolve(["a-.*", ".*-x", "(bad"], ["a-x", "a-y", "b-x"], _authorizer("a-y", "b-x"), ALICE)
    assert got == {"a-.*": {"a-y"}, ".*-x": {"b-x"}, "(bad": set()}
    assert resolve(["a-.*"], ["a-x", "a-y"], None, ALICE) == {"a-.*": {"a-x", "a-y"}}  # no authorizer
    assert resolve(["a-.*"], ["a-x", "a-y"], _authorizer(), None) == {"a-.*": {"a-x", "a-y"}}  # internal request


def refresh(regexes: RegexResolutions, group_id: str, resolved: dict[str, ResolvedRegex], subscribed: set[str],
            requester: Requester, new_regex: bool = False) -> dict[str, ResolvedRegex]:
    """What the consumer group manager does: prune, then resolve the batch when a refresh is due."""
    prune(resolved, subscribed)
    if not regexes.should_refresh(resolved, subscribed, new_regex):
        return {}
    found = regexes.resolve_batch(group_id, subscribed, requester)
    resolved.update(found)
    return found


def test_a_group_shares_its_resolution_until_the_topics_change() -> None:
    image, auth, now = FakeImage("a-x", "a-y"), _authorizer("a-x"), [0]
    regexes = _resolutions(image, auth, now)
    g: dict[str, ResolvedRegex] = {}
    assert regexes.topics(g, "a-.*") == set()  # unresolved: nothing
    # (persisted: the topics, the image's offset as the version, the time)
    assert refresh(regexes, "g", g, {"a-.*"}, ALICE) == {"a-.*": ResolvedRegex(frozenset({"a-x"}), 1, 0)}
    assert regexes.topics(g, "a-.*") == {"a-x"}
    # resolved for the group: another member's heartbeat does not resolve it again...
    now[0] = REGEX_BATCH_REFRESH_MIN_INTERVAL_MS + 1
    assert refresh(regexes, "g", g, {"a-.*"}, BOB) == {}
    assert regexes.topics(g, "a-.*") == {"a-x"}
    # ...until a topic appears (then for the principal of that heartbeat), but not within 10 s
    # of the last refresh
    image.add("a-z")
    auth.acls[cast(Any, 99)] = A.Acl(A.TOPIC, "a-z", A.LITERAL, "User:bob", "*", A.DESCRIBE, A.ALLOW)
    now[0] = REGEX_BATCH_REFRESH_MIN_INTERVAL_MS
    assert refresh(regexes, "g", g, {"a-.*"}, BOB) == {}
    now[0] = REGEX_BATCH_REFRESH_MIN_INTERVAL_MS + 1
    assert refresh(regexes, "g", g, {"a-.*"}, BOB) == {"a-.*": ResolvedRegex(frozenset({"a-z"}), 2, now[0])}
    assert regexes.topics(g, "a-.*") == {"a-z"}
    # or the refresh interval passes (an ACL change is seen then)
    auth.acls[cast(Any, 100)] = A.Acl(A.TOPIC, "a-y", A.LITERAL, "User:alice", "*", A.DESCRIBE, A.ALLOW)
    now[0] += REGEX_BATCH_REFRESH_MIN_INTERVAL_MS + 1
    assert refresh(regexes, "g", g, {"a-.*"}, ALICE) == {}
    assert regexes.topics(g, "a-.*") == {"a-z"}
    now[0] = REGEX_BATCH_REFRESH_MIN_INTERVAL_MS + 2 + REGEX_REFRESH_INTERVAL_MS
    refresh(regexes, "g", g, {"a-.*"}, ALICE)
    assert regexes.topics(g, "a-.*") == {"a-x", "a-y"}
    # another group resolves for itself
    h: dict[str, ResolvedRegex] = {}
    refresh(regexes, "h", h, {"a-.*"}, BOB)
    assert regexes.topics(h, "a-.*") == {"a-z"} and regexes.topics(g, "a-.*") == {"a-x", "a-y"}
    # an expression nobody subscribes to any more is dropped (and tombstoned)
    assert prune(g, {"b-.*"}) == ["a-.*"] and g == {}


def test_a_new_regex_waits_for_the_minimum_interval_since_the_last_refresh() -> None:
    """Kafka's REGEX_BATCH_REFRESH_MIN_INTERVAL_MS: even a new expression is resolved at most
    every 10 s per group (the batch then resolves every subscribed expression)."""
    image, now = FakeImage("a-x", "b-x"), [1000]
    regexes = _resolutions(image, None, now)
    g: dict[str, ResolvedRegex] = {}
    assert regexes.should_refresh(g, {"a-.*"}, True)  # nothing resolved yet: at once
    refresh(regexes, "g", g, {"a-.*"}, ALICE, True)
    now[0] += REGEX_BATCH_REFRESH_MIN_INTERVAL_MS
    assert not regexes.should_refresh(g, {"a-.*", "b-.*"}, True)
    now[0] += 1
    assert refresh(regexes, "g", g, {"a-.*", "b-.*"}, ALICE, True) == {
        "a-.*": ResolvedRegex(frozenset({"a-x"}), 1, now[0]), "b-.*": ResolvedRegex(frozenset({"b-x"}), 1, now[0])}
    assert not regexes.should_refresh(g, set(), True)  # (no expression: nothing to resolve)


def test_a_loaded_resolution_is_kept_until_the_topics_change_after_it() -> None:
    """A resolution read back from __consumer_offsets (another coordinator's, or before a
    restart) is used as it is while no topic appeared since the image it was resolved against."""
    image, auth = FakeImage("a-x", "a-y"), _authorizer("a-x", "a-y")
    image.offset = 7
    now = [20_000]
    regexes = _resolutions(image, auth, now)
    g = {"a-.*": ResolvedRegex(frozenset({"a-x"}), 7, 0)}  # (ACLs differed then)
    assert refresh(regexes, "g", g, {"a-.*"}, ALICE) == {}
    assert regexes.topics(g, "a-.*") == {"a-x"}
    older = {"a-.*": ResolvedRegex(frozenset({"a-x"}), 6, 0)}  # resolved before the image this coordinator started with
    assert refresh(regexes, "g", older, {"a-.*"}, ALICE) == {"a-.*": ResolvedRegex(frozenset({"a-x", "a-y"}), 7, 20_000)}


def test_an_unresolved_regex_matches_nothing_even_without_an_authorizer() -> None:
    image = FakeImage("a-x", "b-x")
    regexes = _resolutions(image, None, [0])
    assert regexes.topics({}, "a-.*") == set()


def test_the_coordinators_acl_codes_are_the_authorizers():
    """group_regex keeps its own DESCRIBE/TOPIC codes (the coordinator layer does not import
    security); they must be the authorizer's."""
    from kbroker.coordinator import group_regex
    from kbroker.security import acls

    assert (group_regex.DESCRIBE, group_regex.TOPIC) == (acls.DESCRIBE, acls.TOPIC)
