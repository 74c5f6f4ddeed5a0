"""replication-offset-checkpoint: Kafka's checkpoint text format, damaged files ignored."""

from __future__ import annotations

import logging

import pytest

from kbroker.replication import hw_checkpoint


def test_round_trip_in_kafkas_format(tmp_path):
    entries = {("b", 1): 17, ("a", 0): 42}
    hw_checkpoint.write(tmp_path, entries)
    assert (tmp_path / "replication-offset-checkpoint").read_bytes() == b"0\n2\na 0 42\nb 1 17\n"
    assert hw_checkpoint.read(tmp_path) == entries
    assert not (tmp_path / "replication-offset-checkpoint.tmp").exists()


def test_missing_file_is_none(tmp_path):
    assert hw_checkpoint.read(tmp_path) is None


@pytest.mark.parametrize("data", [b"", b"1\n0\n", b"0\n2\na 0 1\n", b"0\n1\na 0\n", b"0\n1\na x 1\n", b"\xff\xfe"])
def test_damaged_file_is_ignored_with_a_warning(tmp_path, caplog, data):
    path = tmp_path / "replication-offset-checkpoint"
    path.write_bytes(data)
    with caplog.at_level(logging.WARNING):
        assert hw_checkpoint.read(tmp_path) is None
    assert "damaged" in caplog.text
    assert path.read_bytes() == data  # left as it was
