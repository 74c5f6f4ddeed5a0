"""Running compat/run_matrix.py's scenarios: probing a client for its version and scenarios, one scenario
a process or a client's scenarios in one process (run_batch), and one broker's whole matrix."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

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


# A failed scenario's log keeps this many of the program's last stderr lines (the Python programs
# write their client library's debug log of the scenario there on a failure, 20,000 lines at most:
# compat/python/harness.py's HEAD_LINES and TAIL_LINES).
LOG_LINES = 30000
# The lines of it a failure message shows (run_matrix's log_tail, tests/compat/test_matrix.py).
TAIL_LINES = 40
# How long a program ended for a timeout gets after SIGTERM to write its log before SIGKILL.
TERM_GRACE = 10.0


def write_log(log_dir: Path | None, client: str, scenario: str, rec: dict, stderr: list[str]) -> None:
    """On a scenario that did not pass, write the program's stderr of it (``stderr``: its lines) to
    ``log_dir/CLIENT/SCENARIO.log``, headed by the result, and set ``rec["log"]`` to that path."""
    if log_dir is None or rec.get("ok"):
        return
    path = log_dir / client / f"{scenario}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    head = f"# {client} / {scenario}: {rec.get('status')} after {rec.get('seconds')} s: {rec.get('error') or ''}\n"
    path.write_text(head + "".join(line if line.endswith("\n") else line + "\n" for line in stderr[-LOG_LINES:]))
    rec["log"] = str(path)


def log_tail(path: Path, n: int = TAIL_LINES) -> str:
    """The last ``n`` lines of a scenario's log, as a failure message shows them."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as e:
        return f"(no log: {e})"
    return "\n".join(lines[-n:])


def _end(proc: subprocess.Popen) -> None:
    """End a scenario program that ran out of time and its process group: SIGTERM first, so that a
    Python program writes its client log (harness.ScenarioLog), then SIGKILL by the group's id."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(TERM_GRACE)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_scenario(client: str, cmd: list[str], bootstrap: str, scenario: str, timeout: float,
                 replication_factor: int = 1, client_env: dict[str, str] | None = None,
                 log_dir: Path | None = None) -> dict:
    t0 = time.monotonic()
    env = dict(os.environ, COMPAT_REPLICATION_FACTOR=str(replication_factor), **(client_env or {}))
    # Own session, so that on a timeout the whole process group we started (e.g. kcat children
    # of the Python driver) is ended by its id.
    proc = subprocess.Popen([*cmd, bootstrap, scenario], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, start_new_session=True, env=env)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # As _end, reading the pipes meanwhile (the program's log may be more than a pipe holds).
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            stdout, stderr = proc.communicate(timeout=TERM_GRACE)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            stdout, stderr = None, None
        try:  # what is left of the group (the program's own children)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if stdout is None or stderr is None:
            stdout, stderr = proc.communicate()
        rec = {"status": "timeout", "ok": False, "error": f"timed out after {timeout:.0f}s",
               "seconds": round(time.monotonic() - t0, 3)}
        write_log(log_dir, client, scenario, rec, stderr.splitlines())
        return rec
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("scenario") == scenario:
                rec["status"] = "pass" if rec.get("ok") else "fail"
                write_log(log_dir, client, scenario, rec, stderr.splitlines())
                return rec
    rec = {"status": "fail", "ok": False, "seconds": round(time.monotonic() - t0, 3),
           "error": f"no result line (exit {proc.returncode}): {stderr[-300:]}"}
    write_log(log_dir, client, scenario, rec, stderr.splitlines())
    return rec


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


# The line the Python scenario programs write on stderr as a scenario starts, followed by its name
# (compat/python/harness.py's SCENARIO_MARK).
SCENARIO_MARK = "--- scenario "


class _Stderr:
    """A program's stderr lines, numbered from its start, with the lines where scenarios start
    (SCENARIO_MARK), keeping at most 2 * LOG_LINES lines (run_batch drops what it no longer needs)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lines: list[str] = []
        self.base = 0  # the number of lines[0]
        self.starts: dict[str, int] = {}  # scenario -> the number of its SCENARIO_MARK line
        self.marks: list[int] = []

    def add(self, line: str) -> None:
        with self.lock:
            if line.startswith(SCENARIO_MARK):
                n = self.base + len(self.lines)
                self.starts[line[len(SCENARIO_MARK):].strip()] = n
                self.marks.append(n)
            self.lines.append(line)
            if len(self.lines) > 2 * LOG_LINES:
                del self.lines[:LOG_LINES]
                self.base += LOG_LINES

    def mark(self) -> int:
        with self.lock:
            return self.base + len(self.lines)

    def between(self, start: int, end: int | None = None) -> list[str]:
        with self.lock:
            stop = len(self.lines) if end is None else max(0, end - self.base)
            return self.lines[max(0, start - self.base):stop]

    def scenario(self, name: str, complete: bool) -> tuple[int, int | None] | None:
        """Where scenario ``name``'s lines are, as (start, end or None for "to the last line"), from
        the program's marks: known when a later scenario's mark follows its own, or when
        ``complete`` (the program has ended) and its mark came; None otherwise."""
        with self.lock:
            start = self.starts.get(name)
            if start is None:
                return None
            end = next((m for m in self.marks if m > start), None)
            return None if end is None and not complete else (start, end)

    def drop_before(self, n: int) -> None:
        with self.lock:
            n = min([n, *self.marks[-1:]])
            k = min(len(self.lines), max(0, n - self.base))
            del self.lines[:k]
            self.base += k


