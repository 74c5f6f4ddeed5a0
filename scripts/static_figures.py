#!/usr/bin/env python3
"""Static figures of kbroker/ at one or more commits, read with git only (issue 14's closing note).

    .venv/bin/python scripts/static_figures.py a567189 main

Per commit: lines with the word ``Any`` in kbroker/*.py (as ``grep -rnw Any kbroker --include=*.py``),
the same without ``from typing import`` / ``import typing`` lines, the lines and files of kbroker/,
the longest module and the modules over 600 lines. No checkout is needed; the test count and the
suite's run time are not here (they need a tree and a venv: ``pytest --collect-only -q``).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORD_ANY = re.compile(r"(?<![A-Za-z0-9_])Any(?![A-Za-z0-9_])")
TYPING_IMPORT = re.compile(r"^\s*(from typing import|import typing)")
LONG = 600


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout


def figures(rev: str) -> dict[str, object]:
    commit = git("rev-parse", "--short", f"{rev}^{{commit}}").strip()
    files = [f for f in git("ls-tree", "-r", "--name-only", commit, "kbroker").splitlines() if f.endswith(".py")]
    sizes: dict[str, int] = {}
    any_lines = any_no_import = 0
    for f in files:
        text = git("show", f"{commit}:{f}")
        lines = text.splitlines()
        sizes[f] = len(lines)
        for ln in lines:
            if WORD_ANY.search(ln):
                any_lines += 1
                if not TYPING_IMPORT.match(ln):
                    any_no_import += 1
    longest = sorted(sizes.items(), key=lambda kv: -kv[1])
    total = sum(sizes.values())
    return {"rev": rev, "commit": commit, "any": any_lines, "any_without_typing_imports": any_no_import,
            "lines": total, "files": len(files), "any_per_kloc": round(1000 * any_lines / total, 1) if total else 0.0,
            "longest": longest[0] if longest else None,
            "over_600": [(f, n) for f, n in longest if n > LONG]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("revs", nargs="+")
    a = ap.parse_args(argv)
    for rev in a.revs:
        f = figures(rev)
        longest = f["longest"]
        over = f["over_600"]
        assert isinstance(over, list)
        print(f"{f['rev']} ({f['commit']}): Any {f['any']} ({f['any_without_typing_imports']} without typing "
              f"imports; {f['any_per_kloc']} per 1,000 lines), {f['lines']:,} lines in {f['files']} files; "
              f"longest {longest[0]} {longest[1]} lines; over {LONG} lines: {len(over)}"
              + (" (" + ", ".join(f"{p} {n}" for p, n in over) + ")" if over else "")
              if isinstance(longest, tuple) else f"{f['rev']}: no kbroker/*.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
