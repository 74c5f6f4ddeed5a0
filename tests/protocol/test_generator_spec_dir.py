"""``scripts/generate_protocol.py`` refuses a missing or incomplete spec directory with a message
and a non-zero exit, and then writes and deletes nothing; only ``--prune`` deletes the modules of
APIs whose specs are gone."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "scripts" / "generate_protocol.py"
MESSAGES = REPO / "protocol" / "messages"
SPECS = REPO.parent / "shared" / "kafka-spec"


def generate(out: Path, spec_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(GENERATOR), str(out), "--spec-dir", str(spec_dir), *extra],
                          capture_output=True, text=True, cwd=REPO)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def generated_copy(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    out = tmp_path / "messages"
    shutil.copytree(MESSAGES, out, ignore=shutil.ignore_patterns("__pycache__"))
    return out, tree(out)


def spec_copy(tmp_path: Path, *drop: str) -> Path:
    specs = tmp_path / "specs"
    shutil.copytree(SPECS, specs)
    for name in drop:
        (specs / name).unlink()
    return specs


def refused(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, result
    assert "nothing written" in result.stderr
    assert "wrote" not in result.stdout
    for word in words:
        assert word in result.stderr, result.stderr


def test_a_missing_spec_directory_is_refused_and_nothing_is_touched(tmp_path):
    out, before = generated_copy(tmp_path)
    refused(generate(out, tmp_path / "no-such-dir"), "does not exist", "no-such-dir")
    assert tree(out) == before


def test_an_empty_spec_directory_is_refused_and_nothing_is_touched(tmp_path):
    out, before = generated_copy(tmp_path)
    (tmp_path / "empty").mkdir()
    refused(generate(out, tmp_path / "empty"), "incomplete", "message/", "raft/")
    assert tree(out) == before


def test_a_request_without_its_response_is_refused(tmp_path):
    out, before = generated_copy(tmp_path)
    specs = spec_copy(tmp_path, "message/FetchResponse.json")
    refused(generate(out, specs), "incomplete", "FetchResponse.json")
    assert tree(out) == before
    # Into an empty output directory too: half a codec is not written.
    refused(generate(tmp_path / "fresh", specs), "FetchResponse.json")
    assert not (tmp_path / "fresh").exists()


def test_a_missing_header_is_refused(tmp_path):
    out, before = generated_copy(tmp_path)
    refused(generate(out, spec_copy(tmp_path, "message/RequestHeader.json")), "incomplete",
            "message/ lacks RequestHeader.json")
    assert tree(out) == before


def test_one_sub_directory_without_specs_is_refused_and_named(tmp_path):
    out, before = generated_copy(tmp_path)
    specs = spec_copy(tmp_path)
    for path in (specs / "raft").glob("*.json"):
        path.unlink()
    result = generate(out, specs)
    refused(result, "incomplete: no *.json in raft/")
    assert "message/" not in result.stderr
    assert tree(out) == before


def test_a_malformed_spec_is_refused_and_nothing_is_touched(tmp_path):
    out, before = generated_copy(tmp_path)
    specs = spec_copy(tmp_path)
    (specs / "message" / "FetchRequest.json").write_text('{"name": "FetchRequest", "type": ', encoding="utf-8")
    refused(generate(out, specs), "cannot read the specs under", str(specs))
    assert tree(out) == before
    # A spec that parses but lacks a required key is refused the same way.
    (specs / "message" / "FetchRequest.json").write_text('{"name": "FetchRequest"}', encoding="utf-8")
    refused(generate(out, specs), "cannot read the specs under", "validVersions")
    assert tree(out) == before


def test_a_spec_set_lacking_generated_modules_is_refused_unless_pruning(tmp_path):
    out, before = generated_copy(tmp_path)
    specs = spec_copy(tmp_path, "message/FetchRequest.json", "message/FetchResponse.json")
    refused(generate(out, specs), "lack 1 of the modules", "fetch.py", "--prune")
    assert tree(out) == before
    # --prune deletes exactly the module whose API is gone (the package __init__ no longer
    # imports it); every other module is rewritten identically.
    pruned = generate(out, specs, "--prune")
    assert pruned.returncode == 0, pruned.stderr
    assert "removed 1 stale" in pruned.stdout
    after = tree(out)
    assert set(before) - set(after) == {"fetch.py"}
    assert [name for name in after if after[name] != before[name]] == ["__init__.py"]


def test_the_real_spec_directory_regenerates_in_place_without_changes(tmp_path):
    out, before = generated_copy(tmp_path)
    result = generate(out, SPECS)
    assert result.returncode == 0, result.stderr
    assert tree(out) == before
