"""``scripts/record_golden.py --java``: record batches built by Apache Kafka's own kafka-clients 4.4.0
(``MemoryRecordsBuilder`` for every codec, ``withEndTransactionMarker``, ``setMaxTimestamp``) written to
tests/protocol/golden/java/, and batches built by protocol.records.build_batch validated and read back
by that same library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from golden_recorder import GOLDEN

ROOT = Path(__file__).resolve().parent.parent


# --- record batches from Apache Kafka's own client library ----------------------------------------

JAVA_T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z

JAVA_CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}

JAVA_BATCH = {
    "base_offset": 100,
    "producer_id": 4242,
    "producer_epoch": 3,
    "base_sequence": 7,
    "partition_leader_epoch": 5,
}


def java_records() -> list[dict[str, Any]]:
    """Five records: a null key, a null value (tombstone), headers, a timestamp going backwards."""
    out = []
    for i in range(5):
        out.append(
            {
                "key": None if i == 3 else f"key-{i}",
                "value": None if i == 4 else f"java golden record {i} " * (i + 1),
                "headers": [["h", f"v{i}"], ["null-header", None]] if i % 2 else [],
                "timestamp": JAVA_T0 - 5 if i == 2 else JAVA_T0 + 10 * i,
            }
        )
    return out


JAVA_SOURCE = r"""
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.util.*;
import org.apache.kafka.common.compress.Compression;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.record.internal.*;

