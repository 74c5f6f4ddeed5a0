"""The set-up scripts a fresh clone runs (issue 22, 'the first ten minutes').

Both run in a copy of the script inside a temporary tree with a stub `.venv/bin/python` that
records its arguments, so nothing is installed, no network is used and each test takes a second:

- `scripts/install-compat-deps` names a missing toolchain and stops with a non-zero exit, before
  it tries to build anything with it (no traceback further on);
- `scripts/install-test-tools` asks apt-get for the package of each tool the tests drive that is
  missing (gcc among them, for the null broker's tests);
- `scripts/bootstrap` (called plainly by `scripts/kbroker` and with `--test` by `scripts/test`)
  marks the venv so that switching between the two README commands does not reinstall.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A stub interpreter: appends its arguments (one invocation per line) to calls.log beside it.
STUB_PYTHON = """#!/bin/sh
echo "$*" >> "$(dirname "$0")/calls.log"
exit 0
"""


def _tree(tmp_path: Path, script: str) -> Path:
    """A copy of the repository's shape holding one script, pyproject.toml and a stub venv."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / script, repo / "scripts" / script)
    shutil.copy2(ROOT / "pyproject.toml", repo / "pyproject.toml")
    venv_bin = repo / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    stub = venv_bin / "python"
    stub.write_text(STUB_PYTHON)
    stub.chmod(0o755)
    return repo


def _calls(repo: Path) -> list[str]:
    log = repo / ".venv" / "bin" / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def _installs(repo: Path) -> list[str]:
    return [c for c in _calls(repo) if c.startswith("-m pip install") and "-e" in c.split()]


# ---------------------------------------------------------------------------------------------
# install-compat-deps: a missing toolchain is named


def _path_without(tmp_path: Path, missing: str) -> str:
    """A PATH of one directory: symlinks to the commands the script's start needs, plus stubs of
    the toolchains it checks for, leaving out `missing`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "sh", "dirname", "mkdir", "cat", "env"):
        found = shutil.which(tool)
        assert found is not None, tool
        (bin_dir / tool).symlink_to(found)
    for tool in ("java", "mvn", "go", "node", "npm"):
        if tool == missing:
            continue
        fake = bin_dir / tool
        fake.write_text("#!/bin/sh\nexit 0\n")
        fake.chmod(0o755)
    return str(bin_dir)


@pytest.mark.parametrize("missing", ["go", "java", "mvn", "node", "npm"])
def test_install_compat_deps_names_a_missing_toolchain(tmp_path: Path, missing: str) -> None:
    repo = _tree(tmp_path, "install-compat-deps")
    env = {"PATH": _path_without(tmp_path, missing), "HOME": str(tmp_path)}
    result = subprocess.run(
        [str(repo / "scripts" / "install-compat-deps"), "--no-reference-kafka"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    # One message and nothing after it: the script stopped at the check.
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("install-compat-deps: missing on PATH: ")
    named = result.stderr.split("missing on PATH:", 1)[1].split("(", 1)[0].split()
    assert named == [missing]
    # It stopped at the check: nothing was built or installed with the other toolchains.
    assert _calls(repo) == []
    assert not (repo / ".cache" / "go-bin").exists()
    assert not (repo / ".cache" / "java-clients").exists()


# ---------------------------------------------------------------------------------------------
# install-test-tools: installs what the tests drive (gcc for tests/integration/test_null_broker.py)


APT_PACKAGES = ["kcat", "chromium", "iptables", "iproute2", "dpkg-dev", "make", "gcc", "g++"]
COMMANDS_OF = {"kcat": "kcat", "chromium": "chromium", "iptables": "iptables", "iproute2": "ip",
               "dpkg-dev": "dpkg-source", "make": "make", "gcc": "gcc", "g++": "g++"}


@pytest.mark.parametrize("missing", APT_PACKAGES)
def test_install_test_tools_installs_a_missing_tool(tmp_path: Path, missing: str) -> None:
    """With every tool on PATH but one (as root, so no sudo), the script asks apt-get for that
    one's package (and libssl-dev, whose header is looked for outside PATH when absent here)."""
    repo = _tree(tmp_path, "install-test-tools")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "env"):
        found = shutil.which(tool)
        assert found is not None, tool
        (bin_dir / tool).symlink_to(found)
    stubs = {COMMANDS_OF[p]: "#!/bin/sh\nexit 0\n" for p in APT_PACKAGES if p != missing}
    stubs["id"] = "#!/bin/sh\necho 0\n"
    stubs["apt-get"] = f'#!/bin/sh\necho "$*" >> {tmp_path / "apt.log"}\n'
    for name, text in stubs.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    result = subprocess.run([str(repo / "scripts" / "install-test-tools")],
                            env={"PATH": str(bin_dir)}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    installs = [line.split() for line in (tmp_path / "apt.log").read_text().splitlines()
                if line.startswith("install")]
    assert len(installs) == 1, installs
    asked = [word for word in installs[0][1:] if not word.startswith("-")]
    expected = {missing} | ({"libssl-dev"} if not Path("/usr/include/openssl/ssl.h").exists() else set())
    assert set(asked) == expected


# ---------------------------------------------------------------------------------------------
# bootstrap: the venv marker


def _bootstrap(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(repo.parent)}
    result = subprocess.run(
        [str(repo / "scripts" / "bootstrap"), *args],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_bootstrap_test_install_serves_both_readme_commands(tmp_path: Path) -> None:
    """`scripts/test` then `scripts/kbroker` and back, twice: one install only."""
    repo = _tree(tmp_path, "bootstrap")
    _bootstrap(repo, "--test")
    assert _installs(repo) == ["-m pip install --quiet -e .[test]"]
    stamp = (repo / ".venv" / ".kbroker-installed").read_text().strip()
    assert stamp.endswith("[test]")
    for _ in range(2):
        _bootstrap(repo)
        _bootstrap(repo, "--test")
    assert len(_installs(repo)) == 1
    assert (repo / ".venv" / ".kbroker-installed").read_text().strip() == stamp
    # Every run still byte-compiles the package (cheap when up to date).
    assert sum(c.startswith("-m compileall") for c in _calls(repo)) == 5


def test_bootstrap_plain_then_test_installs_the_extras_once(tmp_path: Path) -> None:
    """`scripts/kbroker` first: the later `--test` adds the extras once, then neither reinstalls."""
    repo = _tree(tmp_path, "bootstrap")
    _bootstrap(repo)
    _bootstrap(repo)
    assert _installs(repo) == ["-m pip install --quiet -e ."]
    _bootstrap(repo, "--test")
    assert _installs(repo) == ["-m pip install --quiet -e .", "-m pip install --quiet -e .[test]"]
    for _ in range(2):
        _bootstrap(repo)
        _bootstrap(repo, "--test")
    assert len(_installs(repo)) == 2


def test_bootstrap_reinstalls_when_pyproject_changes(tmp_path: Path) -> None:
    repo = _tree(tmp_path, "bootstrap")
    _bootstrap(repo, "--test")
    with (repo / "pyproject.toml").open("a") as f:
        f.write("\n# a dependency changed\n")
    _bootstrap(repo)
    # The plain command sees a stale stamp and reinstalls (without the extras) ...
    assert _installs(repo)[1:] == ["-m pip install --quiet -e ."]
    _bootstrap(repo, "--test")
    assert _installs(repo)[2:] == ["-m pip install --quiet -e .[test]"]
    _bootstrap(repo)
    _bootstrap(repo, "--test")
    assert len(_installs(repo)) == 3
