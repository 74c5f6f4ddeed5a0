"""Every request and response of one groups point (issue 23), through a logging TCP proxy.

Runs bench_loads ``group`` (the point of ``bench_scale.py groups``: N librdkafka members of a classic
group, one member more, then pause, produce, resume and consume) against a fresh kbroker or Kafka
4.4 whose advertised listener is a proxy that forwards every frame and records it (time,
connection, API, correlation id, bytes; Produce bodies are not kept). Then prints the timeline:

- ``timeline``: each request and response (FindCoordinator, JoinGroup, SyncGroup... with their
  error codes and generations, Fetch with its partitions, session and bytes per response);
- ``fetch``: the fetch phase (after the last Produce answer): per consumer connection each Fetch's
  partitions, the broker's latency, the client's gap since its previous answer, and the record
  bytes per partition;
- ``client``: from a run with ``--debug fetch`` (OUT/client.log), per member: Fetch requests sent,
  the median and minimum time from a Fetch's send to its first partition enqueued, messages per
  answer, and how often the consumer queue was full (librdkafka then stops fetching for
  ``fetch.queue.backoff.ms``, 1 s).

    .venv/bin/python scripts/bench_group_timeline.py run kbroker 10 /tmp/gt-kb [--records 1000] [--debug cgrp]
        [--set group.initial.rebalance.delay.ms=3000]
    .venv/bin/python scripts/bench_group_timeline.py timeline /tmp/gt-kb/dump.bin
    .venv/bin/python scripts/bench_group_timeline.py fetch /tmp/gt-kb/dump.bin
    .venv/bin/python scripts/bench_group_timeline.py client /tmp/gt-kb/client.log   (after --debug fetch)

``run`` keeps the client's librdkafka log (``--debug``) in OUT/client.log and the broker's log
files in OUT. The proxy's own latency (a Python process) is in every figure: read the order of
events and the answers, not the fetch rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_brokers as bb  # noqa: E402
import bench_scale_nodes as sn  # noqa: E402
import reference_kafka  # noqa: E402

from kbroker_protocol.api import decode_request, decode_response  # noqa: E402
from kbroker_protocol.messages import API_NAMES  # noqa: E402

ROOT = bb.ROOT
HDR = struct.Struct("<dIbhhii")  # time, connection, 0 request / 1 response, key, version, correlation id, size
PRODUCE, FETCH = 0, 1


# -- the proxy -------------------------------------------------------------------------------------

def proxy(listen: int, target: int, path: str) -> None:
    out = open(path, "wb", buffering=1 << 20)
    conns = 0

    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        nonlocal conns
        conns += 1
        cid = conns
        br, bw = await asyncio.open_connection("127.0.0.1", target)
        inflight: dict[int, tuple[int, int]] = {}

        async def up() -> None:
            try:
                while True:
                    head = await cr.readexactly(4)
                    body = await cr.readexactly(struct.unpack(">i", head)[0])
                    key, ver, corr = struct.unpack_from(">hhi", body, 0)
                    inflight[corr] = (key, ver)
                    bw.write(head + body)
                    keep = b"" if key == PRODUCE else body
                    out.write(HDR.pack(time.time(), cid, 0, key, ver, corr, len(keep)) + keep)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                bw.close()

        async def down() -> None:
            try:
                while True:
                    head = await br.readexactly(4)
                    body = await br.readexactly(struct.unpack(">i", head)[0])
                    cw.write(head + body)
                    (corr,) = struct.unpack_from(">i", body, 0)
                    key, ver = inflight.pop(corr, (-1, -1))
                    out.write(HDR.pack(time.time(), cid, 1, key, ver, corr, len(body)) + body)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                cw.close()

        await asyncio.gather(up(), down())

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", listen)
        print("ready", flush=True)
        await server.serve_forever()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    finally:
        out.close()


# -- one run ---------------------------------------------------------------------------------------

CLIENT = """
import sys, confluent_kafka
sys.path.insert(0, {scripts!r})
plain = confluent_kafka.Consumer
debug = {debug!r}
confluent_kafka.Consumer = lambda conf: plain(dict(conf, debug=debug) if debug else conf)
import bench_loads
sys.exit(bench_loads.main(['group', '--bootstrap', {bootstrap!r}, '--topic', 'load', '--records', '{records}',
                           '--conns', '{members}', '--timeout', '120']))