public class GoldenBatches {
    static byte[] bytes(String s) { return s == null ? null : s.getBytes(StandardCharsets.UTF_8); }
    static String str(ByteBuffer b) {
        if (b == null) return "null";
        byte[] a = new byte[b.remaining()]; b.get(a);
        return "\"" + Base64.getEncoder().encodeToString(a) + "\"";
    }
    static void write(Path dir, String name, MemoryRecords records) throws Exception {
        ByteBuffer b = records.buffer().duplicate();
        byte[] a = new byte[b.remaining()]; b.get(a);
        Files.write(dir.resolve(name), a);
    }
    // args: outDir, oursDir, then lines on stdin: timestamp \t key|-NULL- \t value|-NULL- \t h1=v1;h2=-NULL-
    public static void main(String[] args) throws Exception {
        Path out = Paths.get(args[0]);
        Path ours = Paths.get(args[1]);
        List<String[]> recs = new ArrayList<>();
        Scanner in = new Scanner(System.in, "UTF-8");
        while (in.hasNextLine()) { String l = in.nextLine(); if (!l.isEmpty()) recs.add(l.split("\t", -1)); }
        String[] codecs = {"none", "gzip", "snappy", "lz4", "zstd"};
        for (String codec : codecs) {
            ByteBuffer buf = ByteBuffer.allocate(1 << 16);
            MemoryRecordsBuilder b = MemoryRecords.builder(buf, RecordBatch.CURRENT_MAGIC_VALUE,
                Compression.of(codec).build(), TimestampType.CREATE_TIME, 100L, RecordBatch.NO_TIMESTAMP,
                4242L, (short) 3, 7, false, 5);
            for (String[] r : recs) {
                List<Header> hs = new ArrayList<>();
                if (!r[3].isEmpty()) for (String kv : r[3].split(";")) {
                    String[] p = kv.split("=", 2);
                    hs.add(new RecordHeader(p[0], p[1].equals("-NULL-") ? null : bytes(p[1])));
                }
                b.append(Long.parseLong(r[0]), r[1].equals("-NULL-") ? null : bytes(r[1]),
                    r[2].equals("-NULL-") ? null : bytes(r[2]), hs.toArray(new Header[0]));
            }
            MemoryRecords mr = b.build();
            write(out, "batch_" + codec + ".bin", mr);
            if (codec.equals("none")) {
                MutableRecordBatch batch = mr.batches().iterator().next();
                batch.setMaxTimestamp(TimestampType.LOG_APPEND_TIME, 1767225601000L);
                write(out, "batch_none_log_append_time.bin", mr);
            }
        }
        write(out, "control_commit.bin", MemoryRecords.withEndTransactionMarker(200L, 1767225600000L, 5, 4242L,
            (short) 3, new EndTransactionMarker(ControlRecordType.COMMIT, 17)));
        write(out, "control_abort.bin", MemoryRecords.withEndTransactionMarker(201L, 1767225600000L, 5, 4242L,
            (short) 3, new EndTransactionMarker(ControlRecordType.ABORT, 17)));
        // Read what protocol.records built: validate CRCs and print every record as JSON lines.
        try (DirectoryStream<Path> files = Files.newDirectoryStream(ours, "*.bin")) {
            List<Path> sorted = new ArrayList<>(); files.forEach(sorted::add); Collections.sort(sorted);
            for (Path f : sorted) {
                MemoryRecords mr = MemoryRecords.readableRecords(ByteBuffer.wrap(Files.readAllBytes(f)));
                for (MutableRecordBatch batch : mr.batches()) {
                    batch.ensureValid();
                    for (org.apache.kafka.common.record.internal.Record r : batch) {
                        StringBuilder h = new StringBuilder("[");
                        for (Header x : r.headers()) {
                            if (h.length() > 1) h.append(",");
                            h.append("[\"").append(x.key()).append("\",")
                             .append(x.value() == null ? "null" : "\"" + Base64.getEncoder().encodeToString(x.value()) + "\"").append("]");
                        }
                        h.append("]");
                        System.out.println("{\"file\":\"" + f.getFileName() + "\",\"codec\":\"" + batch.compressionType().name
                            + "\",\"offset\":" + r.offset() + ",\"timestamp\":" + r.timestamp() + ",\"key\":" + str(r.key())
                            + ",\"value\":" + str(r.value()) + ",\"headers\":" + h + "}");
                    }
                }
            }
        }
    }
}
"""


def record_java() -> list[Path]:
    import base64
    import os
    import subprocess
    import tempfile

    from kbroker_protocol.records import Record, build_batch

    libs = ROOT / ".cache" / f"kafka-{os.environ.get('REFERENCE_KAFKA_VERSION', '4.4.0')}" / "libs"
    if not libs.is_dir():
        raise SystemExit(f"no {libs}: run scripts/reference_kafka.py once to fetch Kafka's jars")
    out_dir = GOLDEN / "java"
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*"):
        old.unlink()
    recs = java_records()
    ours = [
        Record(
            key=None if r["key"] is None else r["key"].encode(),
            value=None if r["value"] is None else r["value"].encode(),
            headers=tuple((k, None if v is None else v.encode()) for k, v in r["headers"]),
            timestamp=r["timestamp"],
        )
        for r in recs
    ]
    lines = "".join(
        "\t".join(
            [
                str(r["timestamp"]),
                "-NULL-" if r["key"] is None else r["key"],
                "-NULL-" if r["value"] is None else r["value"],
                ";".join(f"{k}={'-NULL-' if v is None else v}" for k, v in r["headers"]),
            ]
        )
        + "\n"
        for r in recs
    )
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "GoldenBatches.java"
        src.write_text(JAVA_SOURCE)
        ours_dir = Path(tmp) / "ours"
        ours_dir.mkdir()
        for name, codec in JAVA_CODECS.items():
            (ours_dir / f"ours_{name}.bin").write_bytes(build_batch(ours, compression=codec, **JAVA_BATCH))
            if codec == 2:
                (ours_dir / "ours_snappy_raw.bin").write_bytes(
                    build_batch(ours, compression=codec, snappy_xerial=False, **JAVA_BATCH)
                )
        classpath = os.pathsep.join(str(p) for p in sorted(libs.glob("*.jar")))
        proc = subprocess.run(
            ["java", "-cp", classpath, str(src), str(out_dir), str(ours_dir)],
            input=lines,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"java failed:\n{proc.stderr}")
    read_back = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]

    def b64(s: str | None) -> str | None:
        return None if s is None else base64.b64decode(s).decode()

    verified = {}
    for f in sorted({r["file"] for r in read_back}):
        got = [r for r in read_back if r["file"] == f]
        as_ours = [
            {
                "key": b64(r["key"]),
                "value": b64(r["value"]),
                "headers": [[k, b64(v)] for k, v in r["headers"]],
                "timestamp": r["timestamp"],
            }
            for r in got
        ]
        if as_ours != recs or [r["offset"] for r in got] != list(range(100, 105)):
            raise SystemExit(f"Kafka's client read {f} differently:\n{got}")
        verified[f] = got[0]["codec"]
    if len(verified) != len(JAVA_CODECS) + 1:
        raise SystemExit(f"Kafka's client read only {sorted(verified)}")
    doc = {
        "kafka_clients": "4.4.0",
        "batch": JAVA_BATCH,
        "records": recs,
        "log_append_time": JAVA_T0 + 1000,
        "control": {
            "base_offset": {"commit": 200, "abort": 201},
            "timestamp": JAVA_T0,
            "coordinator_epoch": 17,
        },
        "verified_by_kafka_clients": verified,
    }
    (out_dir / "batches.json").write_text(json.dumps(doc, indent=1) + "\n")
    return sorted(out_dir.glob("*"))
