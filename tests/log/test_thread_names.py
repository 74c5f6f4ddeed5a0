"""The broker's worker threads carry OS names (``/proc/<pid>/task/<tid>/comm``), not ``python``."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kbroker.log import group_commit
from kbroker.log.thread_names import COMM_MAX, name_os_thread, os_name_for
from kbroker.replication.validation import ValidationPool


def comm_of_this_thread() -> str:
    return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip()


def test_os_name_drops_the_prefix_and_fits_the_kernel_limit() -> None:
    assert os_name_for("kbroker-fsync_0") == "fsync_0"
    assert os_name_for("log-maintenance") == "log-maintenance"
    long = os_name_for("kbroker-validate-and-more_12")
    assert long == "validate-and-mo" and len(long.encode()) == COMM_MAX
    assert os_name_for("kbroker-" + "a" * 14 + "é") == "a" * 14  # a character cut by the limit is left out


def test_initializer_names_the_executor_threads() -> None:
    with ThreadPoolExecutor(1, thread_name_prefix="kbroker-example", initializer=name_os_thread) as pool:
        assert pool.submit(comm_of_this_thread).result(10) == "example_0"


def test_fsync_threads_are_named() -> None:
    assert group_commit.executor().submit(comm_of_this_thread).result(10).startswith("fsync_")


def test_validation_thread_pool_threads_are_named() -> None:
    pool = ValidationPool(workers=1, kind="thread")

    async def run() -> str:
        return await asyncio.get_running_loop().run_in_executor(pool._get(), comm_of_this_thread)

    try:
        assert asyncio.run(run()) == "validate_0"
    finally:
        pool.close()
