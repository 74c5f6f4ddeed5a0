"""Fixtures: a kbroker cluster as child processes (see cluster_fixture.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster_fixture import FAST_SESSIONS, Cluster


@pytest.fixture
def cluster(tmp_path) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "cluster", 3)
    try:
        yield c.start()
    finally:
        c.kill_all()


@pytest.fixture
def separate_cluster(tmp_path) -> Iterator[Cluster]:
    """Three controller-only voters (1-3) and two broker-only nodes (4, 5: observers)."""
    c = Cluster(tmp_path / "cluster", 3, brokers=2, separate=True)
    try:
        yield c.start()
    finally:
        c.kill_all()


@pytest.fixture
def fast_cluster(tmp_path) -> Iterator[Cluster]:
    """Three nodes whose broker sessions expire after 3 s (FAST_SESSIONS)."""
    c = Cluster(tmp_path / "cluster", 3, FAST_SESSIONS)
    try:
        yield c.start()
    finally:
        c.kill_all()
