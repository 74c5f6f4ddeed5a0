"""py-spy profiles of kbroker under load, for scripts/bench_vs_kafka.py.

`record(pid, seconds, out)` samples a running broker with `py-spy record --format raw` (folded
stacks: `frame;frame;... count`); `summarize(path)` turns them into function-level self and
inclusive percentages of the samples in which the broker was running Python code (py-spy drops
idle samples unless --idle).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYSPY = ROOT / ".venv" / "bin" / "py-spy"
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]+)(?::(?P<line>\d+))?\)$")


def available() -> bool:
    return PYSPY.exists() or shutil.which("py-spy") is not None


def start(pid: int, seconds: float, out: Path, rate: int = 250) -> subprocess.Popen:
    exe = str(PYSPY) if PYSPY.exists() else "py-spy"
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", str(rate), "--duration",
                             str(max(1, int(seconds))), "--format", "raw", "--output", str(out),
                             "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _short(file: str) -> str:
    for marker in ("/kbroker/", "/protocol/", "/site-packages/", "/lib/python3.11/"):
        i = file.rfind(marker)
        if i >= 0:
            return file[i + 1:]
    return file


def _name(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    return f"{m['func']} ({_short(m['file'])})"


def summarize(path: Path, top: int = 15) -> dict:
    total = 0
    self_c: Counter[str] = Counter()
    incl_c: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += n
        self_c[frames[-1]] += n
        for f in set(frames):
            incl_c[f] += n

    def pct(c: Counter) -> list[tuple[str, float]]:
        return [(k, 100.0 * v / total) for k, v in c.most_common(top)] if total else []

    # inclusive: skip the frames every sample goes through (event loop plumbing above the handlers)
    incl = [(k, v) for k, v in pct(Counter(dict(incl_c.most_common(top + 25)))) if v < 97.0][:top]
    return {"samples": total, "self": pct(self_c), "inclusive": incl}


def _tree_pythonpath(tree):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tree_path import tree_pythonpath
    return tree_pythonpath(tree)


if __name__ == "__main__":
    s = summarize(Path(sys.argv[1]))
    print(f"{s['samples']} samples")
    for title in ("self", "inclusive"):
        print(title)
        for k, v in s[title]:
            print(f"  {v:5.1f}%  {k}")


def import_profile(python: str, src: Path, module: str = "kbroker.broker", top: int = 12) -> dict:
    """`python -X importtime -c 'import <module>'` from `src`: where kbroker's startup time goes
    before it can listen (import self times, grouped and the largest modules)."""
    import os
    import time

    env = dict(os.environ, PYTHONPATH=_tree_pythonpath(src))
    t0 = time.monotonic()
    res = subprocess.run([python, "-X", "importtime", "-c", f"import {module}"], capture_output=True,
                         text=True, cwd=src, env=env)
    wall = time.monotonic() - t0
    mods: list[tuple[str, int]] = []
    for line in res.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        selfus, _cum, name = line[len("import time:"):].split("|", 2)
        mods.append((name.strip(), int(selfus)))
    total = sum(v for _, v in mods) or 1

    def group(name: str) -> str:
        if name.startswith("kbroker_protocol.messages"):
            return "kbroker_protocol.messages.* (generated codec, every API)"
        if name.startswith("protocol"):
            return "protocol (other)"
        if name.startswith("kbroker"):
            return "kbroker.*"
        if name.split(".")[0] in ("crc32c", "lz4", "zstandard", "cramjam", "uvloop"):
            return "third-party (crc32c, lz4, zstandard, cramjam, uvloop)"
        return "stdlib and other"

    groups: Counter[str] = Counter()
    for name, v in mods:
        groups[group(name)] += v
    n_messages = sum(1 for name, _ in mods if name.startswith("kbroker_protocol.messages."))
    return {"process_wall_s": wall, "import_self_s": total / 1e6, "modules": len(mods),
            "message_modules": n_messages,
            "groups": [(k, v / 1e6, 100.0 * v / total) for k, v in groups.most_common()],
            "top": [(k, v / 1e6, 100.0 * v / total) for k, v in sorted(mods, key=lambda x: -x[1])[:top]]}
