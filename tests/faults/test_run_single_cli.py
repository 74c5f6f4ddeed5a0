"""``scripts/faults/run_single.py``'s options reach the run's configuration (no broker started: the
run is replaced), and the producers get the message timeout asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faults.run_single as run_single
import pytest
from faults.runner import RunConfig
from faults.workload import Workload


def test_the_pause_and_timeout_options_reach_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[RunConfig] = []

    def fake_run(config: RunConfig) -> dict[str, Any]:
        seen.append(config)
        return {"valid": True, "anomaly_counts": {}, "ops": {}, "anomalies": {}}

    monkeypatch.setattr(run_single, "run", fake_run)
    assert run_single.main(["--cycles", "2", "--out", str(tmp_path), "--pause-probability", "1", "--pause-max", "8",
                            "--after-resume", "3", "--message-timeout-ms", "5000",
                            "--producer-debug", "eos,msg,protocol"]) == 0
    [config] = seen
    assert (config.pause_probability, config.pause_max, config.after_resume) == (1.0, 8.0, 3.0)
    assert (config.message_timeout_ms, config.producer_debug) == (5000, "eos,msg,protocol")
    defaults = RunConfig(out=tmp_path)
    assert (defaults.pause_max, defaults.after_resume, defaults.message_timeout_ms) == (1.0, 0.0, 60000)


def test_a_negative_after_resume_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        run_single.main(["--out", str(tmp_path), "--after-resume", "-1"])


def test_the_workload_passes_its_message_timeout_to_librdkafka(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import faults.workload as workload
    from faults.history import History

    configs: list[dict[str, Any]] = []

    class Refused(Exception):
        pass

    def producer(config: dict[str, Any]) -> Any:
        configs.append(config)
        raise Refused

    monkeypatch.setattr(workload, "Producer", producer)
    history = History(tmp_path / "history.jsonl")
    try:
        w = Workload(history, "127.0.0.1:1", "t", 1, message_timeout_ms=5000)
        with pytest.raises(Refused):
            w._producer_run("p0", 0)
    finally:
        history.close()
    assert configs[0]["message.timeout.ms"] == 5000 and configs[0]["enable.idempotence"] is True
