"""Builders the composition root (:mod:`kbroker.broker`) wires its sub-systems with."""
