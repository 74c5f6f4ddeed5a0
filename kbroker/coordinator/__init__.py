"""Coordinators (consumer groups, share groups, transactions) over the broker's internal topics.

The composition root makes and wires them (:func:`kbroker.wiring.coordinators.wire_coordinators`,
when first needed: :class:`kbroker.wiring.coordinators.Coordinators`); each is a service with
``start()``/``stop()`` (either may be a coroutine) that the broker runs after its logs and
metadata are loaded (or at once when built later).
"""
