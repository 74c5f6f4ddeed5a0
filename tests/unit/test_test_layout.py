"""The test suite's own layout rules (issue 14): helpers live in helper modules, never in a test
module another one imports; helpers are found one way, pyproject.toml's pytest ``pythonpath``, and
no module under tests/ edits ``sys.path``; the ``slow`` marker leaves a quick loop of the rest."""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
import tomllib
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent


@functools.cache
def _tree(path: Path) -> ast.Module:
    """A module's syntax tree, parsed once for the checks below (the tree has ~600 modules)."""
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imported_modules(path: Path) -> list[str]:
    """Every module ``path`` imports, at any depth; ``from tests.x import y`` also names ``tests.x.y``."""
    tree = _tree(path)
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


def _sys_path_offenders(tests: Path) -> list[str]:
    """Every use of ``sys.path`` (or ``from sys import path``) in a module under ``tests``, by line."""
    root = tests.parent
    offenders = []
    for path in sorted(tests.rglob("*.py")):
        for node in ast.walk(_tree(path)):
            attribute = (isinstance(node, ast.Attribute) and node.attr == "path"
                         and isinstance(node.value, ast.Name) and node.value.id == "sys")
            imported = (isinstance(node, ast.ImportFrom) and node.module == "sys"
                        and any(alias.name == "path" for alias in node.names))
            if attribute or imported:
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    return offenders


def test_no_module_under_tests_edits_sys_path() -> None:
    offenders = _sys_path_offenders(TESTS)
    assert offenders == [], (
        "helpers are found through pyproject.toml's [tool.pytest.ini_options] pythonpath (a child "
        "process gets PYTHONPATH); scripts/tests_syspath_codemod.py removes the usual patterns:\n"
        + "\n".join(offenders))


def test_the_sys_path_check_catches_edits_in_any_form(tmp_path) -> None:
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_insert.py").write_text("import sys\nsys.path.insert(0, 'x')\nimport wire\n")
    (tests / "helper_loop.py").write_text("import sys\nfor p in ('a',):\n    if p not in sys.path:\n"
                                          "        sys.path.append(p)\n")
    (tests / "conftest.py").write_text("def f() -> None:\n    import sys\n    sys.path[:0] = ['x']\n")
    (tests / "test_from.py").write_text("from sys import path\npath.insert(0, 'x')\n")
    (tests / "test_fine.py").write_text("import sys\nWRITER = 'sys.path.insert(0, x)'\nprint(sys.argv)\n")
    assert _sys_path_offenders(tests) == [
        "tests/conftest.py:3", "tests/helper_loop.py:3", "tests/helper_loop.py:4",
        "tests/test_from.py:1", "tests/test_insert.py:2"]


def test_pythonpath_folders_exist_and_their_helper_names_are_unique() -> None:
    """A module name found in two of the folders would be whichever comes first: ambiguous."""
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    folders = [ROOT / p for p in ini["pythonpath"]]
    assert all(f.is_dir() for f in folders), [str(f) for f in folders if not f.is_dir()]
    seen: dict[str, Path] = {}
    clashes = []
    for folder in folders[1:]:  # "." first: the repository root, for ``tests.x.y`` and ``kbroker``
        for module in sorted(folder.glob("*.py")):
            if module.stem in {"conftest", "__init__"} or module.stem.startswith("test_"):
                continue
            if module.stem in seen:
                clashes.append(f"{module.relative_to(ROOT)} and {seen[module.stem].relative_to(ROOT)}")
            seen[module.stem] = module
            assert module.stem not in sys.stdlib_module_names, module
    assert clashes == []


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
