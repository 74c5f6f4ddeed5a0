"""What installing kbroker puts into site-packages: kbroker and kbroker_protocol, never a generic
top-level ``protocol`` package (the codec's folder is mapped by setup.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_installs_the_codec_as_kbroker_protocol(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    (wheel,) = tmp_path.glob("kbroker-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"kbroker", "kbroker_protocol"}
    assert "kbroker_protocol/messages/produce.py" in names
    assert "kbroker_protocol/messages/metadata_records/__init__.py" in names
    assert "kbroker/console/static/index.html" in names or any(n.startswith("kbroker/console/static/")
                                                                for n in names)
    # The generated codec's own imports name the installed package.
    produce = zipfile.ZipFile(wheel).read("kbroker_protocol/messages/produce.py").decode()
    assert "from kbroker_protocol import message as _m, wire_read as _r, wire_write as _w" in produce
