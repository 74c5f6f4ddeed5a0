"""PYTHONPATH for running kbroker from a source tree other than the installed one.

The wire codec lives in the tree's ``protocol/`` folder but is imported as ``kbroker_protocol``
(setup.py maps it at install time). A benchmark that starts another tree (an older commit, a
worktree) with ``PYTHONPATH=<tree>`` would otherwise import that tree's ``kbroker`` with the
installed tree's codec. This puts a ``kbroker_protocol`` link to the tree's own ``protocol/`` first.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def tree_pythonpath(tree: Path | str) -> str:
    tree = Path(tree).resolve()
    shim = Path(tempfile.gettempdir()) / f"kbroker-tree-{hashlib.sha1(str(tree).encode()).hexdigest()[:12]}"
    shim.mkdir(exist_ok=True)
    link = shim / "kbroker_protocol"
    if (tree / "protocol").is_dir() and not link.exists():
        try:
            link.symlink_to(tree / "protocol", target_is_directory=True)
        except FileExistsError:
            pass
    return os.pathsep.join([str(shim), str(tree)])
