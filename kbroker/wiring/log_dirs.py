"""The broker's log directories at start-up: created, locked, identified (``meta.properties``),
and the open-file budget of their segment files."""

from __future__ import annotations

import base64
import fcntl
import logging
import os
import uuid
from pathlib import Path
from typing import IO

from kbroker.config import BrokerConfig, parse_properties
from kbroker.errors import StartupError
from kbroker.log import fd_budget
from kbroker.storage import StorageError, check_formatted

log = logging.getLogger(__name__)


def prepare_log_dirs(config: BrokerConfig, node_id: int, lock_files: list[IO[str]]) -> str:
    """Create and lock the log dirs (and metadata.log.dir), check their meta.properties against
    this node and each other, write the missing ones; returns the cluster id. A lock taken is added
    to ``lock_files`` at once (the broker closes them when it stops, started or not)."""
    cluster_ids: set[str] = set()
    dirs = list(config.log_dirs)
    meta_dir = config["metadata.log.dir"]
    if meta_dir and Path(meta_dir) not in dirs:
        dirs.append(Path(meta_dir))
    if config.kraft_mode:
        # Kafka 4: a node's directories are formatted beforehand (kbroker format)
        try:
            check_formatted(config)
        except StorageError as exc:
            raise StartupError(str(exc)) from None
    failed: set[Path] = set()
    for d in dirs:
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if d == dirs[0] or d == (Path(meta_dir) if meta_dir else None):
                raise StartupError(f"cannot create log directory {d}: {exc.strerror}") from None
            # Another log dir failing only takes its partitions offline (see LogManager).
            log.error("log directory %s is offline: %s", d, exc.strerror)
            failed.add(d)
            continue
        lock = open(d / ".lock", "a+")  # noqa: SIM115 - held for the broker's lifetime
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise StartupError(
                f"Failed to acquire lock on file .lock in {d}. A Kafka instance in another process "
                "or thread is using this directory."
            ) from None
        lock_files.append(lock)
        meta = d / "meta.properties"
        if meta.exists():
            props = read_simple_properties(meta)
            node = props.get("node.id")
            if node is not None and node != str(node_id):
                raise StartupError(
                    f"Stored node id {node} doesn't match previous node id {node_id} in {meta}. "
                    "If you moved your data, make sure your configured node id matches."
                )
            if props.get("cluster.id"):
                cluster_ids.add(props["cluster.id"])
    if len(cluster_ids) > 1:
        raise StartupError(f"log directories belong to different clusters: {sorted(cluster_ids)}")
    configured = config["cluster.id"]
    if configured and cluster_ids and configured not in cluster_ids:
        raise StartupError(f"cluster.id {configured} does not match the stored cluster id {cluster_ids.pop()}")
    cluster_id = configured or (cluster_ids.pop() if cluster_ids else new_cluster_id())
    for d in dirs:
        if d in failed:
            continue
        meta = d / "meta.properties"
        if not meta.exists():
            tmp = d / "meta.properties.tmp"
            tmp.write_text(
                "#\n#Written by kbroker\n"
                f"cluster.id={cluster_id}\nnode.id={node_id}\n"
                f"directory.id={new_cluster_id()}\nversion=1\n"
            )
            os.replace(tmp, meta)
    return cluster_id


def set_fd_budget(config: BrokerConfig) -> None:
    """Raise the soft open file limit to the hard one (as the JVM does for Kafka), then size
    the log's segment file budget: kbroker.log.max.open.files, or half the limit."""
    soft = fd_budget.raise_nofile_limit()
    configured = config["kbroker.log.max.open.files"]
    if configured == 0:
        raise StartupError("kbroker.log.max.open.files must be -1 (half the open file limit) or at least 1")
    capacity = fd_budget.configure(None if configured < 0 else configured)
    log.info("open file limit %d; up to %d segment files open at once", soft, capacity)


def new_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def read_simple_properties(path: Path) -> dict[str, str]:
    try:
        return parse_properties(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise StartupError(f"cannot read {path}: {exc}") from None
