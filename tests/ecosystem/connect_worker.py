"""A Kafka Connect distributed worker (connect-runtime 4.4.0) run as a subprocess, driven by its REST API."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import ecosystem_jars
import reference_kafka
from waiting import wait_until


class ConnectWorker:
    def __init__(self, work: Path, bootstrap: str, group: str, extra: dict[str, str] | None = None) -> None:
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.port = reference_kafka.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.group = group
        self.props = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter",
            "config.storage.topic": f"{group}-configs",
            "offset.storage.topic": f"{group}-offsets",
            "status.storage.topic": f"{group}-status",
            "config.storage.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "status.storage.replication.factor": "1",
            "offset.storage.partitions": "3",
            "status.storage.partitions": "2",
            "offset.flush.interval.ms": "500",
            "listeners": self.url,
            "rest.advertised.host.name": "127.0.0.1",
            "rest.advertised.port": str(self.port),
            # The plugins (Kafka's own: FileStream, MirrorMaker 2, the converters and transforms) are
            # found through their ServiceLoader manifests; hybrid_warn also scanned every jar by
            # reflection (8-14 s of CPU per scan on two loaded cores) and said "All plugins have
            # ServiceLoader manifests, consider reconfiguring plugin.discovery=service_load".
            "plugin.discovery": "service_load",
            **(extra or {}),
        }
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def log_file(self) -> Path:
        return self.work / f"worker-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        conf = self.work / "worker.properties"
        conf.write_text("".join(f"{k}={v}\n" for k, v in self.props.items()))
        log4j = ecosystem_jars.log4j_file(self.work / f"log4j2-{self.starts}.properties", self.log_file)
        cmd = ecosystem_jars.java_command(ecosystem_jars.CONNECT_DISTRIBUTED, [str(conf)], log4j=log4j)
        out = open(self.work / f"stdout-{self.starts}.log", "wb")
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=self.work,
                                     start_new_session=True)
        out.close()
        wait_until(self._ready, timeout=180, interval=0.1, message="the Connect worker's REST API",
                   details=self.tail)

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"Connect worker exited {self.proc.returncode}: {self.tail()}")
        try:
            status, _ = self.request("GET", "/connectors")
        except OSError:
            return False
        return status == 200

    def tail(self, n: int = 60) -> str:
        lines: list[str] = []
        for f in (self.log_file, self.work / f"stdout-{self.starts}.log"):
            if f.exists():
                lines += f.read_text(errors="replace").splitlines()[-n:]
        return "\n".join(lines)

    def errors(self) -> list[str]:
        return [line for line in self.log_file.read_text(errors="replace").splitlines() if "] ERROR " in line]

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")

    def create_connector(self, name: str, config: dict[str, str]) -> None:
        status, body = self.request("POST", "/connectors", {"name": name, "config": config})
        assert status == 201, (status, body)

    def running(self, name: str, tasks: int = 1) -> bool:
        status, body = self.request("GET", f"/connectors/{name}/status")
        if status != 200 or not isinstance(body, dict):
            return False
        states = [body["connector"]["state"]] + [t["state"] for t in body.get("tasks", [])]
        if "FAILED" in states:
            raise AssertionError(f"connector {name} failed: {json.dumps(body)}")
        return len(body.get("tasks", [])) == tasks and set(states) == {"RUNNING"}

    def wait_running(self, name: str, tasks: int = 1) -> None:
        wait_until(lambda: self.running(name, tasks), timeout=120, interval=0.1,
                   message=f"connector {name} RUNNING", details=self.tail)

    def stop(self) -> None:
        """A clean stop (SIGTERM): the worker commits its source offsets and leaves the group."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
