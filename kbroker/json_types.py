"""Type names for JSON-shaped values (annotations only: this module imports nothing).

:data:`JsonValue` is what :func:`json.loads` returns and :func:`json.dumps` takes: used where a
value is genuinely free-form JSON (the control plane's HTTP bodies, the console's payloads).
:data:`JsonObject` is a JSON object.
"""

from __future__ import annotations

from typing import TypeAlias

JsonValue: TypeAlias = "dict[str, JsonValue] | list[JsonValue] | str | int | float | bool | None"
JsonObject: TypeAlias = "dict[str, JsonValue]"
