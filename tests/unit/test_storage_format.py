"""``kbroker format`` / ``kbroker random-uuid`` (Kafka's kafka-storage.sh) and the start-up check of
formatted directories."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kbroker.__main__ import main
from kbroker.broker import Broker
from kbroker.config import BrokerConfig
from kbroker.errors import StartupError
from kbroker.storage import (
    BOOTSTRAP_SNAPSHOT,
    METADATA_PARTITION_DIR,
    read_bootstrap_records,
    read_initial_voters,
    read_meta_properties,
    read_snapshot_file,
    uuid_from_str,
)


def _props(tmp_path: Path, **extra: str) -> Path:
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": "1@127.0.0.1:19093",
        "listeners": "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093",
        "controller.listener.names": "CONTROLLER",
        "log.dirs": f"{tmp_path}/a,{tmp_path}/b",
        "metadata.log.dir": f"{tmp_path}/a",
    }
    props.update({k.replace("_", "."): v for k, v in extra.items()})
    path = tmp_path / "server.properties"
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items() if v is not None))
    return path


def test_random_uuid(capsys):
    assert main(["random-uuid"]) == 0
    text = capsys.readouterr().out.strip()
    assert len(text) == 22 and not text.startswith("-")
    assert uuid_from_str(text).int > 100


def test_format_static_quorum(tmp_path, capsys):
    config = _props(tmp_path)
    assert main(["format", "--cluster-id", "MkU3OEVBNTcwNTJENDM2Qk", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"Formatting metadata directory {tmp_path}/a with metadata.version 4.4-IV2." in out
    assert f"Formatting data directory {tmp_path}/b with metadata.version 4.4-IV2." in out
    for d in ("a", "b"):
        props = read_meta_properties(tmp_path / d)
        assert props is not None
        assert (props["version"], props["node.id"], props["cluster.id"]) == ("1", "1", "MkU3OEVBNTcwNTJENDM2Qk")
        assert len(props["directory.id"]) == 22
    features = {r.name: r.feature_level for r in read_bootstrap_records(tmp_path / "a")}
    assert features["metadata.version"] == 33
    assert not (tmp_path / "a" / METADATA_PARTITION_DIR).exists()  # a static quorum has no bootstrap snapshot
    # formatting again is refused, and --ignore-formatted leaves the directories as they are
    assert main(["format", "-t", "MkU3OEVBNTcwNTJENDM2Qk", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"Log directory {tmp_path}/a is already formatted. Use --ignore-formatted to ignore this directory and " \
           "format the others." in err
    assert main(["format", "-t", "MkU3OEVBNTcwNTJENDM2Qk", "-c", str(config), "--ignore-formatted"]) == 0
    assert "All of the log directories are already formatted." in capsys.readouterr().out


def test_format_standalone_writes_the_voters(tmp_path, capsys):
    config = _props(tmp_path, **{"controller.quorum.voters": None,
                                 "controller.quorum.bootstrap.servers": "127.0.0.1:19093"})
    assert main(["format", "-t", "abcdefghijklmnopqrstuv", "-c", str(config)]) == 1
    assert "Because controller.quorum.voters is not set on this controller, you must specify one of the following: " \
           "--standalone, --initial-controllers, or --no-initial-controllers." in capsys.readouterr().err
    assert main(["format", "-t", "abcdefghijklmnopqrstuv", "-c", str(config), "--standalone"]) == 0
    assert f"Formatting dynamic metadata voter directory {tmp_path}/a" in capsys.readouterr().out
    assert read_initial_voters(tmp_path / "a") == {1: ("127.0.0.1", 19093)}
    content = read_snapshot_file(tmp_path / "a" / METADATA_PARTITION_DIR / BOOTSTRAP_SNAPSHOT)
    [voter] = content.voters.voters
    assert content.kraft_version == 1 and voter.endpoints[0].name == "CONTROLLER"
    meta = read_meta_properties(tmp_path / "a")
    assert uuid_from_str(meta["directory.id"]) == voter.voter_directory_id


def test_format_initial_controllers(tmp_path, capsys):
    config = _props(tmp_path, **{"controller.quorum.voters": None, "node.id": "2",
                                 "controller.quorum.bootstrap.servers": "127.0.0.1:19093"})
    voters = "1@127.0.0.1:19093:MvDxzVmcRsaTz33bUuRU6A,2@127.0.0.1:19095:07R5amHmR32VDA6jHkGbTA"
    assert main(["format", "-t", "abcdefghijklmnopqrstuv", "-c", str(config), "--initial-controllers", voters]) == 0
    assert read_initial_voters(tmp_path / "a") == {1: ("127.0.0.1", 19093), 2: ("127.0.0.1", 19095)}
    assert read_meta_properties(tmp_path / "a")["directory.id"] == "07R5amHmR32VDA6jHkGbTA"


@pytest.mark.parametrize("args, message", [
    (["--standalone"], "You cannot specify controller.quorum.voters and format the node with --initial-controllers "
     "or --standalone. If you want to use dynamic quorum, please remove controller.quorum.voters and specify "
     "controller.quorum.bootstrap.servers instead."),
])
def test_format_refusals(tmp_path, capsys, args, message):
    config = _props(tmp_path)
    assert main(["format", "-t", "abcdefghijklmnopqrstuv", "-c", str(config), *args]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "a" / "meta.properties").exists()  # nothing written


def test_format_accepts_a_controller_listener_in_advertised_listeners(tmp_path, capsys):
    """Kafka 4.4's ``kafka-storage.sh format`` formats such a combined node (exit 0): the controller entry
    is the endpoint advertised to the quorum (KIP-853), the broker advertises the others. Its
    ``--standalone`` voter is that advertised endpoint."""
    config = _props(tmp_path, **{"advertised.listeners": "PLAINTEXT://127.0.0.1:19092,CONTROLLER://ctl.example:29093"})
    assert main(["format", "-t", "abcdefghijklmnopqrstuv", "-c", str(config)]) == 0
    assert read_meta_properties(tmp_path / "a") is not None
    (tmp_path / "dyn").mkdir()
    config = _props(tmp_path / "dyn", **{"controller.quorum.voters": None, "log.dirs": f"{tmp_path}/dyn/a",
                                         "metadata.log.dir": f"{tmp_path}/dyn/a",
                                         "controller.quorum.bootstrap.servers": "127.0.0.1:19093",
                                         "advertised.listeners": "PLAINTEXT://127.0.0.1:19092,"
                                                                 "CONTROLLER://ctl.example:29093"})
    assert main(["format", "-t", "abcdefghijklmnopqrstuv", "-c", str(config), "--standalone"]) == 0
    assert read_initial_voters(tmp_path / "dyn" / "a") == {1: ("ctl.example", 29093)}


def test_format_refuses_advertised_listeners_naming_only_controller_listeners(tmp_path, capsys):
    """Kafka 4.4's storage tool exits 1 with "There must be at least one broker advertised listener.
    Perhaps all listeners appear in controller.listener.names?" (KafkaConfig.validateValues)."""
    config = _props(tmp_path, **{"advertised.listeners": "CONTROLLER://127.0.0.1:19093"})
    assert main(["format", "-t", "abcdefghijklmnopqrstuv", "-c", str(config)]) == 1
    assert "There must be at least one broker advertised listener. Perhaps all listeners appear in " \
           "controller.listener.names?" in capsys.readouterr().err
    assert not (tmp_path / "a" / "meta.properties").exists()


