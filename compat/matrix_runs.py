"""Running compat/run_matrix.py's scenarios: probing a client for its version and scenarios, one scenario
a process or a client's scenarios in one process (run_batch), and one broker's whole matrix."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import queue
import signal
import subprocess
import threading
import time

from matrix_brokers import start_broker
from matrix_config import CLUSTER_NODES, ROOT, is_cluster, log

# --- clients ----------------------------------------------------------------------------------

def probe_client(name: str, cmd: list[str]) -> tuple[str, list[str], str]:
    """Return (version, supported scenarios, error) of a client program."""
    try:
        ver = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=60)
        lst = subprocess.run([*cmd, "--list"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "?", [], f"cannot run {name}: {e}"
    if lst.returncode != 0:
        return "?", [], f"cannot run {name}: {(lst.stderr or lst.stdout)[-300:]}"
    return ver.stdout.strip() or "?", lst.stdout.split(), ""


def run_scenario(client: str, cmd: list[str], bootstrap: str, scenario: str, timeout: float,
                 replication_factor: int = 1, client_env: dict[str, str] | None = None) -> dict:
    t0 = time.monotonic()
    env = dict(os.environ, COMPAT_REPLICATION_FACTOR=str(replication_factor), **(client_env or {}))
    # Own session, so that on a timeout the whole process group we started (e.g. kcat children
    # of the Python driver) is ended by its id.
    proc = subprocess.Popen([*cmd, bootstrap, scenario], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, start_new_session=True, env=env)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        return {"status": "timeout", "ok": False, "error": f"timed out after {timeout:.0f}s",
                "seconds": round(time.monotonic() - t0, 3)}
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("scenario") == scenario:
                rec["status"] = "pass" if rec.get("ok") else "fail"
                return rec
    return {"status": "fail", "ok": False, "seconds": round(time.monotonic() - t0, 3),
            "error": f"no result line (exit {proc.returncode}): {stderr[-300:]}"}


def _result_line(line: str, wanted: list[str]) -> dict | None:
    """A scenario program's result line (JSON, one of the ``wanted`` scenarios), or None."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) and rec.get("scenario") in wanted else None


def run_batch(client: str, cmd: list[str], bootstrap: str, scenarios: list[str], timeout: float,
              replication_factor: int = 1, client_env: dict[str, str] | None = None) -> dict[str, dict]:
    """Run ``scenarios`` in one process of the client's program, in order (every scenario program
    takes several and prints one result line each), so the program starts once instead of once a
    scenario. Each scenario keeps its own ``timeout``: its result line must come within ``timeout``
    seconds of the previous one (of the start, for the first), as a scenario run alone must end within
    ``timeout`` of its start. A scenario that does not report in time is a timeout, one whose program
    ends before its line (a crash) a failure, as when run alone; the process is ended and the
    scenarios after it run in a new process. Returns the result of each scenario."""
    env = dict(os.environ, COMPAT_REPLICATION_FACTOR=str(replication_factor), **(client_env or {}))
    results: dict[str, dict] = {}
    pending = list(scenarios)
    while pending:
        t0 = time.monotonic()
        proc = subprocess.Popen([*cmd, bootstrap, *pending], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=ROOT, start_new_session=True, env=env)
        lines: queue.Queue[str | None] = queue.Queue()
        err_tail: list[str] = []

        def read_out(stream=proc.stdout, out=lines) -> None:
            for line in stream:
                out.put(line)
            out.put(None)

        def read_err(stream=proc.stderr, tail=err_tail) -> None:
            for line in stream:
                tail.append(line)
                del tail[:-40]

        readers = [threading.Thread(target=read_out, daemon=True), threading.Thread(target=read_err, daemon=True)]
        for r in readers:
            r.start()
        started = t0
        ended: str | None = None  # "timeout" or "exit" when the process stopped short of ``pending``
        while pending:
            try:
                line = lines.get(timeout=max(0.0, started + timeout - time.monotonic()))
            except queue.Empty:
                ended = "timeout"
                break
            if line is None:
                ended = "exit"
                break
            rec = _result_line(line, pending)
            if rec is None:
                continue
            rec["status"] = "pass" if rec.get("ok") else "fail"
            results[rec["scenario"]] = rec
            pending.remove(rec["scenario"])
            started = time.monotonic()
        if proc.poll() is None and ended == "timeout":
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout if ended is None else 30)
        except subprocess.TimeoutExpired:  # reported everything but does not exit: ended by its id
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for r in readers:
            r.join(10)
        if ended is None:
            break
        current = pending.pop(0)
        seconds = round(time.monotonic() - started, 3)
        if ended == "timeout":
            results[current] = {"status": "timeout", "ok": False, "error": f"timed out after {timeout:.0f}s",
                                "seconds": seconds}
        else:
            results[current] = {"status": "fail", "ok": False, "seconds": seconds,
                                "error": f"no result line (exit {proc.returncode}): {''.join(err_tail)[-300:]}"}
    return results


