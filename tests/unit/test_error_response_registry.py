"""kbroker.api.error_response: every API the broker serves (on a broker listener, forwarded, or on a
controller's controller listener) has an error response builder, found
even when its handler module is not imported yet, and each builds an encodable response at every
version served.

Each builder lives in its API's module (or, for the top-level-code-only APIs, in the core; or, for a
forwarded API whose controller operation answers with it, in that operation's module, registered by
the API's module);
``builder_for`` imports the module ``kbroker.api.refusal_modules`` names. The lookup check runs in a
fresh interpreter: this one has imported every handler module already.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Coroutine
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kbroker.api import HANDLER_TABLE, controller_apis, load_handlers, refusal_modules
from kbroker.api.error_response import BUILDERS, TOP_LEVEL_ONLY, builder_for, error_response, refusal
from kbroker.controller.operations.local import OPERATIONS
from kbroker.metadata.client import FORWARDED_APIS
from kbroker.raft.transport import RAFT_APIS
from kbroker_protocol.errors import ErrorCode
from kbroker_protocol.messages import REQUESTS, RESPONSES

REPO = Path(__file__).resolve().parents[2]
CORE = "kbroker.api.error_response"
BROKER_KEYS = sorted({row[0] for row in HANDLER_TABLE if "broker" in row[4]})

load_handlers()


class _ControllerNode:
    """What ``controller_apis.install`` touches of a controller: its RaftDriver's handler table."""

    def __init__(self) -> None:
        self.raft = SimpleNamespace(handlers={}, error_responder=None)

    def run_in_background(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        coro.close()


def _controller_listener_keys() -> list[int]:
    """Every API a controller serves on its controller listener: the Raft RPCs and what
    ``kbroker.api.controller_apis.install`` adds (ControllerApis answers each failure with its
    error response)."""
    node = _ControllerNode()
    controller_apis.install(node)  # type: ignore[arg-type]  # (the part of a node it uses)
    assert node.raft.error_responder is error_response
    return sorted(RAFT_APIS | set(node.raft.handlers))


CONTROLLER_KEYS = _controller_listener_keys()


def _served_versions() -> list[tuple[int, int]]:
    """(key, version) for every version of every API served on a broker listener, forwarded to the
    controller (whose builder answers a forwarded request that failed) or served on the controller
    listener."""
    ranges: dict[int, tuple[int, int]] = {}
    for key, _module, low, high, listeners in HANDLER_TABLE:
        if "broker" in listeners:
            ranges[key] = (low, high)
    for key in (FORWARDED_APIS | set(CONTROLLER_KEYS)) - set(ranges):
        # (the controller listener answers every version the codec decodes)
        ranges[key] = (REQUESTS[key].MIN_VERSION, REQUESTS[key].MAX_VERSION)
    return [(key, v) for key, (low, high) in sorted(ranges.items()) for v in range(low, high + 1)]


def _builder_homes(key: int) -> list[str]:
    """Where ``key``'s builder may be defined: the modules ``refusal_modules`` names (which register
    it), and for a forwarded API the module of its controller operation (which answers a refused
    request with it, below the API layer)."""
    homes = refusal_modules(key)
    if key in OPERATIONS:
        homes = [*homes, OPERATIONS[key].__module__]
    return homes


def test_every_api_is_found_without_its_handler_module_imported() -> None:
    keys = sorted(set(BROKER_KEYS) | FORWARDED_APIS | set(CONTROLLER_KEYS))
    code = textwrap.dedent(f"""
        import json, sys
        from kbroker.api.error_response import builder_for
        before = sorted(m for m in sys.modules if m.startswith("kbroker.api."))
        found = {{}}
        for key in {keys!r}:
            builder = builder_for(key)
            found[key] = None if builder is None else builder.__module__
        print(json.dumps({{"before": before, "found": found}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    # the core imports no handler module itself
    assert result["before"] == [CORE], result["before"]
    missing = [int(key) for key, module in result["found"].items() if module is None]
    assert missing == []
    for key, module in result["found"].items():
        assert module == CORE or module in _builder_homes(int(key)), (key, module)


def test_each_builder_lives_where_the_lookup_imports() -> None:
    """Here every handler module is imported: each registered builder is in the core or in a
    module ``refusal_modules`` names for its key (else a fresh broker would not find it), or in the
    module of that API's controller operation, which answers with it (registered by the API's
    module, which imports it)."""
    assert set(BROKER_KEYS) | set(CONTROLLER_KEYS) <= set(BUILDERS)
    for key, builder in BUILDERS.items():
        where = [CORE] if key in TOP_LEVEL_ONLY else _builder_homes(key)
        assert builder.__module__ in where, (key, builder.__module__)


@pytest.mark.parametrize(("key", "version"), _served_versions())
def test_builder_gives_an_encodable_response_at_every_version(key: int, version: int) -> None:
    builder = builder_for(key)
    assert builder is not None
    request = REQUESTS[key](acks=-1) if key == 0 else REQUESTS[key]()  # (acks=0: no response)
    response = builder(request, version, int(ErrorCode.UNKNOWN_SERVER_ERROR))
    assert isinstance(response, RESPONSES[key])
    data = response.encode(version)
    assert RESPONSES[key].decode(data, version).encode(version) == data


def test_a_second_builder_for_an_api_is_refused() -> None:
    with pytest.raises(RuntimeError, match="registered twice"):
        refusal(0)(lambda request, version, code: None)
    assert BUILDERS[0].__module__ == "kbroker.api.produce"
