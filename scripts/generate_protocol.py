#!/usr/bin/env python3
"""Generate ``protocol/messages/`` from Apache Kafka's JSON message specs.

Usage::

    .venv/bin/python scripts/generate_protocol.py [OUT_DIR] [--spec-dir DIR] [--prune]

OUT_DIR defaults to ``protocol/messages`` and the spec dir to ``../shared/kafka-spec``, both
relative to the repository root.  A spec directory that is missing or incomplete (a sub-directory
without specs, a header or a request's response missing, or fewer specs than the modules already
generated in OUT_DIR) is refused with a message and exit status 2, and nothing is written or
deleted; ``--prune`` accepts a spec set from which APIs were removed and deletes their modules.

The output is ordinary Python checked into the repository: one module per request/response
pair (``produce.py`` holds ``ProduceRequest`` and ``ProduceResponse``), the two headers, and the
internal record formats in sub-packages (``data/``, ``coordinator/``, ``metadata_records/``,
``raft/``).

For every struct and every version the generator emits a straight-line reader
``_read_<Path>_v<N>(buf, pos) -> (obj, pos)`` and writer ``_write_<Path>_v<N>(obj, w)``;
versions whose code is identical share one function, and each class dispatches through a tuple
indexed by version (``_READERS``/``_WRITERS``).  Consecutive fixed-width fields are read and
written with one precompiled ``struct.Struct``; records fields and array counts are decoded
inline; leaf structs (no arrays, structs or known tagged fields) are decoded and encoded inside
their parent's loop; struct-valued defaults are built on first access rather than on decode.

Field types are those of Kafka's own generator: int8/16/32/64, uint16, uint32, float64, bool,
uuid, string, bytes, records, arrays and structs (the specs have no varint field type; varints
appear only as compact lengths and tagged-field headers).  Only the protocol's facts (names,
types, versions, defaults, tags) reach the output; the specs' prose does not.

Constructors and attributes are annotated with each field's Python type (``PY_TYPES``; ``| None``
where a version is nullable or the default is null; arrays ``list[...]``; structs their class):
``mypy --strict`` checks the messages the broker builds.  The modules use postponed annotations,
so the annotations are never evaluated and cost nothing at run time.

The code is the package ``scripts/protocol_codegen/``, one module a concern: ``spec_dir``
(refusing an unusable spec directory, parsing the specs into the modules to generate), ``model``
(versions, fields and the struct tree of a message), ``values`` (defaults, annotations, codec
helper names), ``emit_base``/``emit_read``/``emit_write`` (the per-version reader and writer
functions), ``emit_module`` (one generated module: classes and dispatch tables), ``emit_init``
(the packages' ``__init__`` modules) and ``cli`` (this command line: render everything, then
write only what changed and report).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from protocol_codegen.cli import generate, main  # noqa: E402
from protocol_codegen.spec_dir import SpecDirError, check_spec_dir  # noqa: E402

__all__ = ["SpecDirError", "check_spec_dir", "generate", "main"]

if __name__ == "__main__":
    sys.exit(main())
