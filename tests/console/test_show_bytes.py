"""How the message browser shows a record's bytes: never as markup, JSON pretty, the rest safe."""

from __future__ import annotations

import json

from kbroker.console.records import SHOWN_BYTES, show_bytes


def test_null_text_and_json():
    assert show_bytes(None) == {"kind": "null", "text": None, "size": 0}
    assert show_bytes(b"<script>alert(1)</script>")["text"] == "<script>alert(1)</script>"
    assert show_bytes("héllo\n\tworld".encode())["kind"] == "text"
    shown = show_bytes(b'{"a":{"b":[1,"\\u00e9"]}}')
    assert shown["kind"] == "json" and json.loads(shown["pretty"]) == {"a": {"b": [1, "é"]}}
    assert shown["pretty"].startswith('{\n  "a": {')
    assert show_bytes(b"[1, 2")["kind"] == "text"  # not JSON after all
    assert show_bytes(b"42")["kind"] == "text"  # a bare number stays text
    assert show_bytes(b'"quoted"')["kind"] == "json"


def test_bytes_that_are_not_printable_text_are_hex_and_escaped():
    shown = show_bytes(b"\x00\x9f\xff")
    assert shown == {"kind": "binary", "text": "00 9f ff", "escaped": "\\x00\\x9f\\xff", "size": 3,
                     "truncated": False}
    control = show_bytes(b"ok\x1b[31mred")  # valid UTF-8 with a terminal escape
    assert control["kind"] == "binary" and control["escaped"] == "ok\\x1b[31mred"


def test_large_values_are_cut_and_say_so():
    big = b"x" * (SHOWN_BYTES + 10)
    shown = show_bytes(big)
    assert shown["truncated"] and shown["size"] == SHOWN_BYTES + 10 and len(shown["text"]) == SHOWN_BYTES
    cut_json = show_bytes(b"[" + b"1," * SHOWN_BYTES + b"1]")
    assert cut_json["kind"] == "text" and cut_json["truncated"]  # a cut JSON document is not parsed


def test_a_cut_inside_a_character_keeps_the_text():
    value = b"a" * (SHOWN_BYTES - 1) + "é".encode() + b"tail"
    shown = show_bytes(value)
    assert shown["kind"] == "text" and shown["text"] == "a" * (SHOWN_BYTES - 1) and shown["truncated"]
