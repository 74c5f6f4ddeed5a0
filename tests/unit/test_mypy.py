"""The type gate (issue 14): ``kbroker/``, the wire codec and its generator (``scripts/protocol_codegen/``)
pass mypy.

The configuration is ``[tool.mypy]`` in ``pyproject.toml``. Modules that did not yet pass when the
gate landed are listed in one override block with ``ignore_errors = true``, the *baseline*. The
baseline may only shrink, which these tests hold:

- mypy with the project's configuration reports nothing;
- the baseline names modules that exist, and no more of them than ``BASELINE_CEILING``;
- the packages of ``STRICT_FLOOR`` keep every flag of the installed mypy's ``--strict`` (``STRICT_FLAGS``;
  the global-only ones, such as ``warn_redundant_casts``, in ``[tool.mypy]``);
- mypy run *without* the baseline reports errors in exactly the baseline's modules: an error in any
  other module fails, and so does a baseline module that has become clean (take it off the list);
- nothing else switches checking off: no other first-party ``ignore_errors``, no ``exclude``,
  ``follow_imports`` or ``disable_error_code``, and no ``# mypy:`` or file-wide ``# type: ignore``
  comment in the checked sources.

mypy keeps its cache in ``.cache/mypy`` (``cache_dir``), so a repeated run reads it and takes about a
second. The run without the baseline shares that cache: mypy keeps a module's cached result only
while the options that module is checked with are the same (its per-module options are part of the
cache's validity), so with an empty baseline the second run reads what the first one checked, and a
module whose options the baseline changes is checked again.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"
# Lower this when you shrink the baseline; never raise it.
BASELINE_CEILING = 0

# Packages checked with the strict flags; add to it, never take away.
STRICT_FLOOR = ("kbroker.log.*", "kbroker.security.*", "kbroker.metrics.*", "kbroker.control.*",
                "kbroker.controller.*", "kbroker.raft.*", "kbroker.server.*", "kbroker.wiring.*", "kbroker.config.*",
                "kbroker.broker", "kbroker.cluster", "kbroker.replication.*",
                "kbroker.coordinator.*", "kbroker.api.*", "kbroker.delayed", "kbroker.delayed_records",
                "kbroker.delayed_scheduler", "kbroker.errors", "kbroker.opcli", "kbroker.opcli_common",
                "kbroker.opcli_records", "kbroker.quorum_setup", "kbroker.storage", "kbroker.console.*",
                "kbroker.testing.*", "kbroker", "kbroker.*", "protocol_codegen", "protocol_codegen.*")
# The flags every package of STRICT_FLOOR keeps: all that the installed mypy's --strict enables and
# that mypy takes per module (strict_mode_flags() reads them from ``mypy --help``); the ones mypy
# takes only globally must be set in [tool.mypy]. These are the ones mypy 2.4's --strict enables:
# a flag a newer mypy adds to --strict is required too, and one it drops is no longer.
STRICT_FLAGS = ("check_untyped_defs", "disallow_untyped_defs", "disallow_incomplete_defs",
                "disallow_any_generics", "warn_return_any", "warn_unused_ignores", "disallow_untyped_calls",
                "disallow_subclassing_any", "disallow_untyped_decorators", "no_implicit_reexport",
                "strict_equality", "extra_checks", "warn_redundant_casts")
# Packages whose unannotated function bodies are checked (check_untyped_defs); add, never take away.
CHECKED_FLOOR = ("kbroker.api.*", "kbroker.replication.*", "kbroker.console.*", "kbroker.testing.*", "kbroker.*")
# Packages whose every function must be annotated (disallow_untyped_defs); add, never take away.
TYPED_FLOOR = ("kbroker.coordinator.*",)
FIRST_PARTY = ("kbroker", "kbroker_protocol", "protocol_codegen")
# The folder each first-party top-level package is read from.
PACKAGE_DIRS = {"kbroker": ROOT / "kbroker", "kbroker_protocol": ROOT / "protocol",
                "protocol_codegen": ROOT / "scripts" / "protocol_codegen"}
WIDENING_KEYS = ("exclude", "follow_imports", "disable_error_code", "ignore_errors")
ERROR_LINE = re.compile(r"^(?P<path>[^:\s]+\.py):\d+(?::\d+)?: error: ")


def mypy_config() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        config: dict[str, Any] = tomllib.load(f)["tool"]["mypy"]
    return config


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def baseline_blocks(config: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in config.get("overrides", []) if o.get("ignore_errors") is True]


def baseline(config: dict[str, Any]) -> list[str]:
    blocks = baseline_blocks(config)
    assert len(blocks) <= 1, "the baseline is one override block with ignore_errors = true"
    return _as_list(blocks[0]["module"]) if blocks else []


def module_file(module: str) -> Path | None:
    """The source file of a first-party module name, or None when there is none."""
    top, _, rest = module.partition(".")
    if top not in PACKAGE_DIRS:
        return None
    base = PACKAGE_DIRS[top].joinpath(*rest.split(".")) if rest else PACKAGE_DIRS[top]
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def path_module(path: str) -> str:
    """The module a path in mypy's output names (the codec is checked through mypy_path/)."""
    parts = list(Path(path).with_suffix("").parts)
    if parts[0] == "mypy_path":
        parts = parts[1:]
    elif parts[0] == "protocol":
        parts[0] = "kbroker_protocol"
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def run_mypy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(CACHE / "mypy"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=280)