def run_broker_matrix(kind: str, clients: dict[str, list[str]], probes: dict, scenarios: list[str],
                      timeout: float, jobs: int, keep_dirs: bool = False, batch: bool = False) -> dict:
    out: dict = {"results": {}, "broker": {"kind": kind}}
    t0 = time.monotonic()
    try:
        broker = start_broker(kind)
    except Exception as e:  # noqa: BLE001 - a broker that does not start fails every scenario
        err = f"{kind} did not start: {type(e).__name__}: {e}"[:300]
        log(err)
        out["broker"]["error"] = err
        for c in clients:
            out["results"][c] = {s: ({"status": "not run", "ok": False, "error": err}
                                     if s in probes[c][1] else {"status": "unsupported", "ok": False})
                                 for s in scenarios}
        return out
    out["broker"]["start_seconds"] = round(getattr(broker, "start_seconds", time.monotonic() - t0), 2)
    out["broker"]["bootstrap"] = broker.bootstrap
    rf = CLUSTER_NODES if is_cluster(kind) else 1
    log(f"{kind} ready at {broker.bootstrap} in {out['broker']['start_seconds']}s")
    try:
        tasks = []
        for c, cmd in clients.items():
            out["results"][c] = {}
            for s in scenarios:
                if probes[c][2]:
                    out["results"][c][s] = {"status": "not run", "ok": False, "error": probes[c][2]}
                elif s not in probes[c][1]:
                    out["results"][c][s] = {"status": "unsupported", "ok": False}
                else:
                    tasks.append((c, cmd, s))
        client_env = getattr(broker, "client_env", None)

        def record(c: str, s: str, rec: dict) -> None:
            out["results"][c][s] = {k: rec.get(k) for k in ("status", "ok", "error", "seconds")}
            mark = "ok  " if rec["ok"] else rec["status"].upper()
            log(f"{kind:15} {c:15} {s:28} {mark} {rec.get('seconds', '')}s {rec.get('error') or ''}"[:240])

        with cf.ThreadPoolExecutor(max_workers=jobs) as pool:
            if batch:
                # One process a client, the clients with the most scenarios (and the JVMs) first.
                per_client: dict[str, list[str]] = {}
                for c, _cmd, s in tasks:
                    per_client.setdefault(c, []).append(s)
                order = sorted(per_client, key=lambda c: (-len(per_client[c]), not c.startswith("java")))
                futs = {pool.submit(run_batch, c, clients[c], broker.bootstrap, per_client[c], timeout, rf,
                                    client_env): c for c in order}
                for f in cf.as_completed(futs):
                    c = futs[f]
                    recs = f.result()
                    for s in per_client[c]:
                        record(c, s, recs[s])
            else:
                # Interleave clients so that concurrent jobs are different programs.
                futs1 = {pool.submit(run_scenario, c, cmd, broker.bootstrap, s, timeout, rf, client_env): (c, s)
                         for c, cmd, s in tasks}
                for f in cf.as_completed(futs1):
                    c, s = futs1[f]
                    record(c, s, f.result())
    finally:
        broker.stop(keep_dir=keep_dirs)
        if keep_dirs:
            log(f"{kind}: data and logs kept in {broker.workdir}")
    out["broker"]["seconds"] = round(time.monotonic() - t0, 1)
    return out
