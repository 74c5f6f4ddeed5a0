"""A scenario that does not pass leaves its client's log (compat/run_matrix.py's write_log, the
Python programs' harness.ScenarioLog); one that passes leaves nothing. Run with a scenario program
of this test's own (the harness of compat/python/ driving a fake client library's loggers), no
broker."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import matrix_runs
import run_matrix

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = '''
import logging
import threading

from harness import ScenarioError, main

coordinator = logging.getLogger("fakeclient.coordinator")
network = logging.getLogger("fakeclient.network")


def passes(ctx):
    coordinator.debug("debug line of the passing scenario")


def fails(ctx):
    coordinator.debug("JoinGroup round %d orphaned", 7)
    network.debug("a network debug line, below the INFO kept for other loggers")
    network.info("an info line of another logger")
    raise ScenarioError("timed out waiting for three members sharing six partitions")


def hangs(ctx):
    coordinator.debug("waiting for an answer that never comes")
    threading.Event().wait()


def hangs_loudly(ctx):
    for i in range(30000):  # more than the harness keeps, and far more than a pipe holds
        coordinator.debug("heartbeat %d of a member that waits for nothing", i)
    threading.Event().wait()


main("fakeclient", "1.0", {"passes": passes, "fails": fails, "hangs": hangs, "hangs_loudly": hangs_loudly},
     debug_loggers=("fakeclient.coordinator",))
'''


# The scenario timeout the hanging scenarios wait out, each time: the fake program starts, logs (30000
# lines for hangs_loudly) and reaches its wait in 0.25 s on a loaded machine (load 7); 8 s leaves room
# for a CI machine at load 100+.
HANG_TIMEOUT = 8


def _program(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    prog = tmp_path / "fake_scenarios.py"
    prog.write_text(PROGRAM)
    return [sys.executable, str(prog)], {"PYTHONPATH": str(ROOT / "compat" / "python")}


def test_a_failed_scenario_leaves_its_client_debug_log(tmp_path: Path) -> None:
    cmd, env = _program(tmp_path)
    logs = tmp_path / "logs"
    res = run_matrix.run_batch("fakeclient", cmd, "127.0.0.1:1", ["passes", "fails", "passes"], 120,
                               client_env=env, log_dir=logs)
    assert [res[s]["status"] for s in ("passes", "fails")] == ["pass", "fail"]
    assert "log" not in res["passes"]
    path = Path(res["fails"]["log"])
    assert path == logs / "fakeclient" / "fails.log"
    text = path.read_text()
    assert text.startswith("# fakeclient / fails: fail after ")
    assert "fakeclient.coordinator DEBUG JoinGroup round 7 orphaned" in text
    assert "fakeclient.network INFO an info line of another logger" in text
    assert "a network debug line" not in text
    assert "ScenarioError: timed out waiting for three members sharing six partitions" in text  # the traceback
    assert "--- end of client log (failed, " in text
    # Only the failed scenario's client log: the passing one's debug line is not written anywhere.
    assert "debug line of the passing scenario" not in text
    assert sorted(p.name for p in logs.rglob("*") if p.is_file()) == ["fails.log"]
    tail = run_matrix.log_tail(path, 3)
    assert len(tail.splitlines()) == 3 and "ScenarioError" in tail


def test_a_timed_out_scenario_leaves_the_log_its_program_writes_on_sigterm(tmp_path: Path) -> None:
    cmd, env = _program(tmp_path)
    res = run_matrix.run_batch("fakeclient", cmd, "127.0.0.1:1", ["hangs", "passes"], HANG_TIMEOUT,
                               client_env=env, log_dir=tmp_path / "logs")
    assert res["hangs"]["status"] == "timeout" and res["passes"]["status"] == "pass"
    text = Path(res["hangs"]["log"]).read_text()
    assert "fakeclient.coordinator DEBUG waiting for an answer that never comes" in text
    assert "--- end of client log (ended by SIGTERM, " in text


def test_one_process_a_scenario_leaves_the_log_too(tmp_path: Path) -> None:
    cmd, env = _program(tmp_path)
    logs = tmp_path / "logs"
    passed = matrix_runs.run_scenario("fakeclient", cmd, "127.0.0.1:1", "passes", 120, client_env=env, log_dir=logs)
    failed = matrix_runs.run_scenario("fakeclient", cmd, "127.0.0.1:1", "fails", 120, client_env=env, log_dir=logs)
    assert passed["status"] == "pass" and "log" not in passed
    assert failed["status"] == "fail"
    assert "JoinGroup round 7 orphaned" in Path(failed["log"]).read_text()
    assert not (logs / "fakeclient" / "passes.log").exists()
    # A timed-out program's log is read while it writes it, however long it is.
    hung = matrix_runs.run_scenario("fakeclient", cmd, "127.0.0.1:1", "hangs_loudly", HANG_TIMEOUT, client_env=env,
                                    log_dir=logs)
    assert hung["status"] == "timeout"
    lines = Path(hung["log"]).read_text().splitlines()
    # The first and the last lines of the scenario are kept (harness.HEAD_LINES, TAIL_LINES), the
    # ones between counted.
    assert lines[-1] == "--- end of client log (ended by SIGTERM, 20000 lines)"
    assert lines[-2].endswith("heartbeat 29999 of a member that waits for nothing")
    assert lines[3].endswith("heartbeat 0 of a member that waits for nothing")  # after result, mark, heading
    assert "--- 10001 lines left out" in lines
    assert lines[lines.index("--- 10001 lines left out") - 1].endswith("heartbeat 9998 of a member that waits for nothing")


def test_a_program_without_scenario_marks_gets_its_stderr_between_result_lines(tmp_path: Path) -> None:
    """A program that is not the Python harness (the Java, Go and Node ones) writes no SCENARIO_MARK:
    a failed scenario's log is its stderr around its result line (which lines exactly depends on when
    the two pipes are read: _Due's windows are checked below)."""
    prog = tmp_path / "plain.py"
    prog.write_text(
        "import json, sys\n"
        "for name in sys.argv[2:]:\n"
        "    print(f'stderr of {name}', file=sys.stderr, flush=True)\n"
        "    print(json.dumps({'scenario': name, 'ok': name != 'b', 'error': 'b went wrong'}), flush=True)\n")
    logs = tmp_path / "logs"
    res = run_matrix.run_batch("plain", [sys.executable, str(prog)], "127.0.0.1:1", ["a", "b", "c", "d"], 120,
                               log_dir=logs)
    assert [res[s]["status"] for s in "abcd"] == ["pass", "fail", "pass", "pass"]
    text = (logs / "plain" / "b.log").read_text()
    assert text.startswith("# plain / b: fail after None s: b went wrong\n")
    assert sorted(p.name for p in logs.rglob("*") if p.is_file()) == ["b.log"]


