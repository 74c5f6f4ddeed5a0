"""The JVMs of scripts/reference_kafka.py: the java command lines (``java_cmd``: JVM flags, the tools'
class-data-sharing archive) and Kafka's tools run in warm JVMs (``run_tool``, scripts/reference-kafka/
ToolServer.java). Imported by reference_kafka, which re-exports these names."""

from __future__ import annotations

import atexit
import base64
import hashlib
import locale
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

from reference_kafka_base import CACHE, ROOT, ensure_kafka, free_port

# JVM flags. QUICK_JVM (the default): the client JIT only and the serial collector, for the tools and the
# brokers of tests, which live seconds to minutes and do little work: a broker's start costs ~40% less
# CPU (single node to ready: 2.9-3.3 s of CPU against 5.2-5.6 s with G1 and C2; a StorageTool format
# 1.1 s against 1.5 s), which a two-core machine running the suite gets back. FULL_JIT: G1 and the
# optimising JIT, for benchmarks that measure Kafka's speed (bench_failover.py).
QUICK_JVM = ["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
FULL_JIT = ["-XX:+UseG1GC"]


# A class-data-sharing archive (AppCDS, JDK 13+) of the classes one Kafka tool run loads (TopicCommand:
# the admin client, the common config, network and logging classes), used by every quick JVM on the
# same classpath, brokers included: the JVM maps those classes instead of loading and verifying them.
# A TopicCommand costs 0.39-0.45 s of user CPU with it against 0.65-0.67 s without (wall 2.2-2.8 s
# against 2.4-4.1 s, loaded machine). Made once per cache (a few seconds), written elsewhere and
# renamed, as a truncated archive crashes the JVM; one that no longer matches the JDK or the jars is
# ignored by the JVM (-Xshare:auto, the default), its messages silenced (they go to stdout).
_CDS_LOG_OFF = ["-Xlog:cds=off", "-Xlog:cds+dynamic=off"]
_cds_lock = threading.Lock()
_cds_tried = False


def cds_archive(libs: Path) -> Path | None:
    """The tools' CDS archive for ``libs`` (made on first use); None when the JVM cannot make one."""
    global _cds_tried
    java = shutil.which("java")
    if java is None:
        return None
    real = Path(java).resolve()
    key = f"{real}:{real.stat().st_size}:{real.stat().st_mtime_ns}:{libs.resolve()}"
    archive = CACHE / "cds" / f"tools-{uuid.uuid5(uuid.NAMESPACE_URL, key).hex[:12]}.jsa"
    with _cds_lock:
        if archive.exists() or _cds_tried:
            return archive if archive.exists() else None
        _cds_tried = True
        archive.parent.mkdir(parents=True, exist_ok=True)
        tmp = archive.with_name(f"{archive.name}.{os.getpid()}.tmp")
        with tempfile.TemporaryDirectory(prefix="kafka-cds-") as work:
            conf = Path(work) / "admin.properties"
            conf.write_text("default.api.timeout.ms=1500\nrequest.timeout.ms=1000\n")
            # Against a closed port: the tool loads its classes, times out and exits (status 1).
            cmd = ["java", "-Xmx256m", "-Xms128m", *QUICK_JVM, *_CDS_LOG_OFF, f"-XX:ArchiveClassesAtExit={tmp}",
                   "-Djava.awt.headless=true", "-cp", f"{libs}/*", "org.apache.kafka.tools.TopicCommand",
                   "--bootstrap-server", f"127.0.0.1:{free_port()}", "--list", "--command-config", str(conf)]
            try:
                res = subprocess.run(cmd, capture_output=True, timeout=120, cwd=work)
            except subprocess.TimeoutExpired:
                res = None
        if res is not None and res.returncode in (0, 1) and tmp.exists() and tmp.stat().st_size > 0:
            os.replace(tmp, archive)
        tmp.unlink(missing_ok=True)
        return archive if archive.exists() else None


def java_cmd(libs: Path, main: str, args: list[str], heap: str, log4j: Path | None,
             quick: bool = True) -> list[str]:
    cmd = ["java", f"-Xmx{heap}", f"-Xms{min_heap(heap)}", *(QUICK_JVM if quick else FULL_JIT),
           "-Djava.awt.headless=true"]
    archive = cds_archive(libs) if quick else None
    if archive is not None:
        cmd += [f"-XX:SharedArchiveFile={archive}", *_CDS_LOG_OFF]
    if log4j is not None:
        cmd.append(f"-Dlog4j2.configurationFile={log4j}")
    return cmd + ["-cp", f"{libs}/*", main, *args]


def tool_command(main_class: str, args: list[str], heap: str = "512m") -> list[str]:
    """A command running one of Kafka's tools from the cached jars, e.g.
    tool_command("org.apache.kafka.tools.ProducerPerformance", ["--topic", "t", ...])."""
    return java_cmd(ensure_kafka(), main_class, args, heap, None)


# Kafka's tools start quicker with the JIT at its first tier; they run too briefly to need more.
TOOL_ENV = {"JAVA_TOOL_OPTIONS": "-XX:TieredStopAtLevel=1"}

# run_tool runs the tools in warm JVMs (scripts/reference-kafka/ToolServer.java) rather than a JVM
# each: a tool run then costs its own work, not a JVM start, the loading of its classes and their
# warm-up (about a second of CPU each on this project's machines). Each run still has its own
# arguments, stdin, stdout, stderr and exit code, the code a JVM of its own would end with (see the
# Java file). REFERENCE_KAFKA_TOOL_JVM=each starts a JVM for every tool run, as the scripts do.
TOOL_SERVER_SOURCE = ROOT / "scripts" / "reference-kafka" / "ToolServer.java"
# Tools whose output order follows hash codes of enum constants (kafka-acls prints the resources of
# a HashMap keyed by ResourcePattern, whose hash includes its ResourceType's identity hash code): the
# same from run to run only in a fresh JVM, so they get one each.
FRESH_JVM_TOOLS = frozenset({"org.apache.kafka.tools.AclCommand"})
_tool_jvms_lock = threading.Lock()
_idle_tool_jvms: dict[str, list[ToolJvm]] = {}


def tool_server_classes(libs: Path) -> Path:
    """ToolServer.java compiled against ``libs`` into the cache (once per source and jar set)."""
    key = hashlib.sha256(TOOL_SERVER_SOURCE.read_bytes() + str(libs.resolve()).encode()).hexdigest()[:12]
    classes = CACHE / "tool-server" / key
    if (classes / "ToolServer.class").exists():
        return classes
    classes.parent.mkdir(parents=True, exist_ok=True)
    tmp = classes.with_name(f"{key}.{os.getpid()}.{threading.get_ident()}.tmp")
    subprocess.run(["javac", "-nowarn", "-d", str(tmp), "-cp", f"{libs}/*", str(TOOL_SERVER_SOURCE)], check=True,
                   capture_output=True)
    try:
        os.replace(tmp, classes)
    except OSError:  # made meanwhile by another process
        shutil.rmtree(tmp, ignore_errors=True)
    return classes


class ToolJvm:
    """One warm JVM running Kafka's tools one at a time (ToolServer.java)."""

    def __init__(self, heap: str) -> None:
        libs = ensure_kafka()
        classes = tool_server_classes(libs)
        cmd = java_cmd(libs, "ToolServer", [], heap, None)
        cp = cmd.index("-cp") + 1
        cmd[cp] += f":{classes}"  # after the jars: the CDS archive's class path stays a prefix
        # ToolServer runs the shutdown hooks a tool gives Runtime.addShutdownHook at the tool's end
        cmd.insert(cp - 1, "--add-opens=java.base/java.lang=ALL-UNNAMED")
        self.heap = heap
        self._buf = b""
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        try:
            if self._reply(time.monotonic() + 120) != "READY":
                raise RuntimeError(f"the tool JVM exited with code {self.proc.wait()} before it was ready")
        except BaseException:
            self.kill()
            raise

    def _reply(self, deadline: float) -> str | None:
        """The next line of the JVM's control output (JVM warnings there are skipped); None at its end."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            while b"\n" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                if not select.select([fd], [], [], left)[0]:
                    continue
                chunk = os.read(fd, 4096)
                if not chunk:
                    return None
                self._buf += chunk
            line, _, self._buf = self._buf.partition(b"\n")
            text = line.decode(errors="replace").strip()
            if text == "READY" or text.startswith("DONE "):
                return text

    def run(self, main_class: str, args: list[str], stdin: Path | None, stdout: Path, stderr: Path,
            timeout: float) -> tuple[int, bool]:
        """Run one tool to its end: (its exit code, whether this JVM has ended)."""
        assert self.proc.stdin is not None
        fields = [main_class, str(stdin or ""), str(stdout), str(stderr), *args]
        line = " ".join(base64.b64encode(f.encode()).decode() for f in fields) + "\n"
        try:
            self.proc.stdin.write(line.encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # ended: its exit code is read below
        reply = self._reply(time.monotonic() + timeout)
        if reply is None:  # the tool ended the JVM itself (System.exit): its code is the tool's
            return self.proc.wait(), True
        _, code, retire = reply.split()
        if retire == "1":
            self.proc.wait()
        return int(code), retire == "1"

    def close(self) -> None:
        """End the JVM (it ends when its stdin closes)."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass


def _close_idle_tool_jvms() -> None:
    with _tool_jvms_lock:
        jvms = [j for idle in _idle_tool_jvms.values() for j in idle]
        _idle_tool_jvms.clear()
    for jvm in jvms:
        jvm.close()


atexit.register(_close_idle_tool_jvms)


def run_tool(main_class: str, args: list[str], *, stdin: str | None = None, timeout: float = 120,
             heap: str = "256m") -> subprocess.CompletedProcess:
    """Run one of Kafka's tools (see ``tool_command``) to its end, its output captured as text."""
    cmd = tool_command(main_class, args, heap=heap)
    if os.environ.get("REFERENCE_KAFKA_TOOL_JVM") == "each" or main_class in FRESH_JVM_TOOLS:
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, **TOOL_ENV))
    with _tool_jvms_lock:
        idle = _idle_tool_jvms.setdefault(heap, [])
        jvm = idle.pop() if idle else None
    if jvm is None or jvm.proc.poll() is not None:
        jvm = ToolJvm(heap)
    with tempfile.TemporaryDirectory(prefix="kafka-tool-") as work:
        files = Path(work)
        if stdin is not None:
            (files / "stdin").write_text(stdin)
        try:
            code, ended = jvm.run(main_class, args, files / "stdin" if stdin is not None else None,
                                  files / "stdout", files / "stderr", timeout)
        except TimeoutError:
            jvm.kill()
            raise subprocess.TimeoutExpired(cmd, timeout, _text(files / "stdout"), _text(files / "stderr")) from None
        except BaseException:
            jvm.kill()
            raise
        result = subprocess.CompletedProcess(cmd, code, _text(files / "stdout"), _text(files / "stderr"))
    if not ended:
        with _tool_jvms_lock:
            _idle_tool_jvms.setdefault(heap, []).append(jvm)
    return result


def _text(path: Path) -> str:
    """A tool's output as subprocess.run(text=True) gives it: locale-decoded, universal newlines."""
    if not path.exists():
        return ""
    data = path.read_bytes().decode(locale.getpreferredencoding(False))
    return data.replace("\r\n", "\n").replace("\r", "\n")



def min_heap(heap: str) -> str:
    return "128m" if heap != "128m" else heap
