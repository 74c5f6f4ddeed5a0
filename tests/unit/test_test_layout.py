"""The test suite's own layout rules (issue 14): helpers live in helper modules, never in a test
module another one imports; the ``slow`` marker leaves a quick loop of the rest."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent


def _imported_modules(path: Path) -> list[str]:
    """Every module ``path`` imports, at any depth; ``from tests.x import y`` also names ``tests.x.y``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            if node.level == 0 and node.module.split(".")[0] == "tests":
                names.extend(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def _test_module_offenders(tests: Path) -> list[str]:
    """Imports of a test module, qualified (``tests.x.test_y``) or bare (``test_y``, which works only
    because pytest puts the test's folder on sys.path) where ``test_y.py`` is in the tests tree."""
    root = tests.parent
    bare = {p.stem for p in tests.rglob("test_*.py")}
    offenders = []
    for path in sorted(tests.rglob("*.py")):
        for module in _imported_modules(path):
            qualified = module.startswith("tests.") and module.rsplit(".", 1)[-1].startswith("test_")
            if qualified or module in bare:
                offenders.append(f"{path.relative_to(root)} imports {module}")
    return offenders


def test_no_test_module_imports_another_test_module() -> None:
    offenders = _test_module_offenders(TESTS)
    assert offenders == [], "move shared helpers into a helper module:\n" + "\n".join(offenders)


def test_the_layout_check_catches_bare_and_qualified_imports_of_test_modules(tmp_path) -> None:
    tests = tmp_path / "tests"
    (tests / "a").mkdir(parents=True)
    (tests / "b").mkdir()
    (tests / "a" / "test_x.py").write_text("def helper() -> int:\n    return 1\n")
    (tests / "a" / "a_helpers.py").write_text("import os\n")
    (tests / "a" / "test_bare.py").write_text("from test_x import helper\n")
    (tests / "a" / "test_plain.py").write_text("import test_x as vc\n")
    (tests / "b" / "test_inner.py").write_text("def test_f() -> None:\n    from test_x import helper\n")
    (tests / "b" / "test_qualified.py").write_text("from tests.a.test_x import helper\n")
    (tests / "b" / "test_package.py").write_text("from tests.a import test_x\n")
    (tests / "b" / "test_fine.py").write_text(
        "from tests.a.a_helpers import os\nimport test_not_in_the_tree\nfrom wire import Wire\n")
    assert _test_module_offenders(tests) == [
        "tests/a/test_bare.py imports test_x",
        "tests/a/test_plain.py imports test_x",
        "tests/b/test_inner.py imports test_x",
        "tests/b/test_package.py imports tests.a.test_x",
        "tests/b/test_qualified.py imports tests.a.test_x",
    ]


def _collected(*args: str) -> set[str]:
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly", *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return {line.split("::")[0] for line in out.stdout.splitlines() if "::" in line}


def test_not_slow_leaves_out_clusters_and_jvms_and_keeps_the_rest() -> None:
    assert _collected("-m", "not slow", "tests/unit/test_mypy.py", "tests/unit/test_config.py") == {
        "tests/unit/test_config.py"}
    assert _collected("-m", "slow", "tests/unit/test_mypy.py", "tests/unit/test_config.py") == {
        "tests/unit/test_mypy.py"}


def test_the_slow_lists_name_what_exists() -> None:
    from tests import conftest  # qualified: a bare ``conftest`` can be tests/cluster's, first on sys.path

    assert all((TESTS / d).is_dir() for d in conftest.SLOW_DIRS)
    assert all((TESTS / m).is_file() for m in conftest.SLOW_MODULES)
    assert conftest.is_slow(TESTS / "cluster" / "test_quorum_processes.py")
    assert not conftest.is_slow(TESTS / "unit" / "test_config.py")
