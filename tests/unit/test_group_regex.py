"""Regex subscriptions resolved per group and filtered by DESCRIBE (kbroker.coordinator.group_regex),
as Kafka's GroupMetadataManager/TopicRegexResolver."""

from __future__ import annotations

from typing import Any, cast

from kbroker.coordinator.group_regex import (
    REGEX_REFRESH_INTERVAL_MS,
    RegexResolutions,
    RegexUpdate,
    Requester,
    ResolvedRegex,
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


def test_a_group_shares_its_resolution_until_the_topics_change() -> None:
    image, auth, now = FakeImage("a-x", "a-y"), _authorizer("a-x"), [0]
    regexes = _resolutions(image, auth, now)
    g: dict[str, ResolvedRegex] = {}
    assert regexes.topics(g, "a-.*") == set()  # unresolved with an authorizer: nothing
    update = regexes.refresh("g", g, {"a-.*"}, ALICE)
    assert regexes.topics(g, "a-.*") == {"a-x"}
    # (persisted: the topics, the image's offset as the version, the time)
    assert (update.resolved, update.deleted) == ({"a-.*": ResolvedRegex(frozenset({"a-x"}), 1, 0)}, [])
    # resolved for the group: another member's heartbeat does not resolve it again...
    assert regexes.refresh("g", g, {"a-.*"}, BOB) == RegexUpdate({}, [])
    assert regexes.topics(g, "a-.*") == {"a-x"}
    # ...until a topic appears (then for the principal of that heartbeat)
    image.add("a-z")
    auth.acls[cast(Any, 99)] = A.Acl(A.TOPIC, "a-z", A.LITERAL, "User:bob", "*", A.DESCRIBE, A.ALLOW)
    assert regexes.refresh("g", g, {"a-.*"}, BOB).resolved == {"a-.*": ResolvedRegex(frozenset({"a-z"}), 2, 0)}
    assert regexes.topics(g, "a-.*") == {"a-z"}
    # or the refresh interval passes (an ACL change is seen then)
    auth.acls[cast(Any, 100)] = A.Acl(A.TOPIC, "a-y", A.LITERAL, "User:alice", "*", A.DESCRIBE, A.ALLOW)
    regexes.refresh("g", g, {"a-.*"}, ALICE)
    assert regexes.topics(g, "a-.*") == {"a-z"}
    now[0] = REGEX_REFRESH_INTERVAL_MS
    regexes.refresh("g", g, {"a-.*"}, ALICE)
    assert regexes.topics(g, "a-.*") == {"a-x", "a-y"}
    # another group resolves for itself
    h: dict[str, ResolvedRegex] = {}
    regexes.refresh("h", h, {"a-.*"}, BOB)
    assert regexes.topics(h, "a-.*") == {"a-z"} and regexes.topics(g, "a-.*") == {"a-x", "a-y"}
    # an expression nobody subscribes to any more is dropped (and tombstoned)
    assert regexes.refresh("g", g, {"b-.*"}, ALICE).deleted == ["a-.*"]
    assert set(g) == {"b-.*"}


def test_a_loaded_resolution_is_kept_until_the_topics_change_after_it() -> None:
    """A resolution read back from __consumer_offsets (another coordinator's, or before a
    restart) is used as it is while no topic appeared since the image it was resolved against."""
    image, auth = FakeImage("a-x", "a-y"), _authorizer("a-x", "a-y")
    image.offset = 7
    regexes = _resolutions(image, auth, [5])
    g = {"a-.*": ResolvedRegex(frozenset({"a-x"}), 7, 0)}  # (ACLs differed then)
    assert regexes.refresh("g", g, {"a-.*"}, ALICE) == RegexUpdate({}, [])
    assert regexes.topics(g, "a-.*") == {"a-x"}
    older = {"a-.*": ResolvedRegex(frozenset({"a-x"}), 6, 0)}  # resolved before the image this coordinator started with
    assert regexes.refresh("g", older, {"a-.*"}, ALICE).resolved == {"a-.*": ResolvedRegex(frozenset({"a-x", "a-y"}), 7, 5)}


def test_without_an_authorizer_an_unresolved_regex_matches_the_image() -> None:
    image = FakeImage("a-x", "b-x")
    regexes = _resolutions(image, None, [0])
    assert regexes.topics({}, "a-.*") == {"a-x"}


def test_the_coordinators_acl_codes_are_the_authorizers():
    """group_regex keeps its own DESCRIBE/TOPIC codes (the coordinator layer does not import
    security); they must be the authorizer's."""
    from kbroker.coordinator import group_regex
    from kbroker.security import acls

    assert (group_regex.DESCRIBE, group_regex.TOPIC) == (acls.DESCRIBE, acls.TOPIC)