def test_the_lines_of_a_program_without_marks() -> None:
    """Without SCENARIO_MARK a failed scenario's lines run from the result line two before its own to
    the one two after it (or the program's end)."""
    cuts = [0, 10, 20, 30]  # the program's start, then three result lines (the third one failed)
    due = matrix_runs._Due({"scenario": "c"}, cuts)
    assert due.plain_lines(False) is None
    assert due.plain_lines(True) == (10, None)
    cuts.append(40)
    assert due.plain_lines(False) is None
    cuts.append(50)
    assert due.plain_lines(False) == (10, 50)


def test_stderr_kept_between_result_lines() -> None:
    """run_batch keeps a program's stderr from the result line before a scenario's to the one after
    it, dropping what no pending log needs and more than twice LOG_LINES."""
    err = matrix_runs._Stderr()
    for i in range(5):
        err.add(f"{i}\n")
    cut = err.mark()
    err.add("5\n")
    assert err.between(2, cut) == ["2\n", "3\n", "4\n"]
    err.drop_before(3)
    assert err.between(0) == ["3\n", "4\n", "5\n"] and err.between(cut) == ["5\n"]
    for i in range(2 * matrix_runs.LOG_LINES):
        err.add(f"x{i}\n")
    kept = err.between(0)
    assert len(kept) <= 2 * matrix_runs.LOG_LINES and kept[-1] == f"x{2 * matrix_runs.LOG_LINES - 1}\n"
    assert err.mark() == 6 + 2 * matrix_runs.LOG_LINES


def test_matrix_json_names_the_log_relative_to_the_out_dir(tmp_path: Path, monkeypatch) -> None:
    """run_broker_matrix records a failed scenario's log as a path under its out-dir and copies the
    broker's own logs there."""
    cmd, env = _program(tmp_path)
    broker_log = tmp_path / "broker" / "kbroker.log"
    broker_log.parent.mkdir()
    broker_log.write_text("the broker's log\n")

    class FakeBroker:
        bootstrap = "127.0.0.1:1"
        workdir = tmp_path / "broker"
        client_env = env

        def log_files(self) -> list[Path]:
            return [broker_log]

        def stop(self, keep_dir: bool = False) -> None:
            pass

    monkeypatch.setattr(matrix_runs, "start_broker", lambda kind: FakeBroker())
    out = tmp_path / "out"
    probes = {"fakeclient": ("1.0", ["passes", "fails"], "")}
    r = matrix_runs.run_broker_matrix("kbroker", {"fakeclient": cmd}, probes, ["passes", "fails"], 120, 1,
                                      keep_dirs=True, batch=True, out_dir=out)
    res = r["results"]["fakeclient"]
    assert res["fails"]["log"] == "logs/kbroker/fakeclient/fails.log" and "log" not in res["passes"]
    assert "JoinGroup round 7 orphaned" in (out / res["fails"]["log"]).read_text()
    assert (out / "logs" / "kbroker" / "broker" / "kbroker.log").read_text() == "the broker's log\n"
    json.dumps(r)  # as run_matrix writes it into matrix.json
    assert os.path.isdir(FakeBroker.workdir)  # --keep-dirs
