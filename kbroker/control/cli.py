"""``kbroker ctl``: the control endpoint from the command line.

    kbroker ctl --url http://127.0.0.1:9644 faults add api=Produce error=NOT_LEADER_OR_FOLLOWER count=1
    kbroker ctl faults list | fired [RULE] | remove ID | clear
    kbroker ctl pause | resume | status
    kbroker ctl clock advance 45000
    kbroker ctl clock show
    kbroker ctl reset [--drop-connections]
    kbroker ctl snapshot DIR
    kbroker ctl trace start [--path FILE] [--api A,B] [--client-id C] [--topic T] | stop
    kbroker ctl trace show [--api A] [--client-id C] [--topic T] [--limit N]
    kbroker ctl negotiation [--client-id C]

The URL comes from ``--url`` or ``KBROKER_CONTROL_URL``. Answers are printed as JSON (the
negotiation report as text unless ``--json``); an error answer prints its message and exits 1,
an unreachable endpoint exits 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

if TYPE_CHECKING:
    from kbroker.json_types import JsonObject, JsonValue


def _value(text: str) -> int | float | bool | str:
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    if text in ("true", "false"):
        return text == "true"
    return text


def parse_fields(items: list[str]) -> JsonObject | list[JsonValue]:
    """``key=value`` words (numbers become numbers), or one JSON object (or list of them)."""
    if len(items) == 1 and items[0].lstrip().startswith(("{", "[")):
        parsed: JsonObject | list[JsonValue] = json.loads(items[0])
        return parsed
    out: JsonObject = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"kbroker ctl: expected key=value, got {item!r}")
        out[key] = _value(value)
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kbroker ctl", description="Drive a running kbroker's control endpoint.")
    p.add_argument("--url", default=os.environ.get("KBROKER_CONTROL_URL"),
                   help="the control endpoint (default: $KBROKER_CONTROL_URL)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("status")
    faults = sub.add_parser("faults").add_subparsers(dest="action", required=True)
    add = faults.add_parser("add", help="key=value ... or a JSON object")
    add.add_argument("fields", nargs="+")
    faults.add_parser("list")
    fired = faults.add_parser("fired")
    fired.add_argument("rule", nargs="?", type=int)
    remove = faults.add_parser("remove")
    remove.add_argument("id", type=int)
    faults.add_parser("clear")
    sub.add_parser("pause")
    sub.add_parser("resume")
    clock = sub.add_parser("clock").add_subparsers(dest="action", required=True)
    advance = clock.add_parser("advance")
    advance.add_argument("ms", type=int)
    clock.add_parser("show")
    reset = sub.add_parser("reset")
    reset.add_argument("--drop-connections", action="store_true")
    snap = sub.add_parser("snapshot")
    snap.add_argument("path")
    trace = sub.add_parser("trace").add_subparsers(dest="action", required=True)
    for name in ("start", "show"):
        t = trace.add_parser(name)
        t.add_argument("--api")
        t.add_argument("--client-id")
        t.add_argument("--topic")
        if name == "start":
            t.add_argument("--path")
        else:
            t.add_argument("--limit", type=int)
    trace.add_parser("stop")
    neg = sub.add_parser("negotiation")
    neg.add_argument("--client-id")
    neg.add_argument("--json", action="store_true")
    return p


def request(url: str, method: str, path: str, body: object = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url.rstrip("/") + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {"error": exc.reason}


def _filters(args: argparse.Namespace) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in ("api", "client_id", "topic"):
        value = getattr(args, name, None)
        if value:
            out[name] = value.split(",")
    return out


def format_negotiation(clients: list[dict[str, Any]]) -> str:
    lines = []
    for c in clients:
        sw = c.get("client_software") or {}
        lines.append(f"client {c['client_id']!r} ({sw.get('name', '?')} {sw.get('version', '?')}) "
                     f"on {c['connection']}")
        for av in c["api_versions"]:
            answer = av["error"] + (f", {av['apis_offered']} APIs offered" if "apis_offered" in av else "")
            lines.append(f"  ApiVersions v{av['asked']}: {answer}")
        for api, versions in c["used"].items():
            note = ""
            below = c["used_below_offered_max"].get(api)
            if below:
                note = f" (offered up to v{below['offered_max']})"
            lines.append(f"  used {api} v{','.join(map(str, versions))}{note}")
        for r in c["refused"]:
            lines.append(f"  refused {r['api']} v{r['version']}: {r['reason']}")
    return "\n".join(lines) if lines else "no clients traced"


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if not args.url:
        print("kbroker ctl: no control endpoint: give --url or set KBROKER_CONTROL_URL", file=sys.stderr)
        return 2
    cmd = args.command
    action = getattr(args, "action", None)
    try:
        if cmd == "status":
            status, out = request(args.url, "GET", "/status")
        elif cmd == "faults":
            if action == "add":
                try:
                    fields = parse_fields(args.fields)
                except ValueError as exc:
                    print(f"kbroker ctl: the rule is not JSON: {exc}", file=sys.stderr)
                    return 2
                status, out = request(args.url, "POST", "/faults", fields)
            elif action == "list":
                status, out = request(args.url, "GET", "/faults")
            elif action == "fired":
                query = "" if args.rule is None else f"?rule={args.rule}"
                status, out = request(args.url, "GET", "/faults/fired" + query)
            elif action == "remove":
                status, out = request(args.url, "DELETE", f"/faults/{args.id}")
            else:
                status, out = request(args.url, "DELETE", "/faults")
        elif cmd in ("pause", "resume"):
            status, out = request(args.url, "POST", f"/{cmd}", {})
        elif cmd == "clock" and action == "show":
            status, out = request(args.url, "GET", "/clock")
        elif cmd == "clock":
            status, out = request(args.url, "POST", "/clock/advance", {"ms": args.ms})
        elif cmd == "reset":
            status, out = request(args.url, "POST", "/reset",
                                  {"connections": "drop" if args.drop_connections else "keep"})
        elif cmd == "snapshot":
            status, out = request(args.url, "POST", "/snapshot", {"path": os.path.abspath(args.path)})
        elif cmd == "trace":
            if action == "start":
                body = _filters(args)
                if args.path:
                    body["path"] = os.path.abspath(args.path)
                status, out = request(args.url, "POST", "/trace", body)
            elif action == "stop":
                status, out = request(args.url, "DELETE", "/trace")
            else:
                params = {k: ",".join(v) for k, v in _filters(args).items()}
                if args.limit is not None:
                    params["limit"] = str(args.limit)
                status, out = request(args.url, "GET", "/trace" + (f"?{urlencode(params)}" if params else ""))
        else:  # negotiation
            query = f"?{urlencode({'client_id': args.client_id})}" if args.client_id else ""
            status, out = request(args.url, "GET", "/negotiation" + query)
            if status == 200 and not args.json:
                print(format_negotiation(out["clients"]))
                return 0
    except (urllib.error.URLError, OSError) as exc:
        print(f"kbroker ctl: cannot reach {args.url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 2
    if status != 200:
        field = f" (field {out['field']})" if out.get("field") else ""
        print(f"kbroker ctl: {status}: {out.get('error', out)}{field}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2))
    return 0
