"""The test suite's own layout rules (issue 14): helpers live in helper modules, never in a test
module another one imports; the ``slow`` marker leaves a quick loop of the rest."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent


def _imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def test_no_test_module_imports_another_test_module() -> None:
    offenders = []
    for path in sorted(p for d in TESTS.iterdir() if d.is_dir() for p in d.glob("*.py")):
        for module in _imported_modules(path):
            if module.startswith("tests.") and module.rsplit(".", 1)[-1].startswith("test_"):
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == [], "move shared helpers into a helper module:\n" + "\n".join(offenders)


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
    spec = importlib.util.spec_from_file_location("tests_root_conftest", TESTS / "conftest.py")
    assert spec is not None and spec.loader is not None
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)

    assert all((TESTS / d).is_dir() for d in conftest.SLOW_DIRS)
    assert all((TESTS / m).is_file() for m in conftest.SLOW_MODULES)
    assert conftest.is_slow(TESTS / "cluster" / "test_quorum_processes.py")
    assert not conftest.is_slow(TESTS / "unit" / "test_config.py")
