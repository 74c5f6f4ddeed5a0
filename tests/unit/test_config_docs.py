"""Every broker and topic key carries its documentation in the key table (kbroker/config/keys.py),
and every group key in kbroker/config/group_keys.py, which DescribeConfigs returns when asked
(IncludeDocumentation): none may be missing or a placeholder, keys kbroker accepts but ignores
must say so, and kbroker's own keys must say they are kbroker's."""

from __future__ import annotations

import re

import pytest

from kbroker.config import BROKER_KEYS, GROUP_KEYS, TOPIC_KEYS, BrokerConfig, describe_group_configs

_ALL = {**{f"broker {n}": k.doc for n, k in BROKER_KEYS.items()},
        **{f"topic {n}": k.spec.doc for n, k in TOPIC_KEYS.items()},
        **{f"group {n}": k.spec.doc for n, k in GROUP_KEYS.items()}}
_PLACEHOLDER = re.compile(r"\b(todo|tbd|fixme|xxx|placeholder|lorem|undocumented)\b|(\.\.\.|…)$", re.IGNORECASE)
_HTML = re.compile(r"</?(code|p|ul|ol|li|b|i|em|a|br|pre)\b", re.IGNORECASE)


@pytest.mark.parametrize("key", sorted(_ALL))
def test_every_key_has_documentation(key: str) -> None:
    doc = _ALL[key]
    name = key.split(" ", 1)[1]
    assert doc == doc.strip() and len(doc) >= 30, f"{key}: {doc!r}"
    assert not _PLACEHOLDER.search(doc), f"{key}: {doc!r}"
    assert doc.rstrip(".").lower() != name.lower(), f"{key}: {doc!r}"
    assert doc.endswith("."), f"{key}: a sentence: {doc!r}"
    assert not _HTML.search(doc), f"{key}: plain text, not Kafka's HTML: {doc!r}"


def test_no_two_keys_share_a_documentation() -> None:
    """A copied string is a placeholder in disguise."""
    seen: dict[str, str] = {}
    for key, doc in _ALL.items():
        assert doc not in seen, f"{key} and {seen[doc]} have the same documentation"
        seen[doc] = key


def test_keys_accepted_without_effect_say_so() -> None:
    """``applied=False``: accepted so real server.properties files start, without effect; the
    documentation must not leave a reader thinking otherwise."""
    ignored = [n for n, k in BROKER_KEYS.items() if not k.applied]
    assert "log.preallocate" in ignored and "num.io.threads" in ignored
    for name in ignored:
        assert "no effect" in BROKER_KEYS[name].doc, name


def test_kbrokers_own_keys_say_they_are_kbrokers() -> None:
    own = [n for n in BROKER_KEYS if n.startswith("kbroker.")]
    assert "kbroker.request.receive.timeout.ms" in own
    for name in own:
        assert BROKER_KEYS[name].doc.startswith("kbroker's own"), name


def test_describe_broker_entries_carry_each_keys_documentation() -> None:
    """What DescribeConfigs of a broker reports: every listed key with its table documentation,
    the dynamic-only throttles too once set."""
    config = BrokerConfig({"leader.replication.throttled.rate": "1000"}, warn=False)
    entries = {e.name: e.doc for e in config.describe_broker()}
    assert "leader.replication.throttled.rate" in entries
    assert len(entries) >= len(BROKER_KEYS) - 3
    for name, doc in entries.items():
        assert doc == BROKER_KEYS[name].doc and doc, name
    topic = {e.name: e.doc for e in config.describe_topic({})}
    assert topic == {n: k.spec.doc for n, k in TOPIC_KEYS.items()}
    group = {e.name: e.doc for e in describe_group_configs(config, {"share.delivery.count.limit": "3"})}
    assert group == {n: k.spec.doc for n, k in GROUP_KEYS.items()}


def test_committed_configuration_reference_is_current(tmp_path) -> None:
    """docs/configuration.md is what scripts/config_reference.py writes from the key table."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "configuration.md"
    subprocess.run([sys.executable, str(repo / "scripts" / "config_reference.py"), str(out)],
                   check=True, capture_output=True, cwd=repo)
    fresh = out.read_text(encoding="utf-8")
    assert fresh == (repo / "docs" / "configuration.md").read_text(encoding="utf-8"), (
        "docs/configuration.md is stale: run scripts/config_reference.py")
    assert all(f"| `{name}` |" in fresh for name in [*BROKER_KEYS, *TOPIC_KEYS, *GROUP_KEYS])
