"""kbroker.api.install_handlers: the broker's API table without importing the handler modules.

Each check runs in a fresh interpreter (this one has imported every handler already).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(code: str, tmp_path: Path | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         cwd=tmp_path or REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


_SNAPSHOT = """
    def snapshot():
        from kbroker.api.registry import LISTENER_HANDLERS
        return {name: {str(k): [e.name, e.min_version, e.max_version, list(e.listeners)]
                       for k, e in table.items()} for name, table in LISTENER_HANDLERS.items()}
"""


def test_table_matches_what_the_modules_register():
    result = _run(_SNAPSHOT + """
    import json, sys
    from kbroker.api import install_handlers, load_handlers
    from kbroker.api.registry import Deferred, LISTENER_HANDLERS
    install_handlers()
    lazy = snapshot()
    imported = sorted(m for m in sys.modules if m.startswith("kbroker.api."))
    load_handlers()
    real = snapshot()
    deferred_left = [k for t in LISTENER_HANDLERS.values() for k, e in t.items() if isinstance(e.handler, Deferred)]
    table = sorted({(k, e.name.rsplit(".", 1)[1], e.min_version, e.max_version, e.listeners)
                    for t in LISTENER_HANDLERS.values() for k, e in t.items()})
    print(json.dumps({"lazy": lazy, "real": real, "imported": imported, "left": deferred_left, "table": table}))
    """)
    expected = "\n".join(f"    {tuple(row[:4]) + (tuple(row[4]),)}," for row in result["table"])
    assert result["lazy"] == result["real"], (
        "kbroker/api/__init__.py HANDLER_TABLE differs from what the modules register; it should be:\n"
        + expected)
    assert result["left"] == []
    # Installing imported none of the handler modules (one missing from the table would be imported
    # at install: served right, but no longer deferred).
    assert result["imported"] == ["kbroker.api.registry"], (
        "handler modules imported at install (add their rows to HANDLER_TABLE):\n" + expected)


def test_deferred_handler_imports_its_module_on_first_call(tmp_path):
    (tmp_path / "fake_api_module.py").write_text(textwrap.dedent("""
        from kbroker.api.registry import api
        from kbroker_protocol.primitives import Message

        class FakeRequest(Message):
            __slots__ = ()
            API_KEY = 1000

        class FakeResponse(Message):
            __slots__ = ()
            API_KEY = 1000

        @api(FakeRequest, FakeResponse, 0, 2)
        def handle(ctx, body):
            return ("answered", ctx, body)
    """))
    result = _run("""
    import json, sys
    from kbroker.api.registry import HANDLERS, Deferred, defer
    defer(1000, "fake_api_module", 0, 2)
    entry = HANDLERS[1000]
    before = [isinstance(entry.handler, Deferred), "fake_api_module" in sys.modules,
              entry.min_version, entry.max_version, entry.name]
    answer = entry.handler("ctx", "body")
    after = [isinstance(HANDLERS[1000].handler, Deferred), "fake_api_module" in sys.modules]
    again = entry.handler("ctx2", "body2")  # a table that kept the placeholder still works
    defer(1000, "other_module", 0, 9)  # an API already registered is left as it is
    print(json.dumps({"before": before, "answer": answer, "after": after, "again": again,
                      "max": HANDLERS[1000].max_version}))
    """, tmp_path)
    assert result["before"] == [True, False, 0, 2, "fake_api_module"]
    assert result["answer"] == ["answered", "ctx", "body"]
    assert result["after"] == [False, True]
    assert result["again"] == ["answered", "ctx2", "body2"]
    assert result["max"] == 2


def test_deferred_module_that_does_not_register_fails_clearly(tmp_path):
    (tmp_path / "empty_api_module.py").write_text("X = 1\n")
    result = _run("""
    import json, sys
    from kbroker.api.registry import HANDLERS, defer
    defer(1001, "empty_api_module", 0, 0)
    try:
        HANDLERS[1001].handler("ctx", "body")
    except RuntimeError as exc:
        print(json.dumps(str(exc)))
    """, tmp_path)
    assert result == "empty_api_module did not register api key 1001 on the broker listener"


_FAKE_API = """
    from kbroker_protocol.primitives import Message

    class FakeRequest(Message):
        __slots__ = ()
        API_KEY = 1002

    class FakeResponse(Message):
        __slots__ = ()
        API_KEY = 1002

    class OtherResponse(Message):
        __slots__ = ()
        API_KEY = 1003
"""


def test_registering_twice_is_still_refused():
    result = _run(_FAKE_API + """
    import json
    from kbroker.api.registry import api
    api(FakeRequest, FakeResponse, 0, 0)(lambda ctx, body: None)
    try:
        api(FakeRequest, FakeResponse, 0, 0)(lambda ctx, body: None)
    except RuntimeError as exc:
        print(json.dumps(str(exc)))
    """)
    assert result == "api key 1002 registered twice on the broker listener"


def test_a_response_of_another_api_is_refused():
    result = _run(_FAKE_API + """
    import json
    from kbroker.api.registry import HANDLERS, api
    try:
        api(FakeRequest, OtherResponse, 0, 0)
    except RuntimeError as exc:
        print(json.dumps([str(exc), 1002 in HANDLERS]))
    """)
    assert result == ["OtherResponse answers api key 1003, not FakeRequest's 1002", False]
