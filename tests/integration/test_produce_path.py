"""The Produce path (issue 14): from the socket to the segment in at most eight files of kbroker/,
each step at or below the layer before it, and nothing on the way calls up into the composition
root. Traced on a live broker by scripts/trace_produce_path.py (docs/architecture.md)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "trace_produce_path.py"


def _load():
    spec = importlib.util.spec_from_file_location("trace_produce_path", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["trace_produce_path"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_produce_goes_down_the_layers_from_socket_to_segment_in_at_most_eight_files() -> None:
    tp = _load()
    path = tp.trace()
    assert path.chain[0] == "kbroker/server/connection.py" and path.chain[-1] == "kbroker/log/segment.py"
    assert len(path.chain) <= 8, path.chain
    ranks = [tp.layer_of(tp.module_of(rel)) for rel in path.chain]
    assert ranks == sorted(ranks, reverse=True), list(zip(path.chain, ranks, strict=True))
    root = [rel for rel in path.ran if tp.layer_name(rel) == "composition root"]
    assert root == [], f"the request called up into {root}"
    # the request's own work is in these layers only (the answer goes back through server/)
    assert {tp.layer_name(rel) for rel in path.ran} <= {
        "kbroker.server", "kbroker.api", "kbroker.security", "kbroker.metadata", "kbroker.replication",
        "kbroker.log"}
