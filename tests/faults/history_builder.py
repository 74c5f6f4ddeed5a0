"""Hand-made fault histories shared by the checker tests (moved from test_checker)."""

from __future__ import annotations


class H:
    """Builds a history by hand."""

    def __init__(self) -> None:
        self.ops: list[dict] = []

    def op(self, process, type_, f, **fields):
        self.ops.append({"index": len(self.ops), "time": len(self.ops) * 0.01, "process": process, "type": type_,
                         "f": f, **fields})
        return self

    def send(self, process, value, partition, offset, type_="ok"):
        self.op(process, "invoke", "send", value=value, partition=partition)
        if type_ == "ok":
            return self.op(process, "ok", "send", value=value, partition=partition, offset=offset)
        return self.op(process, type_, "send", value=value, partition=partition)

    def poll(self, process, *values):
        self.op(process, "invoke", "poll")
        return self.op(process, "ok", "poll", values=[list(v) for v in values])
