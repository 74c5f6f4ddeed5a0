"""Loading and checking the spec directory: a directory that is not a whole set of Kafka specs is
refused (``SpecDirError``) before anything is generated; the specs of a whole set are parsed into
the messages of each module to generate (``collect``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from kbroker_protocol.interpreter import strip_json_comments

from .model import MessageSpec, build_message, snake

# Spec sub-directory -> output sub-package ("" = the messages package itself).
SPEC_DIRS = {
    "message": "",
    "group-coordinator": "coordinator",
    "transaction-coordinator": "coordinator",
    "metadata": "metadata_records",
    "raft": "raft",
}


class SpecDirError(Exception):
    """The spec directory cannot be used: missing, empty, incomplete or unreadable."""


def check_spec_dir(spec_dir: Path) -> None:
    """Refuse a spec directory that is not a whole set of Kafka specs (raises SpecDirError):
    every sub-directory present with specs in it, both headers, and every request with its
    response. Without this a wrong ``--spec-dir`` generated nothing, or half the modules."""
    if not spec_dir.is_dir():
        raise SpecDirError(f"spec directory {spec_dir} does not exist (--spec-dir names the directory "
                           "holding Kafka's " + ", ".join(f"{sub}/" for sub in SPEC_DIRS) + " specs)")
    empty = [sub for sub in SPEC_DIRS if not any((spec_dir / sub).glob("*.json"))]
    if empty:
        raise SpecDirError(f"spec directory {spec_dir} is incomplete: no *.json in "
                           + ", ".join(f"{sub}/" for sub in empty))
    names = {p.stem for p in (spec_dir / "message").glob("*.json")}
    missing = sorted({"RequestHeader", "ResponseHeader"} - names)
    for name in names:
        for have, want in (("Request", "Response"), ("Response", "Request")):
            if name.endswith(have) and name != f"{have}Header":
                partner = name[: -len(have)] + want
                if partner not in names:
                    missing.append(partner)
    if missing:
        raise SpecDirError(f"spec directory {spec_dir} is incomplete: message/ lacks "
                           + ", ".join(f"{n}.json" for n in sorted(set(missing))))


def load_spec(path: Path) -> dict[str, Any]:
    """Parse one spec file: ``//`` comments (whole lines or after JSON, never inside strings)
    are dropped before JSON parsing (the one piece shared with the reference interpreter)."""
    spec: dict[str, Any] = json.loads(strip_json_comments(path.read_text(encoding="utf-8")))
    return spec


def module_name(name: str) -> str:
    return snake(name)


def collect(spec_dir: Path) -> dict[str, dict[str, list[MessageSpec]]]:
    """{subpackage: {module name: [messages]}} for every spec with valid versions."""
    packages: dict[str, dict[str, list[MessageSpec]]] = {}
    for sub, pkg in SPEC_DIRS.items():
        for path in sorted((spec_dir / sub).glob("*.json")):
            spec = load_spec(path)
            if str(spec.get("validVersions")).strip() == "none":
                continue
            msg = build_message(spec, f"{sub}/{path.name}")
            kind = spec["type"]
            if pkg == "" and kind in ("request", "response"):
                base = re.sub(r"(Request|Response)$", "", msg.name)
                mod = module_name(base)
            elif pkg == "" and kind == "header":
                mod = module_name(msg.name)
            elif pkg == "":
                pkg_eff = "data"
                packages.setdefault(pkg_eff, {}).setdefault(module_name(msg.name), []).append(msg)
                continue
            else:
                mod = module_name(msg.name)
            packages.setdefault(pkg, {}).setdefault(mod, []).append(msg)
    for mods in packages.values():
        for msgs in mods.values():
            msgs.sort(key=lambda m: (m.kind != "request", m.name))
    return packages