class _Due:
    """A scenario that did not pass and whose log is not written yet. For a program that writes no
    SCENARIO_MARK its lines are those between the result lines two before its own and two after it
    (``cuts``: the stderr line numbers when they were read; stderr and stdout are read apart, so a
    line written just before a result line may be read after it, or the other way round), to the
    program's end if it ends sooner."""

    def __init__(self, rec: dict, cuts: list[int]) -> None:
        self.rec, self.cuts, self.k = rec, cuts, len(cuts) - 1  # cuts[k]: at its own result line

    def plain_lines(self, complete: bool) -> tuple[int, int | None] | None:
        start = self.cuts[max(0, self.k - 2)]
        if self.k + 2 < len(self.cuts):
            return start, self.cuts[self.k + 2]
        return (start, None) if complete else None

    def first_line(self, err: _Stderr) -> int:
        """The first stderr line its log may still need."""
        return min(self.cuts[max(0, self.k - 2)], err.starts.get(self.rec["scenario"], self.cuts[-1]))


def _write_due(log_dir: Path | None, client: str, due: list[_Due], err: _Stderr, complete: bool) -> None:
    """Write the logs of ``due`` whose lines are all there (all of them when ``complete``)."""
    for d in list(due):
        where = err.scenario(d.rec["scenario"], complete)
        if where is None and not err.marks:
            where = d.plain_lines(complete)
        if where is None and complete:
            where = d.plain_lines(True)
        if where is None:
            continue
        write_log(log_dir, client, d.rec["scenario"], d.rec, err.between(*where))
        due.remove(d)


