"""The broker's built-in web console (issue 21), served on ``kbroker.http.listeners`` beside ``/metrics``.

How it gets what it shows: the console is a Kafka client of the broker itself. Its JSON endpoints
(:mod:`kbroker.console.web`) send real Kafka requests, encoded with the project's protocol codec,
over the broker's own PLAINTEXT listener (:mod:`kbroker.console.client`): Metadata,
DescribeCluster, ApiVersions, ListOffsets, Fetch, Produce, DescribeLogDirs, DescribeConfigs,
IncrementalAlterConfigs, CreateTopics, DeleteTopics, FindCoordinator, ListGroups, DescribeGroups,
ConsumerGroupDescribe, OffsetFetch, OffsetCommit, ListTransactions, DescribeTransactions,
DescribeProducers, DescribeQuorum, the ACL and SCRAM user APIs (:mod:`kbroker.console.ops` and the
modules beside it). So every page goes through the same handlers,
validation and error codes as any client; nothing reads a second copy of the broker's state;
and pointed at one broker of a cluster it routes partition requests to their leaders and group
requests to their coordinators, as clients do. The one thing read in-process is the throughput
chart: this broker's byte and message counters (the ones ``/metrics`` reports), sampled every 5 s.

The pages are static files (``static/``: HTML, one vanilla-JS script, one stylesheet; no build
step). Safety (CSRF, Host check, no markup from data) is described in :mod:`kbroker.console.web`.
When the broker has SASL users (a SASL_PLAINTEXT listener with PLAIN or SCRAM), the console asks
for them and talks to the broker as that user (:mod:`kbroker.console.sessions`), so the broker's
authorizer applies that principal's ACLs to every page.
"""
