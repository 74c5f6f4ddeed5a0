"""Broker keys of the KRaft metadata quorum and the brokers' place in it (Kafka's QuorumConfig,
KRaftConfigs and MetadataLogConfig): the voters or the bootstrap servers that find them, the Raft
client's timeouts, a broker's heartbeat and session with the active controller, the metadata log's
snapshot intervals; and log.dir.failure.timeout.ms (Kafka's ServerLogConfigs), how long a broker
keeps reporting a failed log directory to the controller. Part of ``BROKER_KEYS``
(:mod:`kbroker.config.keys`), in its order, declared as the other keys are
(:class:`~kbroker.config.values.ConfigKey`).
"""

from __future__ import annotations

from kbroker.config.addresses import parse_bootstrap_servers, parse_quorum_voters
from kbroker.config.values import ConfigKey, _k

QUORUM_KEYS: list[ConfigKey] = [
    _k("controller.quorum.voters", "list", "", check=lambda k, v, r: parse_quorum_voters(v),
       doc="The static set of KRaft voters as id@host:port entries. Either this or "
           "controller.quorum.bootstrap.servers must be given with process.roles."),
    _k("controller.quorum.bootstrap.servers", "list", "", check=lambda k, v, r: parse_bootstrap_servers(v),
       doc="host:port addresses of controllers used to discover the KRaft quorum (a dynamic quorum, KIP-853) "
           "when controller.quorum.voters is empty."),
    # Kafka's QuorumConfig (raft timeouts) and KRaftConfigs (broker lease), with Kafka's defaults.
    _k("controller.quorum.election.timeout.ms", "int", "1000", minimum=0,
       doc="How long, in ms, a voter waits without hearing from a leader before it starts an election."),
    _k("controller.quorum.fetch.timeout.ms", "int", "2000", minimum=0,
       doc="How long, in ms, a follower of the metadata quorum may go without a successful fetch from the "
           "leader before it considers the leader gone and becomes a candidate."),
    _k("controller.quorum.election.backoff.max.ms", "int", "1000", minimum=0,
       doc="The upper bound, in ms, of the randomised back-off before a candidate starts a new election, so "
           "voters do not keep splitting the vote."),
    _k("controller.quorum.append.linger.ms", "int", "25", minimum=0,
       doc="How long, in ms, the quorum leader waits to gather more metadata records into one batch before "
           "writing it to the log."),
    _k("controller.quorum.request.timeout.ms", "int", "2000", minimum=0,
       doc="How long, in ms, a quorum request such as Vote or Fetch waits for an answer before it is "
           "retried or given up."),
    _k("controller.quorum.retry.backoff.ms", "int", "20", minimum=0,
       doc="The pause, in ms, before a failed quorum request is sent again."),
    _k("controller.quorum.fetch.snapshot.max.bytes", "int", "1048576", minimum=1,
       doc="The most snapshot bytes a node asks for in one FetchSnapshot request while catching up on the "
           "metadata log."),
    _k("broker.heartbeat.interval.ms", "int", "2000",
       doc="How often, in ms, a broker sends a heartbeat to the active controller to keep its lease; should "
           "be at most half of broker.session.timeout.ms."),
    _k("initial.broker.registration.timeout.ms", "int", "60000",
       doc="How long, in ms, a starting broker tries to register with the controller before it gives up and "
           "stops."),
    _k("broker.session.timeout.ms", "int", "9000",
       doc="How long, in ms, the controller waits for a broker's heartbeat before it fences the broker and "
           "moves leadership away from it. Read by controllers."),
    _k("log.dir.failure.timeout.ms", "long", "30000", minimum=1,
       doc="How long, in ms, a broker keeps trying to report a failed log directory to the controller; if it "
           "cannot within this time, the broker shuts down."),
    _k("metadata.log.max.snapshot.interval.ms", "long", "3600000", minimum=0,
       doc="The longest time, in ms, between two snapshots of the metadata log while new records have been "
           "committed; 0 turns time-based snapshots off."),
    _k("metadata.log.max.record.bytes.between.snapshots", "long", "20971520", minimum=1,
       doc="How many bytes of new metadata records may accumulate before a new snapshot of the metadata log "
           "is taken."),
]
