"""A single node's two metadata images (the broker's MetadataLoader image and its controller's):
distinct objects, both fed by every write, equal after each; the broker's listeners hang off the
broker's image only; and a restart replays the log (or its snapshot) into both alike."""

from __future__ import annotations

from wire import Wire, create_topic

from kbroker.metadata.snapshot import image_to_records
from kbroker.testing import BrokerThread


def images_agree(b: BrokerThread) -> None:
    broker = b.broker
    assert broker is not None and broker.controller is not None
    controller = broker.controller
    assert broker.image is not controller.image and broker.image is broker.metadata_loader.image
    assert controller.uncommitted == 0
    assert image_to_records(broker.image) == image_to_records(controller.image)
    assert broker.image.offset == controller.image.offset


def test_a_nodes_two_images_agree_after_writes_and_after_a_restart(tmp_path):
    data = str(tmp_path / "data")
    with BrokerThread(data_dir=data) as b:
        w = Wire(b.bootstrap_servers)
        try:
            for i in range(3):
                create_topic(w, f"topic-{i}", 2)
        finally:
            w.close()
        assert {f"topic-{i}" for i in range(3)} <= set(b.broker.image.topics)
        images_agree(b)
        # the broker's listeners are on its own image; the controller's image has no broker listener
        assert b.broker.local_partitions.on_metadata_record in b.broker.image.listeners
        assert b.broker.local_partitions.on_metadata_record not in b.broker.controller.image.listeners
        # a snapshot written from the committed image, then loaded into both at the restart
        assert b.call(b.broker.controller.take_snapshot) is not None
    with BrokerThread(data_dir=data) as b:
        assert {f"topic-{i}" for i in range(3)} <= set(b.broker.image.topics)
        images_agree(b)