def error_modules(output: str) -> set[str]:
    return {path_module(m["path"]) for m in map(ERROR_LINE.match, output.splitlines()) if m}


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string (the same escapes as JSON)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r} in [tool.mypy]")


def toml_without_baseline(config: dict[str, Any]) -> str:
    """The same configuration as a pyproject-style TOML file, with the baseline block left out.

    TOML, as pyproject.toml is, so that mypy reads it the same way: overrides naming the same module
    pattern add up (an INI file's sections for the same pattern would replace one another, and the
    strict flags of ``kbroker.api.*`` and the other patterns named twice would be lost)."""
    lines = ["[tool.mypy]"]
    lines += [f"{key} = {_toml_value(value)}" for key, value in config.items() if key != "overrides"]
    for override in config.get("overrides", []):
        if override.get("ignore_errors") is True:
            continue
        lines += ["", "[[tool.mypy.overrides]]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in override.items()]
    return "\n".join(lines) + "\n"


def _report(result: subprocess.CompletedProcess[str]) -> str:
    lines = (result.stdout + result.stderr).splitlines()
    return "\n".join(lines[:150] + ([f"... {len(lines) - 150} more lines"] if len(lines) > 150 else []))


def test_kbroker_and_the_codec_pass_mypy() -> None:
    result = run_mypy()
    assert result.returncode == 0, "mypy reports errors (pyproject.toml [tool.mypy]):\n" + _report(result)
    assert "Success: no issues found" in result.stdout


def test_the_baseline_names_existing_modules_and_does_not_grow() -> None:
    names = baseline(mypy_config())
    missing = [m for m in names if module_file(m) is None]
    assert not missing, f"baseline modules that no longer exist (remove them): {missing}"
    assert len(names) == len(set(names)), "a module is named twice in the baseline"
    assert len(names) <= BASELINE_CEILING, (
        f"the baseline grew to {len(names)} modules (ceiling {BASELINE_CEILING}): type the code instead")


def test_without_the_baseline_exactly_the_baseline_modules_fail(tmp_path: Path) -> None:
    config = mypy_config()
    names = set(baseline(config))
    toml = tmp_path / "pyproject.toml"
    toml.write_text(toml_without_baseline(config))
    result = run_mypy("--config-file", str(toml))
    assert "error:" in result.stdout or result.returncode == 0, _report(result)
    failing = error_modules(result.stdout)
    outside = sorted(failing - names)
    assert not outside, (f"mypy errors in modules outside the baseline: {outside}\n" + _report(result))
    now_clean = sorted(names - failing)
    assert not now_clean, (f"baseline modules that now pass mypy: {now_clean}; remove them from the "
                           "baseline in pyproject.toml and lower BASELINE_CEILING")


def _module_options(config_file: Path | None, modules: list[str]) -> dict[str, object]:
    """What mypy's cache keeps of each module's options under ``config_file`` (pyproject.toml: None)."""
    from mypy.config_parser import parse_config_file
    from mypy.options import Options

    options = Options()
    parse_config_file(options, lambda: None, str(config_file) if config_file else None, sys.stdout, sys.stderr)
    return {m: options.clone_for_module(m).select_options_affecting_cache() for m in modules}


def test_without_the_baseline_the_other_modules_keep_their_options(tmp_path: Path) -> None:
    """The run without the baseline checks every other module as the project's configuration does
    (so that it shares mypy's cache with the first run, and checks as strictly)."""
    config = mypy_config()
    names = set(baseline(config))
    toml = tmp_path / "pyproject.toml"
    toml.write_text(toml_without_baseline(config))
    modules = sorted({path_module(str(p.relative_to(ROOT))) for top in PACKAGE_DIRS.values()
                      for p in top.rglob("*.py")} - names)
    assert len(modules) > 100
    assert _module_options(toml, modules) == _module_options(None, modules)


def test_nothing_else_switches_checking_off() -> None:
    config = mypy_config()
    assert set(config["packages"]) == set(FIRST_PARTY)
    for key in WIDENING_KEYS:
        assert key not in config, f"[tool.mypy] must not set {key}"
    blocks = baseline_blocks(config)
    for override in config.get("overrides", []):
        if any(override is b for b in blocks):
            assert set(override) == {"module", "ignore_errors"}, override
            continue
        modules = _as_list(override["module"])
        first_party = [m for m in modules if m.split(".")[0] in FIRST_PARTY]
        for key in WIDENING_KEYS + ("ignore_missing_imports",):
            assert not (first_party and key in override), (
                f"override for {first_party} sets {key}: only the baseline may exempt a module")
    for package in ("kbroker_protocol", "protocol_codegen"):
        link = ROOT / "mypy_path" / package
        assert link.is_symlink() and link.resolve() == PACKAGE_DIRS[package].resolve(), link


def strict_mode_flags() -> list[str]:
    """The config keys of the flags the installed mypy's ``--strict`` enables, from ``mypy --help``."""
    # A wide terminal keeps argparse from wrapping the description (COLUMNS sets its width).
    result = subprocess.run([sys.executable, "-m", "mypy", "--help"], capture_output=True, text=True,
                            timeout=60, check=True, env={**os.environ, "COLUMNS": "1000"})
    # The entry runs up to the next option (indented as little as --strict) or section title.
    entry = re.search(r"^(?P<indent> *)--strict\s+Strict mode; enables the following flags:(?P<flags>.*?)"
                      r"^(?:(?P=indent)-|\S)", result.stdout, re.MULTILINE | re.DOTALL)
    assert entry, "mypy --help no longer describes --strict:\n" + result.stdout
    # Should the help still wrap, it does so after a hyphen or a comma: join the lines without spaces.
    text = "".join(line.strip() for line in entry["flags"].splitlines())
    flags = [flag.replace("-", "_") for flag in re.findall(r"--([a-z][a-z-]*[a-z])", text)]
    assert len(flags) >= 10, f"cannot read the --strict flags from mypy --help: {text!r}"
    return flags


def _per_module(flag: str) -> bool:
    from mypy.options import PER_MODULE_OPTIONS
    return flag.removeprefix("no_") in PER_MODULE_OPTIONS


def _sets(section: dict[str, Any], flag: str) -> bool:
    """Whether a configuration section switches a --strict flag on (``no_x = true`` or ``x = false``)."""
    if section.get(flag) is True:
        return True
    return flag.startswith("no_") and section.get(flag.removeprefix("no_")) is False


def strict_violations(config: dict[str, Any], flags: list[str]) -> list[str]:
    """What the configuration lacks of --strict: per-module flags for the STRICT_FLOOR packages,
    global-only flags in [tool.mypy]."""
    problems = [f"[tool.mypy] lacks {flag} = true" for flag in flags
                if not _per_module(flag) and not _sets(config, flag)]
    for flag in filter(_per_module, flags):
        named = {m for o in config.get("overrides", []) if _sets(o, flag) for m in _as_list(o["module"])}
        missing = [p for p in STRICT_FLOOR if p not in named]
        if missing:
            problems.append(f"packages no longer checked with {flag}: {missing}")
    return problems


def test_strict_flags_are_what_mypy_strict_enables() -> None:
    assert sorted(strict_mode_flags()) == sorted(STRICT_FLAGS), (
        "the installed mypy's --strict enables other flags than STRICT_FLAGS: update STRICT_FLAGS and "
        "pyproject.toml")


def test_strict_violations_notices_a_missing_flag() -> None:
    config = mypy_config()
    assert strict_violations(config, list(STRICT_FLAGS)) == []
    for flag in STRICT_FLAGS:
        weakened = dict(config, overrides=[{k: v for k, v in o.items() if k != flag}
                                           for o in config.get("overrides", [])])
        weakened.pop(flag, None)
        assert strict_violations(weakened, list(STRICT_FLAGS)), f"removing {flag} went unnoticed"


def test_the_strict_packages_stay_strict() -> None:
    problems = strict_violations(mypy_config(), strict_mode_flags())
    assert not problems, "\n".join(problems)
    checked = {m for o in mypy_config().get("overrides", []) if o.get("check_untyped_defs") is True
               for m in _as_list(o["module"])}
    missing = [p for p in CHECKED_FLOOR if p not in checked]
    assert not missing, f"packages whose untyped functions are no longer checked: {missing}"
    typed = {m for o in mypy_config().get("overrides", []) if o.get("disallow_untyped_defs") is True
             for m in _as_list(o["module"])}
    missing = [p for p in TYPED_FLOOR if p not in typed]
    assert not missing, f"packages whose functions need no longer be annotated: {missing}"


def test_no_source_file_opts_out_inline() -> None:
    inline = re.compile(r"^\s*#\s*mypy:|^#\s*type:\s*ignore\b")
    offenders = []
    for top in PACKAGE_DIRS.values():
        for path in sorted(top.rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if inline.match(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "inline mypy opt-outs:\n" + "\n".join(offenders)


def test_path_module_maps_mypy_output_to_module_names() -> None:
    assert path_module("mypy_path/kbroker_protocol/api.py") == "kbroker_protocol.api"
    assert path_module("protocol/messages/__init__.py") == "kbroker_protocol.messages"
    assert path_module("kbroker/api/fetch.py") == "kbroker.api.fetch"
    assert path_module("mypy_path/protocol_codegen/model.py") == "protocol_codegen.model"
    assert module_file("protocol_codegen.emit_read") == ROOT / "scripts/protocol_codegen/emit_read.py"
    assert error_modules("kbroker/a.py:3: error: x  [misc]\nkbroker/b.py:4: note: y\n") == {"kbroker.a"}
    assert module_file("kbroker_protocol.messages.fetch") == ROOT / "protocol/messages/fetch.py"
    assert module_file("kbroker.api") == ROOT / "kbroker/api/__init__.py"
    assert module_file("kbroker.no_such_module") is None
