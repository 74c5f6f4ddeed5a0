"""Child process of test_crash.py: group commit under a SIGKILL and a simulated power loss.

Usage: log_group_writer.py <partition dir> <producers>. `producers` asyncio tasks append with
flush.messages=1 through `append(sync=False)` and wait on one `GroupCommit`, as the broker's
produce path does. Prints, each as one line written whole:

- ``S <size>`` after every fdatasync of the active segment has returned: the segment's size when
  that fdatasync started (every byte below it is on disk);
- ``A <first offset> <last offset> <n>`` once an append's wait has returned (it is acknowledged),
  with the number of group-commit fsyncs started so far.

Runs until killed.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from log_crash_writer import CONFIG, batch_for

from kbroker.log import PartitionLog
from kbroker.log import append as log_append
from kbroker.log.group_commit import GroupCommit

_real_fdatasync = os.fdatasync


def say(line: str) -> None:
    os.write(1, line.encode() + b"\n")  # one write per line: whole lines in the pipe, from any thread


def reporting_fdatasync(fd: int) -> None:
    size = os.fstat(fd).st_size
    _real_fdatasync(fd)
    say(f"S {os.readlink(f'/proc/self/fd/{fd}')} {size}")


async def producer(log: PartitionLog, commit: GroupCommit) -> None:
    while True:
        info = log.append(batch_for(log.log_end_offset), sync=False)
        await commit.wait(info.last_offset + 1)
        say(f"A {info.first_offset} {info.last_offset} {commit.fsyncs}")


async def main() -> None:
    log_append.os.fdatasync = reporting_fdatasync  # type: ignore[attr-defined]
    log = PartitionLog.open(Path(sys.argv[1]), CONFIG)
    commit = GroupCommit(lambda: log)
    await asyncio.gather(*(producer(log, commit) for _ in range(int(sys.argv[2]))))


if __name__ == "__main__":
    asyncio.run(main())
