"""HTTP helpers for the console tests: JSON calls as the console's pages make them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

PAGE_HEADERS = {"X-Kbroker-Console": "1", "Content-Type": "application/json"}


def call(url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None,
         raw: bytes | None = None) -> tuple[int, Any, dict[str, str]]:
    """(status, decoded JSON or text, response headers)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    if method == "POST" and headers is None:
        headers = PAGE_HEADERS
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, text, hdrs = resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        status, text, hdrs = exc.code, exc.read().decode(), dict(exc.headers)
    try:
        return status, json.loads(text), hdrs
    except ValueError:
        return status, text, hdrs


def get(base: str, path: str) -> Any:
    status, data, _ = call(base + path)
    assert status == 200, (path, status, data)
    return data


def post(base: str, path: str, body: Any) -> Any:
    status, data, _ = call(base + path, "POST", body)
    assert status == 200, (path, status, data)
    return data
