"""REQUESTS/RESPONSES import message modules on first use, and the plain RESOLVED_* dicts the hot
path reads (kbroker_protocol.api) hold exactly the classes resolved so far."""

from __future__ import annotations

import subprocess
import sys

from kbroker_protocol.api import decode_request, encode_request
from kbroker_protocol.messages import (
    REQUESTS,
    RESOLVED_REQUESTS,
    RESOLVED_RESPONSES,
    RESPONSES,
    RequestHeader,
)


def test_importing_the_codec_loads_no_message_module():
    code = ("import sys, kbroker_protocol.api\n"
            "print(sorted(m for m in sys.modules if m.startswith('kbroker_protocol.messages.')))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "['kbroker_protocol.messages.request_header', 'kbroker_protocol.messages.response_header']"


def test_first_lookup_fills_the_resolved_dict_in_a_fresh_process():
    code = ("from kbroker_protocol.messages import REQUESTS, RESOLVED_REQUESTS, RESPONSES, RESOLVED_RESPONSES\n"
            "before = (52 in RESOLVED_REQUESTS, 52 in RESOLVED_RESPONSES)\n"
            "cls = REQUESTS.get(52)\n"
            "print(before, RESOLVED_REQUESTS.get(52) is cls, cls.__name__, 52 in RESOLVED_RESPONSES,\n"
            "      RESPONSES[52] is RESOLVED_RESPONSES[52])")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["(False,", "False)", "True", "VoteRequest", "False", "True"]


def test_resolved_dicts_agree_with_the_mappings():
    REQUESTS[0], RESPONSES[0]  # noqa: B018 - resolve
    for key, cls in RESOLVED_REQUESTS.items():
        assert REQUESTS[key] is cls and cls.API_KEY == key
    for key, cls in RESOLVED_RESPONSES.items():
        assert RESPONSES[key] is cls and cls.API_KEY == key
    assert set(RESOLVED_REQUESTS) <= set(REQUESTS) and set(RESOLVED_RESPONSES) <= set(RESPONSES)
    assert REQUESTS.get(10_000) is None and 10_000 not in RESOLVED_REQUESTS


def test_decode_request_resolves_a_key_seen_for_the_first_time():
    code = ("from kbroker_protocol.api import decode_request, encode_request\n"
            "from kbroker_protocol.messages import REQUESTS, RESOLVED_REQUESTS, RequestHeader\n"
            "from kbroker_protocol.messages.vote import VoteRequest\n"
            "RESOLVED_REQUESTS.pop(52, None)\n"
            "frame = encode_request(RequestHeader(request_api_key=52, request_api_version=1, correlation_id=3,\n"
            "                                     client_id='c'), VoteRequest(cluster_id='x', topics=[]))\n"
            "RESOLVED_REQUESTS.pop(52, None)\n"
            "header, body = decode_request(frame)\n"
            "print(header.correlation_id, type(body).__name__, RESOLVED_REQUESTS[52].__name__)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["3", "VoteRequest", "VoteRequest"]


def test_round_trip_through_the_hot_path():
    Req = REQUESTS[18]
    header = RequestHeader(request_api_key=18, request_api_version=3, correlation_id=9, client_id="x")
    got_header, body = decode_request(encode_request(header, Req(client_software_name="a",
                                                                 client_software_version="1")))
    assert got_header.correlation_id == 9 and body.client_software_name == "a"
