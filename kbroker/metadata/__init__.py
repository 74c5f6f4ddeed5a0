"""What every node reads and uses of the cluster metadata (Kafka's ``metadata`` module beside its
``controller``): the image (``image``, Kafka's MetadataImage) and its records (``metadata_records``),
the loader that applies the committed metadata log to it (``loader``), the metadata log and its
snapshots (``metadata_log``, ``metadata_log_format``, ``snapshot``), feature levels and log
directory ids, and the broker's client of the active controller (``client``: the
``ControllerClient`` seam; ``channel``, ``remote`` and ``broker_lifecycle``: the requests a node
sends the active controller).

The active controller itself (``QuorumController``, replication and cluster control, placement,
the operations) is ``kbroker.controller``, above the replication, coordinator and security layers
that use this package: they never import the controller (scripts/check_imports.py).
"""
