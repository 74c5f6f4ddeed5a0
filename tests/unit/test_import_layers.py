"""kbroker's import graph: no cycle between files and no upward import (issue 14's layers).

Runs ``scripts/check_imports.py``'s own functions over the source tree, counting type-only imports
(``if TYPE_CHECKING:`` blocks) too: a cycle through annotations is still a cycle between files.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_imports.py"


@pytest.fixture(scope="module")
def check_imports():
    spec = importlib.util.spec_from_file_location("check_imports", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def edges(check_imports):
    return check_imports.graph(type_only=True)


def test_graph_covers_the_layers(check_imports, edges):
    # The walk found the packages it checks (an empty graph would pass everything).
    for module in ("kbroker_protocol.api", "kbroker.log.partition_log", "kbroker.metadata.image",
                   "kbroker.metadata.loader", "kbroker.metadata.client", "kbroker.controller.quorum",
                   "kbroker.replication.replica_manager", "kbroker.coordinator.group_coordinator",
                   "kbroker.api.produce", "kbroker.server.connection", "kbroker.broker"):
        assert module in edges
    assert "kbroker.replication.produce_batch" in edges["kbroker.replication.replica_manager"]
    assert "kbroker.broker" in edges["kbroker.__main__"]


def test_no_cycle_between_files(check_imports, edges):
    assert check_imports.cycles(edges) == []


def test_no_upward_import(check_imports, edges):
    assert check_imports.upward(edges) == []


def test_checker_finds_a_cycle_and_an_upward_import(check_imports):
    # The checks themselves can fail: a made-up graph with both defects.
    edges = {
        "kbroker.replication.a": {"kbroker.api.b"},
        "kbroker.api.b": {"kbroker.replication.a"},
        "kbroker.log.c": set(),
    }
    assert check_imports.cycles(edges) == [["kbroker.api.b", "kbroker.replication.a"]]
    assert check_imports.upward(edges) == [("kbroker.replication.a", "kbroker.api.b")]


def test_layer_order(check_imports):
    order = ["kbroker_protocol.api", "kbroker.log", "kbroker.metadata.image", "kbroker.replication",
             "kbroker.coordinator", "kbroker.security", "kbroker.controller.quorum",
             "kbroker.controller.operations.create_topics", "kbroker.api", "kbroker.server", "kbroker.broker"]
    ranks = [check_imports.layer_of(m) for m in order]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
    assert check_imports.layer_of("kbroker.raft.io") == check_imports.layer_of("kbroker.metadata.loader")
    assert check_imports.layer_of("kbroker.control.plane") == check_imports.layer_of("kbroker.broker")
    assert check_imports.layer_of("kbroker.testing") == check_imports.layer_of("kbroker.broker")


def test_type_only_imports_count(check_imports, tmp_path):
    source = tmp_path / "a.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from kbroker.broker import Broker\n"
        "def f():\n"
        "    from kbroker.api import produce\n",
        encoding="utf-8",
    )
    modules = {"kbroker.broker", "kbroker.api", "kbroker.api.produce", "kbroker.replication.a"}
    found = check_imports.imports_of(source, "kbroker.replication.a", modules, type_only=True)
    assert found == {"kbroker.broker", "kbroker.api.produce"}
    found = check_imports.imports_of(source, "kbroker.replication.a", modules, type_only=False)
    assert found == {"kbroker.api.produce"}


def test_the_data_path_never_imports_the_controller(check_imports, edges):
    # Issue 14: replication, the coordinators and security read the metadata through the image,
    # the loader and the controller client (kbroker.metadata), never the active controller's
    # modules, type-only imports included.
    below = ("kbroker.metadata", "kbroker.raft", "kbroker.log", "kbroker.replication", "kbroker.coordinator",
             "kbroker.security")
    found = sorted((src, dst) for src, dsts in edges.items() if src.startswith(below)
                   for dst in dsts if dst.startswith("kbroker.controller"))
    assert found == []
    assert any(dst.startswith("kbroker.metadata") for dst in edges["kbroker.replication.replica_manager"])


@pytest.mark.parametrize("src", ["kbroker.replication.topics", "kbroker.coordinator.hosts",
                                 "kbroker.metadata.client", "kbroker.raft.voter_update"])
def test_an_import_of_the_controller_from_below_is_upward(check_imports, src):
    for dst in ("kbroker.controller.quorum", "kbroker.controller.topic_plans", "kbroker.controller.errors"):
        assert check_imports.upward({src: {dst}}) == [(src, dst)]
    assert check_imports.upward({"kbroker.controller.quorum": {src}}) == []
