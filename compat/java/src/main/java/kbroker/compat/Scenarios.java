package kbroker.compat;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.ExecutionException;
import java.util.function.BooleanSupplier;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Java kafka-clients scenarios for the compatibility matrix.
 * Usage: Scenarios BOOTSTRAP SCENARIO... (one JSON line per scenario) | Scenarios --list
 */
public final class Scenarios {
    static final String[] CODECS = {"none", "gzip", "snappy", "lz4", "zstd"};
    static final int MESSAGE_MAX_BYTES = 1048588;
    static final int AT_LIMIT_VALUE = MESSAGE_MAX_BYTES - 72;
    static final int BEYOND_LIMIT_VALUE = MESSAGE_MAX_BYTES - 71;
    static final int CLIENT_MAX_REQUEST = 2 * 1024 * 1024;

    interface Scenario { void run(Ctx ctx) throws Exception; }

    static final class Ctx {
        final String bootstrap, client, scenario;
        /** Replication factor of the topics a scenario creates (see replicationFactor()). */
        final short rf;
        Ctx(String b, String c, String s, short r) { bootstrap = b; client = c; scenario = s; rf = r; }
        String topic() {
            return ("compat-" + client + "-" + scenario + "-" + UUID.randomUUID().toString().substring(0, 8)).replace('_', '-');
        }
        String group() { return "g-" + client + "-" + scenario + "-" + UUID.randomUUID().toString().substring(0, 8); }
    }

    static final class Fail extends RuntimeException { Fail(String m) { super(m); } }

    static void check(boolean cond, String msg) { if (!cond) throw new Fail(msg); }

    static void waitUntil(BooleanSupplier f, double seconds, String what) throws InterruptedException {
        long deadline = System.nanoTime() + (long) (seconds * 1e9);
        while (System.nanoTime() < deadline) {
            if (f.getAsBoolean()) return;
            Thread.sleep(100); // polling interval, bounded by the deadline
        }
        throw new Fail("timed out waiting for " + what);
    }

    static byte[] b(String s) { return s.getBytes(StandardCharsets.UTF_8); }
    static String s(byte[] b) { return new String(b, StandardCharsets.UTF_8); }

    /** How to connect, from the environment compat/run_matrix.py sets for its SASL_SSL column
     *  (COMPAT_SECURITY_PROTOCOL, COMPAT_SASL_MECHANISM, COMPAT_SASL_USERNAME, COMPAT_SASL_PASSWORD,
     *  COMPAT_SSL_CA); nothing for PLAINTEXT. */
    static void security(Properties p) {
        Map<String, String> env = System.getenv();
        String protocol = env.getOrDefault("COMPAT_SECURITY_PROTOCOL", "PLAINTEXT");
        if (protocol.equals("PLAINTEXT")) return;
        p.put("security.protocol", protocol);
        p.put("sasl.mechanism", env.get("COMPAT_SASL_MECHANISM"));
        p.put("sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
            + env.get("COMPAT_SASL_USERNAME") + "\" password=\"" + env.get("COMPAT_SASL_PASSWORD") + "\";");
        p.put("ssl.truststore.type", "PEM");
        p.put("ssl.truststore.location", env.get("COMPAT_SSL_CA"));
    }