def run_batch(client: str, cmd: list[str], bootstrap: str, scenarios: list[str], timeout: float,
              replication_factor: int = 1, client_env: dict[str, str] | None = None,
              log_dir: Path | None = None) -> dict[str, dict]:
    """Run ``scenarios`` in one process of the client's program, in order (every scenario program
    takes several and prints one result line each), so the program starts once instead of once a
    scenario. Each scenario keeps its own ``timeout``: its result line must come within ``timeout``
    seconds of the previous one (of the start, for the first), as a scenario run alone must end within
    ``timeout`` of its start. A scenario that does not report in time is a timeout, one whose program
    ends before its line (a crash) a failure, as when run alone; the process is ended and the
    scenarios after it run in a new process. Returns the result of each scenario.

    With ``log_dir``, a scenario that does not pass gets a log there (write_log): the program's stderr
    from the scenario's SCENARIO_MARK line to the next one, or for a program writing none, from the
    previous scenario's result line to the next one's (or the program's end)."""
    env = dict(os.environ, COMPAT_REPLICATION_FACTOR=str(replication_factor), **(client_env or {}))
    results: dict[str, dict] = {}
    pending = list(scenarios)
    while pending:
        t0 = time.monotonic()
        proc = subprocess.Popen([*cmd, bootstrap, *pending], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=ROOT, start_new_session=True, env=env)
        lines: queue.Queue[str | None] = queue.Queue()
        err = _Stderr()

        def read_out(stream=proc.stdout, out=lines) -> None:
            for line in stream:
                out.put(line)
            out.put(None)

        def read_err(stream=proc.stderr, sink=err) -> None:
            for line in stream:
                sink.add(line)

        readers = [threading.Thread(target=read_out, daemon=True), threading.Thread(target=read_err, daemon=True)]
        for r in readers:
            r.start()
        started = t0
        ended: str | None = None  # "timeout" or "exit" when the process stopped short of ``pending``
        cuts = [0]  # the stderr line numbers at the program's start and each result line
        due: list[_Due] = []
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
            cuts.append(err.mark())
            if not rec["ok"] and log_dir is not None:
                due.append(_Due(rec, cuts))
            _write_due(log_dir, client, due, err, False)
            err.drop_before(min([cuts[max(0, len(cuts) - 3)], *(d.first_line(err) for d in due)]))
        if proc.poll() is None and ended == "timeout":
            _end(proc)
        try:
            proc.wait(timeout if ended is None else 30)
        except subprocess.TimeoutExpired:  # reported everything but does not exit: ended by its id
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for r in readers:
            r.join(10)
        if ended is not None:
            current = pending.pop(0)
            seconds = round(time.monotonic() - started, 3)
            tail = "".join(err.between(0)[-40:])  # what is kept: from two result lines back
            if ended == "timeout":
                results[current] = {"status": "timeout", "ok": False, "error": f"timed out after {timeout:.0f}s",
                                    "seconds": seconds, "scenario": current}
            else:
                results[current] = {"status": "fail", "ok": False, "seconds": seconds, "scenario": current,
                                    "error": f"no result line (exit {proc.returncode}): {tail[-300:]}"}
            if log_dir is not None:
                cuts.append(err.mark())
                due.append(_Due(results[current], cuts))
        _write_due(log_dir, client, due, err, True)
        if ended is None:
            break
    return results


def copy_broker_logs(broker: object, dest: Path) -> None:
    """Copy the broker's log files (its ``log_files()``: kbroker's, one a node) into ``dest``."""
    files = getattr(broker, "log_files", None)
    paths: list[Path] = list(files()) if files is not None else []
    clash = len({f.name for f in paths}) < len(paths)  # e.g. node-1/server.log, node-2/server.log
    for f in paths:
        if f.is_file():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest / (f"{f.parent.name}-{f.name}" if clash else f.name))


def run_broker_matrix(kind: str, clients: dict[str, list[str]], probes: dict, scenarios: list[str],
                      timeout: float, jobs: int, keep_dirs: bool = False, batch: bool = False,
                      out_dir: Path | None = None) -> dict:
    """Start the broker ``kind``, run the clients' scenarios on it, stop it. With ``out_dir``, a
    scenario that does not pass leaves its program's log in out_dir/logs/KIND/CLIENT/SCENARIO.log
    (its result's "log", relative to out_dir), and the broker's own logs are copied to
    out_dir/logs/KIND/broker/ when one did not pass."""
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
        log_dir = None if out_dir is None else out_dir / "logs" / kind

        def record(c: str, s: str, rec: dict) -> None:
            out["results"][c][s] = {k: rec.get(k) for k in ("status", "ok", "error", "seconds")}
            if rec.get("log") and out_dir is not None:
                out["results"][c][s]["log"] = str(Path(rec["log"]).relative_to(out_dir))
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
                                    client_env, log_dir): c for c in order}
                for f in cf.as_completed(futs):
                    c = futs[f]
                    recs = f.result()
                    for s in per_client[c]:
                        record(c, s, recs[s])
            else:
                # Interleave clients so that concurrent jobs are different programs.
                futs1 = {pool.submit(run_scenario, c, cmd, broker.bootstrap, s, timeout, rf, client_env, log_dir): (c, s)
                         for c, cmd, s in tasks}
                for f in cf.as_completed(futs1):
                    c, s = futs1[f]
                    record(c, s, f.result())
    finally:
        broker.stop(keep_dir=True)
        failed = any(r.get("log") for per in out["results"].values() for r in per.values())
        if failed and out_dir is not None:
            copy_broker_logs(broker, out_dir / "logs" / kind / "broker")
        if not keep_dirs:
            shutil.rmtree(broker.workdir, ignore_errors=True)
        if keep_dirs:
            log(f"{kind}: data and logs kept in {broker.workdir}")
    out["broker"]["seconds"] = round(time.monotonic() - t0, 1)
    return out
