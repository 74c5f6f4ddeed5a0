"""The cluster harness tests need root (network namespaces, iptables, mounts): they fail, naming it,
when not run as root (never skip)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def needs_root():
    if os.geteuid() != 0:
        pytest.fail("this test needs root (network namespaces, iptables, mounts): run the suite as root")
