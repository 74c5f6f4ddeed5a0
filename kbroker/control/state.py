"""Reset a running broker to a fresh one, and snapshot its state to start others from.

Reset (:func:`reset`), without a restart: every topic goes (user topics and the internal
``__consumer_offsets`` and ``__transaction_state``, so every group, committed offset and
transaction goes with them) in one metadata commit, dynamic broker configs are removed, the
group and transaction coordinators are replaced by new ones, producer state and fetch sessions
start empty, fault rules are removed and a pause ends. The listeners stay bound; connections
are kept (clients see their topics gone, as after a deletion) or dropped, as the caller asks.
JoinGroup/SyncGroup requests parked in a rebalance are answered NOT_COORDINATOR first, as when
Kafka's coordinator unloads. Producer ids keep increasing (a fresh Kafka cluster would restart
them; no client can tell).

Snapshot (:func:`snapshot`): with log maintenance stopped and every log flushed (producer state
snapshots written), the log directories are copied to ``DIR/log-dir-N`` with a
``kbroker-snapshot.json`` manifest. :func:`restore` copies a snapshot into empty log directories
before a broker starts there (``kbroker --from-snapshot DIR``, ``EmbeddedBroker(snapshot=DIR)``).
The broker recovers the copied logs as after a crash, so a snapshot taken under load is valid.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kbroker.controller.node_writes import require_active, reset_metadata
from kbroker.raft.files import fsync_dir
from kbroker_protocol.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.config.broker_config import BrokerConfig
    from kbroker.control.host import ControlledBroker

log = logging.getLogger("kbroker.control")

MANIFEST = "kbroker-snapshot.json"
_IGNORED = {".lock"}


async def reset(broker: ControlledBroker, *, drop_connections: bool = False) -> dict[str, object]:
    from kbroker.replication.fetch_sessions import FetchSessionCache
    from kbroker.replication.producer_manager import ProducerStateManager

    controller = require_active(broker.controller)  # NOT_CONTROLLER before anything is touched
    started = time.perf_counter()
    control = broker.control
    control.clear_faults()
    control.resume()
    control.set_disk_full(False)
    # The coordinators are replaced by new ones (built when next needed). The other services stop
    # before the topics go and start again after the commit, as a fresh broker's: delegation token
    # expiry and delayed delivery (its schedulers follow __kbroker_delayed, which goes too). The
    # metrics service keeps running: its HTTP listener stays bound, as the Kafka listeners do, and
    # its counters count on (Prometheus counters only ever grow within a process).
    running = {id(control), id(broker.metrics)}
    old = [s for s in broker.services if id(s) not in running]
    group_coordinator = broker.coordinators.built_group()  # (none built: no groups)
    groups = 0 if group_coordinator is None else len(group_coordinator.groups)
    # The coordinators go first: parked rebalances are answered, timers stop, and deleting
    # __consumer_offsets writes no tombstones (a stopped coordinator ignores deletions).
    if group_coordinator is not None:
        group_coordinator.loaded = False
        group_coordinator.classic.fail_pending(ErrorCode.NOT_COORDINATOR)
    for service in reversed(old):
        result = service.stop()
        if hasattr(result, "__await__"):
            await result
    # The partitions go first, their directories renamed with one fsync per log dir (not one
    # per partition); the commit then finds nothing left to delete. A crash before the commit
    # leaves the renamed directories to be removed and the topics in the metadata without
    # logs: opened empty at the next start, as after a reset.
    manager = broker.log_manager
    assert manager is not None
    for key, partition in list(broker.partitions.items()):
        del broker.partitions[key]
        partition.notify()
        manager.delete(partition.topic, partition.index, sync=False)
    for d in {Path(d) for d in broker.config.log_dirs}:
        fsync_dir(d)
    # The metadata goes through the controller's own operation (the control plane drives the
    # single node's controller: there is no Kafka request for this): one batch, one fsync.
    topics = await reset_metadata(controller)
    broker.replica_manager.producer_state = ProducerStateManager()
    broker.fetch_sessions = FetchSessionCache(broker.config["max.incremental.fetch.session.cache.slots"])
    broker.coordinators.replace()  # forgets the stopped coordinators, hooks the new producer state
    for service in old:  # the order a broker starts them in
        result = service.start()
        if hasattr(result, "__await__"):
            await result
    dropped = 0
    if drop_connections:
        for conn in list(broker.connections):
            conn.abort()
            dropped += 1
    elapsed = (time.perf_counter() - started) * 1000
    user_topics = sum(1 for name in topics if not name.startswith("__"))
    log.info("reset in %.1f ms: %d topics (%d user), %d groups deleted; %d connections dropped",
             elapsed, len(topics), user_topics, groups, dropped)
    return {"topics_deleted": user_topics, "internal_topics_deleted": len(topics) - user_topics,
            "groups_deleted": groups, "connections_dropped": dropped, "elapsed_ms": round(elapsed, 3)}


def _dirs(broker_config: BrokerConfig) -> list[Path]:
    dirs = list(broker_config.log_dirs)
    meta_dir = broker_config["metadata.log.dir"]
    if meta_dir and Path(meta_dir) not in dirs:
        dirs.append(Path(meta_dir))
    return dirs


def _ignore(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n in _IGNORED or n.endswith("-delete") or ".tmp" in n}


async def snapshot(broker: ControlledBroker, path: str) -> dict[str, object]:
    target = Path(path)
    if target.exists() and any(target.iterdir()):
        raise ValueError(f"{path} exists and is not empty")
    started = time.perf_counter()
    manager = broker.log_manager
    assert manager is not None
    dirs = _dirs(broker.config)
    manager.stop()  # no flush, retention or compaction while the files are copied
    try:
        broker.replica_manager.producer_housekeeping.take_snapshots()
        manager.flush_all()
        target.mkdir(parents=True, exist_ok=True)
        for i, d in enumerate(dirs):
            shutil.copytree(d, target / f"log-dir-{i}", ignore=_ignore)
        topics = sorted(broker.image.topics)
        manifest = {"version": 1, "node_id": broker.node_id, "cluster_id": broker.cluster_id,
                    "log_dirs": len(dirs), "taken_ms": int(time.time() * 1000), "topics": topics}
        tmp = target / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2))
        os.replace(tmp, target / MANIFEST)
    finally:
        manager.start()
    elapsed = (time.perf_counter() - started) * 1000
    log.info("snapshot of %d topics written to %s in %.1f ms", len(topics), path, elapsed)
    return {"path": str(target), "topics": topics, "elapsed_ms": round(elapsed, 3)}


def read_manifest(path: str | Path) -> dict[str, Any]:
    source = Path(path)
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except FileNotFoundError:
        raise ValueError(f"{path} is not a kbroker snapshot (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the snapshot manifest in {path}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("version") != 1:
        raise ValueError(f"{path}: unsupported snapshot manifest")
    return manifest


def restore(path: str | Path, broker_config: BrokerConfig) -> dict[str, Any]:
    """Copy the snapshot at ``path`` into the configured (empty or absent) log directories."""
    manifest = read_manifest(path)
    dirs = _dirs(broker_config)
    if manifest["log_dirs"] != len(dirs):
        raise ValueError(f"the snapshot has {manifest['log_dirs']} log directories, the configuration "
                         f"{len(dirs)}")
    if manifest["node_id"] != broker_config.node_id:
        raise ValueError(f"the snapshot is of node {manifest['node_id']}, the configuration says node.id "
                         f"{broker_config.node_id}")
    for d in dirs:
        if d.exists() and any(p.name != ".lock" for p in d.iterdir()):
            raise ValueError(f"log directory {d} is not empty: a snapshot starts only in empty directories")
    for i, d in enumerate(dirs):
        shutil.copytree(Path(path) / f"log-dir-{i}", d, dirs_exist_ok=True)
    return manifest
