"""Jepsen-style fault-injection harness for kbroker (single node): history, checker, workload, runner."""