    static Admin admin(Ctx ctx) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, ctx.bootstrap);
        security(p);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 20000);
        return Admin.create(p);
    }

    static int partitions(Admin a, String name) {
        try {
            return a.describeTopics(List.of(name)).allTopicNames().get().get(name).partitions().size();
        } catch (Exception e) {
            return 0;
        }
    }

    static String createTopic(Ctx ctx, int n) throws Exception {
        String name = ctx.topic();
        try (Admin a = admin(ctx)) {
            a.createTopics(List.of(new NewTopic(name, n, ctx.rf))).all().get();
            waitUntil(() -> partitions(a, name) == n, 15, "topic metadata");
        }
        return name;
    }

    static KafkaProducer<byte[], byte[]> producer(Ctx ctx, Object... kv) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, ctx.bootstrap);
        security(p);
        for (int i = 0; i < kv.length; i += 2) p.put((String) kv[i], kv[i + 1]);
        return new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer());
    }

    static KafkaConsumer<byte[], byte[]> consumer(Ctx ctx, Object... kv) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, ctx.bootstrap);
        security(p);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        for (int i = 0; i < kv.length; i += 2) p.put((String) kv[i], kv[i + 1]);
        return new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
    }

    static List<ConsumerRecord<byte[], byte[]>> consume(KafkaConsumer<byte[], byte[]> c, int n, double seconds) {
        List<ConsumerRecord<byte[], byte[]>> out = new ArrayList<>();
        long deadline = System.nanoTime() + (long) (seconds * 1e9);
        while (out.size() < n && System.nanoTime() < deadline) {
            for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) out.add(r);
        }
        check(out.size() >= n, "consumed " + out.size() + " of " + n + " records");
        return out;
    }

    static List<ConsumerRecord<byte[], byte[]>> consumeFromStart(Ctx ctx, String topic, int parts, int n, Object... kv) {
        try (KafkaConsumer<byte[], byte[]> c = consumer(ctx, kv)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < parts; i++) tps.add(new TopicPartition(topic, i));
            c.assign(tps);
            c.seekToBeginning(tps);
            return consume(c, n, 20);
        }
    }

    static Scenario produceConsume(String codec) {
        return ctx -> {
            String topic = createTopic(ctx, 1);
            List<String> values = new ArrayList<>();
            try (KafkaProducer<byte[], byte[]> p = producer(ctx, "compression.type", codec, "linger.ms", 5)) {
                for (int i = 0; i < 100; i++) {
                    String v = ("value-" + i + "-").repeat(20);
                    values.add(v);
                    p.send(new ProducerRecord<>(topic, b(v)));
                }
                p.flush();
            }
            List<String> got = new ArrayList<>();
            for (var r : consumeFromStart(ctx, topic, 1, 100)) got.add(s(r.value()));
            check(got.equals(values), "values differ from those produced");
        };
    }

    static void keyedOrdering(Ctx ctx) throws Exception {
        String topic = createTopic(ctx, 3);
        try (var p = producer(ctx, "linger.ms", 5)) {
            for (int i = 0; i < 300; i++) p.send(new ProducerRecord<>(topic, b("k" + (i % 5)), b("" + i)));
            p.flush();
        }
        Map<String, List<Integer>> seen = new HashMap<>();
        Map<String, Set<Integer>> parts = new HashMap<>();
        for (var r : consumeFromStart(ctx, topic, 3, 300)) {
            seen.computeIfAbsent(s(r.key()), k -> new ArrayList<>()).add(Integer.parseInt(s(r.value())));
            parts.computeIfAbsent(s(r.key()), k -> new HashSet<>()).add(r.partition());
        }
        for (var e : seen.entrySet()) {
            List<Integer> sorted = new ArrayList<>(e.getValue());
            Collections.sort(sorted);
            check(sorted.equals(e.getValue()), "key " + e.getKey() + " out of order");
            check(parts.get(e.getKey()).size() == 1, "key " + e.getKey() + " spread over partitions");
        }
    }

    static void headersTimestamps(Ctx ctx) throws Exception {
        String topic = createTopic(ctx, 1);
        long ts = 1_600_000_000_000L;
        List<Header> hdrs = List.of(new RecordHeader("h1", b("v1")), new RecordHeader("h2", new byte[0]),
                new RecordHeader("h1", b("again")));
        try (var p = producer(ctx)) {
            for (int i = 0; i < 3; i++) p.send(new ProducerRecord<>(topic, null, ts + i, b("k"), b("x"), hdrs)).get();
        }
        var recs = consumeFromStart(ctx, topic, 1, 3);
        for (int i = 0; i < 3; i++) {
            var r = recs.get(i);
            check(r.timestamp() == ts + i, "timestamp " + r.timestamp());
            check(r.timestampType() == org.apache.kafka.common.record.TimestampType.CREATE_TIME, "not CreateTime");
            List<Header> got = new ArrayList<>();
            r.headers().forEach(got::add);
            check(got.size() == 3, "headers " + got);
            for (int j = 0; j < 3; j++) {
                check(got.get(j).key().equals(hdrs.get(j).key()) && Arrays.equals(got.get(j).value(), hdrs.get(j).value()),
                        "header " + j + " differs");
            }
        }
    }

    static boolean covered(List<KafkaConsumer<byte[], byte[]>> cs) {
        for (var c : cs) c.poll(Duration.ofMillis(50));
        Set<TopicPartition> all = new HashSet<>();
        int sum = 0;
        for (var c : cs) {
            if (c.assignment().isEmpty()) return false;
            sum += c.assignment().size();
            all.addAll(c.assignment());
        }
        return sum == 6 && all.size() == 6;
    }

    static void groupThreeLeave(Ctx ctx) throws Exception {
        String topic = createTopic(ctx, 6);
        String group = ctx.group();
        List<KafkaConsumer<byte[], byte[]>> cs = new ArrayList<>();
        try {
            for (int i = 0; i < 3; i++) {
                var c = consumer(ctx, "group.id", group, "session.timeout.ms", 10000, "heartbeat.interval.ms", 500);
                c.subscribe(List.of(topic));
                cs.add(c);
            }
            waitUntil(() -> covered(cs), 45, "three members sharing six partitions");
            cs.remove(0).close();
            waitUntil(() -> covered(cs), 45, "two members taking over six partitions");
        } finally {
            for (var c : cs) c.close();
        }
    }

    static void commitResume(Ctx ctx) throws Exception {
        String topic = createTopic(ctx, 1);
        String group = ctx.group();
        try (var p = producer(ctx)) {
            for (int i = 0; i < 10; i++) p.send(new ProducerRecord<>(topic, b("" + i)));
            p.flush();
        }
        TopicPartition tp = new TopicPartition(topic, 0);
        try (var c = consumer(ctx, "group.id", group)) {
            c.assign(List.of(tp));
            consume(c, 5, 20);
            c.commitSync(Map.of(tp, new OffsetAndMetadata(5)));
        }
        try (var c = consumer(ctx, "group.id", group)) {
            c.assign(List.of(tp));
            var recs = consume(c, 5, 20);
            check(recs.get(0).offset() == 5 && s(recs.get(0).value()).equals("5"), "resumed at offset " + recs.get(0).offset());
        }
    }

    static void adminTopics(Ctx ctx) throws Exception {
        String name = createTopic(ctx, 1);
        try (Admin a = admin(ctx)) {
            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, name);
            a.incrementalAlterConfigs(Map.of(res, List.of(new AlterConfigOp(new ConfigEntry("retention.ms", "12345"),
                    AlterConfigOp.OpType.SET)))).all().get();
            waitUntil(() -> {
                try {
                    ConfigEntry e = a.describeConfigs(List.of(res)).all().get().get(res).get("retention.ms");
                    return e != null && "12345".equals(e.value());
                } catch (Exception e) {
                    return false;
                }
            }, 10, "retention.ms altered");
            a.createPartitions(Map.of(name, NewPartitions.increaseTo(3))).all().get();
            waitUntil(() -> partitions(a, name) == 3, 10, "3 partitions");
            a.deleteTopics(List.of(name)).all().get();
            waitUntil(() -> {
                try {
                    return !a.listTopics().names().get().contains(name);
                } catch (Exception e) {
                    return false;
                }
            }, 15, "topic deleted");
        }
    }

    static void offsetsByTimestamp(Ctx ctx) throws Exception {
        String topic = createTopic(ctx, 1);
        long t = 1_700_000_000_000L;
        try (var p = producer(ctx)) {
            for (int i = 0; i < 3; i++) p.send(new ProducerRecord<>(topic, null, t + 1000L * i, null, b("v"))).get();
        }
        TopicPartition tp = new TopicPartition(topic, 0);
        try (var c = consumer(ctx)) {
            var got = c.offsetsForTimes(Map.of(tp, t + 500)).get(tp);
            check(got != null && got.offset() == 1, "offset for t+500: " + got);
            check(c.offsetsForTimes(Map.of(tp, t + 5000)).get(tp) == null, "offset past the last timestamp");
            check(c.beginningOffsets(List.of(tp)).get(tp) == 0 && c.endOffsets(List.of(tp)).get(tp) == 3, "earliest/latest");
        }
    }

    static void idempotentProducer(Ctx ctx) throws Exception {
        String topic = createTopic(ctx, 1);
        List<java.util.concurrent.Future<RecordMetadata>> futs = new ArrayList<>();
        try (var p = producer(ctx, "enable.idempotence", "true", "acks", "all")) {
            for (int i = 0; i < 50; i++) futs.add(p.send(new ProducerRecord<>(topic, b("" + i))));
            p.flush();
            for (int i = 0; i < 50; i++) check(futs.get(i).get().offset() == i, "offset of record " + i);
        }
        var recs = consumeFromStart(ctx, topic, 1, 50);
        for (int i = 0; i < 50; i++) check(s(recs.get(i).value()).equals("" + i), "values out of order or duplicated");
    }

    static void transactionsReadCommitted(Ctx ctx) throws Exception {
        String topic = createTopic(ctx, 1);
        try (var p = producer(ctx, "transactional.id", ctx.group())) {
            p.initTransactions();
            boolean[] commit = {true, false, true};
            for (int txn = 0; txn < 3; txn++) {
                p.beginTransaction();
                for (int i = 0; i < 5; i++) p.send(new ProducerRecord<>(topic, b(txn + "-" + i)));
                if (commit[txn]) p.commitTransaction(); else p.abortTransaction();
            }
        }
        try (var c = consumer(ctx, "isolation.level", "read_committed")) {
            TopicPartition tp = new TopicPartition(topic, 0);
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            var recs = consume(c, 10, 20);
            check(c.poll(Duration.ofSeconds(1)).isEmpty(), "more than the committed records");
            List<String> got = new ArrayList<>();
            for (var r : recs) got.add(s(r.value()));
            List<String> want = new ArrayList<>();
            for (int t : new int[] {0, 2}) for (int i = 0; i < 5; i++) want.add(t + "-" + i);
            check(got.equals(want), "read_committed saw " + got);
        }
    }

    /**
     * Exactly-once consume-process-produce: read 10 records as a group member, write them
     * transformed and commit the consumed offsets in the same transaction with
     * sendOffsetsToTransaction (TxnOffsetCommit; with Transactions V2 and a 4.4 broker, v6 with
     * topic ids), then check the group's committed offset and what read_committed sees.
     * Not in the matrix's default scenario list; tests/integration/test_protocol_44.py runs it.
     */
    static void consumeProcessProduce(Ctx ctx) throws Exception {
        String in = createTopic(ctx, 1);
        String out = createTopic(ctx, 1);
        String group = ctx.group();
        try (var p = producer(ctx)) {
            for (int i = 0; i < 10; i++) p.send(new ProducerRecord<>(in, b("in-" + i)));
            p.flush();
        }
        try (var c = consumer(ctx, "group.id", group, "isolation.level", "read_committed");
             var p = producer(ctx, "transactional.id", "tx-" + group)) {
            p.initTransactions();
            c.subscribe(List.of(in));
            var recs = consume(c, 10, 30);
            p.beginTransaction();
            for (var r : recs) p.send(new ProducerRecord<>(out, b(s(r.value()).replace("in-", "out-"))));
            TopicPartition tp = new TopicPartition(in, 0);
            p.sendOffsetsToTransaction(Map.of(tp, new OffsetAndMetadata(recs.get(recs.size() - 1).offset() + 1)),
                    c.groupMetadata());
            p.commitTransaction();
        }
        try (Admin a = admin(ctx)) {
            var committed = a.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            var off = committed.get(new TopicPartition(in, 0));
            check(off != null && off.offset() == 10, "committed offset of the group: " + off);
        }
        List<String> got = new ArrayList<>();
        for (var r : consumeFromStart(ctx, out, 1, 10, "isolation.level", "read_committed")) got.add(s(r.value()));
        List<String> want = new ArrayList<>();
        for (int i = 0; i < 10; i++) want.add("out-" + i);
        check(got.equals(want), "read_committed saw " + got);
    }

    static void recordAtSizeLimit(Ctx ctx) throws Exception {
        String topic = createTopic(ctx, 1);
        long off;
        try (var p = producer(ctx, "max.request.size", CLIENT_MAX_REQUEST, "batch.size", CLIENT_MAX_REQUEST)) {
            off = p.send(new ProducerRecord<>(topic, new byte[AT_LIMIT_VALUE])).get().offset();
        }
        var r = consumeFromStart(ctx, topic, 1, 1).get(0);
        check(off == 0 && r.value().length == AT_LIMIT_VALUE, "large record not read back");
    }

    static void recordBeyondSizeLimit(Ctx ctx) throws Exception {
        String topic = createTopic(ctx, 1);
        try (var p = producer(ctx, "max.request.size", CLIENT_MAX_REQUEST, "batch.size", CLIENT_MAX_REQUEST,
                "retries", 0, "enable.idempotence", "false")) {
            p.send(new ProducerRecord<>(topic, new byte[BEYOND_LIMIT_VALUE])).get();
        } catch (ExecutionException e) {
            check(e.getCause() instanceof RecordTooLargeException, "unexpected error " + e.getCause());
            return;
        }
        throw new Fail("broker accepted a batch beyond message.max.bytes");
    }

    static void unknownTopic(Ctx ctx) throws Exception {
        String name = ctx.topic();
        try (var p = producer(ctx, "max.block.ms", 3000)) {
            p.send(new ProducerRecord<>(name, b("v"))).get();
            throw new Fail("produce to an unknown topic succeeded");
        } catch (ExecutionException | org.apache.kafka.common.errors.TimeoutException e) {
            Throwable c = e instanceof ExecutionException ? e.getCause() : e;
            check(c instanceof org.apache.kafka.common.errors.TimeoutException
                    || c instanceof org.apache.kafka.common.errors.UnknownTopicOrPartitionException, "unexpected error " + c);
        }
        try (Admin a = admin(ctx)) {
            check(!a.listTopics().names().get().contains(name), "topic was auto-created");
        }
    }

    /** KIP-932: two KafkaShareConsumers of one group share a one-partition topic; every record is
     *  delivered once (implicit acknowledgement), both consumers get some, and the group is
     *  described as a share group with both members assigned the partition. Kafka 4.x clients only. */
    static void shareGroupTwoConsumers(Ctx ctx) throws Exception {
        String topic = createTopic(ctx, 1);
        String group = ctx.group();
        int total = 60;
        try (Admin a = admin(ctx)) {
            ConfigResource res = new ConfigResource(ConfigResource.Type.GROUP, group);
            a.incrementalAlterConfigs(Map.of(res, List.of(new AlterConfigOp(
                new ConfigEntry("share.auto.offset.reset", "earliest"), AlterConfigOp.OpType.SET)))).all().get();
            try (KafkaProducer<byte[], byte[]> p = producer(ctx)) {
                for (int i = 0; i < total; i++) p.send(new ProducerRecord<>(topic, 0, null, b("s" + i))).get();
            }
            Map<Long, Integer> seen = new HashMap<>();
            int[] perConsumer = new int[2];
            List<KafkaShareConsumer<byte[], byte[]>> cs = new ArrayList<>();
            try {
                for (int i = 0; i < 2; i++) {
                    Properties p = new Properties();
                    p.put("bootstrap.servers", ctx.bootstrap);
                    security(p);
                    p.put("group.id", group);
                    p.put("max.poll.records", "10");
                    KafkaShareConsumer<byte[], byte[]> c = new KafkaShareConsumer<>(p, new ByteArrayDeserializer(),
                        new ByteArrayDeserializer());
                    c.subscribe(List.of(topic));
                    cs.add(c);
                }
                long deadline = System.nanoTime() + 40_000_000_000L;
                while (seen.size() < total && System.nanoTime() < deadline) {
                    for (int i = 0; i < 2; i++) {
                        for (ConsumerRecord<byte[], byte[]> r : cs.get(i).poll(Duration.ofMillis(200))) {
                            check(s(r.value()).equals("s" + r.offset()), "value at offset " + r.offset());
                            seen.merge(r.offset(), 1, Integer::sum);
                            perConsumer[i]++;
                        }
                    }
                }
                check(seen.size() == total, "consumed " + seen.size() + " of " + total + " records");
                check(seen.values().stream().allMatch(n -> n == 1), "a record was delivered twice: " + seen);
                check(perConsumer[0] > 0 && perConsumer[1] > 0,
                    "both consumers get records: " + Arrays.toString(perConsumer));
                ShareGroupDescription d = a.describeShareGroups(List.of(group)).describedGroups().get(group).get();
                check(d.members().size() == 2, "two members, got " + d.members().size());
                d.members().forEach(m -> check(m.assignment().topicPartitions().size() == 1,
                    "each member has the partition: " + m.assignment()));
            } finally {
                for (KafkaShareConsumer<byte[], byte[]> c : cs) c.close();
            }
        }
    }

    /** KIP-1191 (Kafka 4.4, share.version 2): a share group whose config names a dead-letter topic;
     *  a KafkaShareConsumer (explicit acknowledgement) REJECTs the records at even offsets and
     *  ACCEPTs the others. The rejected records, only they, are in the dead-letter topic with their
     *  key and value (errors.deadletterqueue.copy.record.enable) and Kafka's __dlq.errors.* headers.
     *  Kafka 4.x clients only. */
    static void shareGroupDeadLetters(Ctx ctx) throws Exception {
        String topic = createTopic(ctx, 1);
        String dlq = "dlq." + topic;
        String group = ctx.group();
        int total = 10;
        try (Admin a = admin(ctx)) {
            a.createTopics(List.of(new NewTopic(dlq, 1, ctx.rf).configs(
                Map.of("errors.deadletterqueue.group.enable", "true")))).all().get();
            ConfigResource res = new ConfigResource(ConfigResource.Type.GROUP, group);
            a.incrementalAlterConfigs(Map.of(res, List.of(
                new AlterConfigOp(new ConfigEntry("share.auto.offset.reset", "earliest"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("errors.deadletterqueue.topic.name", dlq), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("errors.deadletterqueue.copy.record.enable", "true"),
                    AlterConfigOp.OpType.SET)))).all().get();
        }
        try (KafkaProducer<byte[], byte[]> p = producer(ctx)) {
            for (int i = 0; i < total; i++) p.send(new ProducerRecord<>(topic, 0, b("k" + i), b("v" + i))).get();
        }
        Properties p = new Properties();
        p.put("bootstrap.servers", ctx.bootstrap);
        security(p);
        p.put("group.id", group);
        p.put("share.acknowledgement.mode", "explicit");
        Set<Long> acked = new HashSet<>();
        try (KafkaShareConsumer<byte[], byte[]> c = new KafkaShareConsumer<>(p, new ByteArrayDeserializer(),
                new ByteArrayDeserializer())) {
            c.subscribe(List.of(topic));
            long deadline = System.nanoTime() + 30_000_000_000L;
            while (acked.size() < total && System.nanoTime() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
                    check(s(r.value()).equals("v" + r.offset()), "value at offset " + r.offset());
                    c.acknowledge(r, r.offset() % 2 == 0 ? AcknowledgeType.REJECT : AcknowledgeType.ACCEPT);
                    acked.add(r.offset());
                }
                c.commitSync();
            }
        }
        check(acked.size() == total, "acknowledged " + acked.size() + " of " + total + " records");
        try (KafkaConsumer<byte[], byte[]> c = consumer(ctx)) {
            c.assign(List.of(new TopicPartition(dlq, 0)));
            List<ConsumerRecord<byte[], byte[]>> got = consume(c, total / 2, 20);
            check(got.size() == total / 2, "dead letters: " + got.size() + " of " + total / 2);
            for (int i = 0; i < got.size(); i++) {
                ConsumerRecord<byte[], byte[]> r = got.get(i);
                Map<String, String> h = new HashMap<>();
                for (Header x : r.headers()) h.put(x.key(), x.value() == null ? null : s(x.value()));
                long offset = 2L * i;
                check(s(r.key()).equals("k" + offset) && s(r.value()).equals("v" + offset),
                    "dead letter " + i + " is record " + offset + ": " + s(r.key()));
                check(topic.equals(h.get("__dlq.errors.topic")) && "0".equals(h.get("__dlq.errors.partition"))
                    && String.valueOf(offset).equals(h.get("__dlq.errors.offset"))
                    && group.equals(h.get("__dlq.errors.group")) && "1".equals(h.get("__dlq.errors.delivery.count"))
                    && "Offset rejected by client.".equals(h.get("__dlq.errors.message")), "headers " + h);
            }
            List<ConsumerRecord<byte[], byte[]>> more = new ArrayList<>();
            long until = System.nanoTime() + 1_000_000_000L;
            while (System.nanoTime() < until) c.poll(Duration.ofMillis(200)).forEach(more::add);
            check(more.isEmpty(), "only the rejected records are dead letters, also " + more.size());
        }
    }

    static LinkedHashMap<String, Scenario> scenarios() {
        LinkedHashMap<String, Scenario> m = new LinkedHashMap<>();
        for (String c : CODECS) m.put("produce_consume_" + c, produceConsume(c));
        m.put("keyed_ordering", Scenarios::keyedOrdering);
        m.put("headers_timestamps", Scenarios::headersTimestamps);
        m.put("group_three_leave", Scenarios::groupThreeLeave);
        m.put("commit_resume", Scenarios::commitResume);
        m.put("admin_topics", Scenarios::adminTopics);
        m.put("offsets_by_timestamp", Scenarios::offsetsByTimestamp);
        m.put("idempotent_producer", Scenarios::idempotentProducer);
        m.put("transactions_read_committed", Scenarios::transactionsReadCommitted);
        m.put("record_at_size_limit", Scenarios::recordAtSizeLimit);
        m.put("record_beyond_size_limit", Scenarios::recordBeyondSizeLimit);
        m.put("unknown_topic", Scenarios::unknownTopic);
        m.put("consume_process_produce", Scenarios::consumeProcessProduce);
        if (!clientVersion().startsWith("3.")) {
            m.put("share_group_two_consumers", Scenarios::shareGroupTwoConsumers);
            m.put("share_group_dead_letters", Scenarios::shareGroupDeadLetters);
        }
        return m;
    }

    static String json(String v) {
        StringBuilder sb = new StringBuilder("\"");
        for (char ch : v.toCharArray()) {
            switch (ch) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (ch < 0x20) sb.append(String.format("\\u%04x", (int) ch)); else sb.append(ch);
                }
            }
        }
        return sb.append('"').toString();
    }

    static String clientVersion() {
        Properties p = new Properties();
        try (var in = KafkaProducer.class.getResourceAsStream("/kafka/kafka-version.properties")) {
            if (in != null) p.load(in);
        } catch (java.io.IOException e) {
            return "unknown";
        }
        return p.getProperty("version", "unknown");
    }

    /** COMPAT_REPLICATION_FACTOR, set by compat/run_matrix.py: 1 against one broker, 3 against a
     *  three-broker cluster; default 1. */
    static short replicationFactor() {
        String raw = System.getenv().getOrDefault("COMPAT_REPLICATION_FACTOR", "1");
        try {
            short rf = Short.parseShort(raw);
            if (rf >= 1) return rf;
        } catch (NumberFormatException e) {
            // reported below
        }
        System.err.println("COMPAT_REPLICATION_FACTOR must be a positive integer, not '" + raw + "'");
        System.exit(2);
        return 0;
    }

    public static void main(String[] args) {
        var all = scenarios();
        String version = clientVersion();
        String client = "java-" + (version.startsWith("3.") ? "3.x" : "4.x");
        if (args.length >= 1 && args[0].equals("--list")) {
            all.keySet().forEach(System.out::println);
            return;
        }
        if (args.length >= 1 && args[0].equals("--version")) {
            System.out.println(version);
            return;
        }
        if (args.length < 2) {
            System.err.println("usage: Scenarios BOOTSTRAP SCENARIO... | --list");
            System.exit(2);
        }
        short rf = replicationFactor();
        for (int i = 1; i < args.length; i++) {
            String name = args[i];
            long t0 = System.nanoTime();
            boolean ok = false;
            String err = "";
            Scenario sc = all.get(name);
            if (sc == null) {
                err = "unsupported scenario";
            } else {
                try {
                    sc.run(new Ctx(args[0], client, name, rf));
                    ok = true;
                } catch (Throwable e) {
                    Throwable c = (e instanceof ExecutionException && e.getCause() != null) ? e.getCause() : e;
                    err = c.getClass().getSimpleName() + ": " + c.getMessage();
                    if (err.length() > 500) err = err.substring(0, 500);
                    e.printStackTrace();
                }
            }
            double secs = (System.nanoTime() - t0) / 1e9;
            System.out.println("{\"client\": " + json(client) + ", \"client_version\": " + json(version)
                    + ", \"scenario\": " + json(name) + ", \"ok\": " + ok + ", \"error\": " + json(err)
                    + String.format(Locale.ROOT, ", \"seconds\": %.3f}", secs));
            System.out.flush();
        }
        System.exit(0);
    }
}