@pytest.mark.parametrize("voters, message", [
    ("1@host:9093", "No colon following port could be found."),
    ("x@host:9093:abc", "Failed to parse node id in dynamic voter string."),
    ("1@host:9093:notauuid!", "Failed to parse directory ID in dynamic voter string."),
    ("1@h:1:MvDxzVmcRsaTz33bUuRU6A,1@h:2:07R5amHmR32VDA6jHkGbTA", "Node id 1 was specified more than once."),
])
def test_initial_controllers_refused(tmp_path, capsys, voters, message):
    config = _props(tmp_path, **{"controller.quorum.voters": None,
                                 "controller.quorum.bootstrap.servers": "127.0.0.1:19093"})
    assert main(["format", "-t", "abcdefghijklmnopqrstuv", "-c", str(config), "--initial-controllers", voters]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "a" / "meta.properties").exists()


def test_unformatted_kraft_node_refuses_to_start(tmp_path):
    config = BrokerConfig({
        "process.roles": "broker,controller", "node.id": "1", "controller.quorum.voters": "1@127.0.0.1:0",
        "listeners": "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0", "controller.listener.names": "CONTROLLER",
        "log.dirs": str(tmp_path / "data"),
    })
    broker = Broker(config)

    async def run() -> None:
        try:
            await broker.start()
        finally:
            await broker.stop()

    with pytest.raises(StartupError, match=r"^No readable meta.properties files found.$"):
        asyncio.run(run())
    assert not (tmp_path / "data" / "meta.properties").exists()