"""


def run(kind: str, members: int, out: Path, records: int, debug: str, extra: dict[str, str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    port = reference_kafka.free_port()
    settings = {**bb.BENCH_SETTINGS, **extra, "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}"}
    node = sn.make(kind, out, settings, ROOT)
    parts = max(16, 2 * members)
    relay = None
    try:
        node.start()
        relay = subprocess.Popen([sys.executable, __file__, "proxy", str(port), str(node.port), str(out / "dump.bin")],
                                 stdout=subprocess.PIPE, text=True)
        assert relay.stdout is not None
        relay.stdout.readline()
        sn.create_topic(node.bootstrap, "load", parts)
        node.wait_topic("load", parts)
        code = CLIENT.format(scripts=str(ROOT / "scripts"), debug=debug, bootstrap=f"127.0.0.1:{port}",
                             records=records, members=members)
        t0 = time.time()
        with open(out / "client.log", "w") as err:
            res = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=err, text=True,
                                 timeout=600)
        (out / "result.json").write_text(json.dumps({"t0": t0, "kind": kind, "result": res.stdout.strip()}))
        print(res.stdout.strip())
        node.stop()
    finally:
        if relay is not None:
            relay.send_signal(signal.SIGINT)
            relay.wait(30)
        for f in node.workdir.glob("*.log"):
            shutil.copy(f, out / f"broker-{f.name}")
        node.remove()


# -- reading the dump ------------------------------------------------------------------------------

def frames(path: Path) -> list[tuple[float, int, int, int, int, int, bytes]]:
    data = path.read_bytes()
    got = []
    pos = 0
    while pos + HDR.size <= len(data):
        t, conn, d, key, ver, corr, n = HDR.unpack_from(data, pos)
        pos += HDR.size
        got.append((t, conn, d, key, ver, corr, data[pos:pos + n]))
        pos += n
    return got


def _request_info(key: int, body: bytes) -> str:
    header, req = decode_request(body)
    if key == FETCH:
        parts = sum(len(t.partitions) for t in req.topics)
        return (f"wait={req.max_wait_ms} min={req.min_bytes} max={req.max_bytes} "
                f"session={req.session_id}/{req.session_epoch} partitions={parts}")
    if key == 10:
        return f"client={header.client_id} key={getattr(req, 'coordinator_keys', None) or req.key}"
    member = getattr(req, "member_id", None)
    if member is not None:
        return f"client={header.client_id} member=..{member[-6:]} generation={getattr(req, 'generation_id', '')}"
    return f"client={header.client_id}"


def _response_info(key: int, ver: int, body: bytes) -> str:
    _h, resp = decode_response(body, key, ver)
    if key == FETCH:
        sizes = [len(p.records) if p.records is not None else 0 for t in resp.responses for p in t.partitions]
        return (f"error={resp.error_code} session={resp.session_id} partitions={len(sizes)} "
                f"with_data={sum(1 for s in sizes if s)} record_bytes={sum(sizes)}")
    if key == 10:
        coordinators = getattr(resp, "coordinators", None)
        return f"error={[c.error_code for c in coordinators] if coordinators else resp.error_code}"
    if key == 11:
        return (f"error={resp.error_code} generation={resp.generation_id} leader=..{resp.leader[-6:]} "
                f"member=..{resp.member_id[-6:]} members={len(resp.members)}")
    code = getattr(resp, "error_code", None)
    return "" if code is None else f"error={code}"


def timeline(path: Path, t0: float | None) -> None:
    sent: dict[tuple[int, int], float] = {}
    for t, conn, d, key, ver, corr, body in frames(path):
        t0 = t if t0 is None else t0
        name = API_NAMES.get(key, str(key))
        if d == 0:
            sent[(conn, corr)] = t
            info = _request_info(key, body) if body else ""
            print(f"{t - t0:9.4f} c{conn:<3} > {name} v{ver} #{corr} {info}")
        else:
            at = sent.pop((conn, corr), None)
            latency = "" if at is None else f" +{(t - at) * 1000:.1f} ms"
            info = _response_info(key, ver, body) if key >= 0 else ""
            print(f"{t - t0:9.4f} c{conn:<3} < {name} v{ver} #{corr} {len(body)} B{latency} {info}")


def fetch_phase(path: Path) -> None:
    got = frames(path)
    last_produce = max(t for t, _c, d, key, _v, _corr, _b in got if key == PRODUCE and d == 1)
    sent: dict[tuple[int, int], tuple[float, int]] = {}
    start = None
    previous: dict[int, float] = {}
    for t, conn, d, key, ver, corr, body in got:
        if key != FETCH:
            continue
        if d == 0:
            _h, req = decode_request(body)
            parts = sum(len(tp.partitions) for tp in req.topics)
            sent[(conn, corr)] = (t, parts)
            if t >= last_produce and parts and start is None:
                start = t
            continue
        at, parts = sent.pop((conn, corr), (0.0, 0))
        if start is None or at < start:
            continue
        _h, resp = decode_response(body, key, ver)
        sizes = [len(p.records) if p.records is not None else 0 for tp in resp.responses for p in tp.partitions]
        gap = f" client_gap={(at - previous[conn]) * 1000:.1f} ms" if conn in previous else ""
        print(f"{t - start:8.4f} c{conn} sent@{at - start:.4f} partitions={parts} latency={(t - at) * 1000:.1f} ms"
              f"{gap} response={len(body)} B record_bytes/partition={[s for s in sizes if s]}")
        previous[conn] = t


def client_fetches(path: Path) -> None:
    """librdkafka's ``debug=fetch`` lines: "Fetch N/N/N toppar(s)" (a request sent), "Enqueue N
    message(s)" (a partition of an answer queued), "Queue full" (a backoff)."""
    events: dict[str, list[tuple[str, float, int]]] = {}
    for line in path.read_text(errors="replace").splitlines():
        fields = line.split("|")
        if len(fields) < 5:
            continue
        try:
            t = float(fields[1])
        except ValueError:
            continue
        member = fields[3].split("#")[0]
        text = fields[4]
        if re.search(r"Fetch \d+/\d+/\d+ toppar", text):
            events.setdefault(member, []).append(("send", t, 0))
        elif (m := re.search(r"Enqueue (\d+) message", text)) is not None:
            events.setdefault(member, []).append(("enqueue", t, int(m.group(1))))
        elif "Queue full" in text:
            events.setdefault(member, []).append(("full", t, 0))
    for member, evs in sorted(events.items()):
        latencies: list[float] = []
        per_answer: list[int] = []
        sent: float | None = None
        messages = 0
        first = True
        for kind, t, n in evs:
            if kind == "send":
                if sent is not None and messages:
                    per_answer.append(messages)
                sent, messages, first = t, 0, True
            elif kind == "enqueue" and sent is not None:
                if first:
                    latencies.append((t - sent) * 1000)
                    first = False
                messages += n
        sends = sum(1 for e in evs if e[0] == "send")
        full = len({t for kind, t, _n in evs if kind == "full"})  # (one line per partition)
        lat = f"median {median(latencies):.1f} ms, min {min(latencies):.1f} ms" if latencies else "-"
        print(f"{member}: {sends} fetches, send to first enqueue {lat}, "
              f"messages per answer median {median(per_answer) if per_answer else 0}, queue full {full}x (1 s without fetching each)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run")
    p.add_argument("kind", choices=["kbroker", "kafka"])
    p.add_argument("members", type=int)
    p.add_argument("out", type=Path)
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--debug", default="", help="librdkafka debug contexts (cgrp,fetch,...)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a broker setting over the benchmark's (both brokers take the same keys)")
    p = sub.add_parser("proxy")
    p.add_argument("listen", type=int)
    p.add_argument("target", type=int)
    p.add_argument("dump")
    p = sub.add_parser("timeline")
    p.add_argument("dump", type=Path)
    p.add_argument("--t0", type=float, default=None, help="unix time of 0 (default: the first frame)")
    p = sub.add_parser("fetch")
    p.add_argument("dump", type=Path)
    p = sub.add_parser("client")
    p.add_argument("log", type=Path)
    a = ap.parse_args(argv)
    if a.cmd == "run":
        run(a.kind, a.members, a.out, a.records, a.debug, dict(kv.split("=", 1) for kv in a.set))
    elif a.cmd == "proxy":
        proxy(a.listen, a.target, a.dump)
    elif a.cmd == "timeline":
        timeline(a.dump, a.t0)
    elif a.cmd == "client":
        client_fetches(a.log)
    else:
        fetch_phase(a.dump)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
