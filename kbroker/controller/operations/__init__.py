"""The controller's operations: what the active controller runs for each admin API a broker
forwards to it (Kafka's ``ControllerApis`` checks, then the controller's decision and its records).

One module per API (or per pair of APIs sharing their flow); each operation takes
``(host, request, api_version, requester)`` and returns the response body, authorizing the
``requester`` (the Envelope's principal) as Kafka's ControllerApis does. :mod:`.table` keys them
by API key (:data:`~kbroker.controller.operations.table.OPERATIONS`, written out there) and
:mod:`.local` runs them on this node's controller (:class:`~kbroker.controller.operations.local.LocalControllerClient`,
which imports the table when it runs its first operation).
The brokers' handlers (decoding, the broker-side checks, forwarding through the
``ControllerClient``) stay in :mod:`kbroker.api`, which this package never imports.
"""
