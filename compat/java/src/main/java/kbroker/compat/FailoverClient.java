package kbroker.compat;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The Java client's side of tests/cluster/test_client_failover.py: an idempotent acks=all producer
 * streams COUNT numbered records to partition 0 of TOPIC (one every few milliseconds) while a
 * consumer group member reads them, committing as it goes; the test kills the partition's leader
 * mid-stream. Prints "progress ACKED CONSUMED" lines (as records are sent and as they are
 * acknowledged), then one JSON line: ok once every record was acknowledged, the group consumed each
 * at least once, and the partition holds each exactly once and in order.
 * Before record HOLD_AT the stream prints "holding ACKED CONSUMED" and waits for a line on stdin (the
 * test writes it once it killed the leader), so the kill falls mid-stream whatever the machine's
 * speed; the acknowledgements coming meanwhile are still reported (the test waits for them).
 * Usage: FailoverClient BOOTSTRAP TOPIC GROUP COUNT HOLD_AT
 *
 * With "FailoverClient BOOTSTRAP TOPIC TRANSACTIONAL_ID txn" instead: a transactional producer
 * (Transactions V2 when the cluster has transaction.version 2) commits ten records to partition 0
 * of TOPIC, aborts ten, commits ten more; a read_committed consumer must then read exactly the
 * twenty committed ones, in order. Prints the same JSON line.
 */
public final class FailoverClient {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], group = args[2];
        String error = "";
        try {
            if (args[3].equals("txn")) {
                error = transactions(bootstrap, topic, group);
            } else {
                error = run(bootstrap, topic, group, Integer.parseInt(args[3]), Integer.parseInt(args[4]));
            }
        } catch (Throwable e) {
            error = e.getClass().getSimpleName() + ": " + e.getMessage();
        }
        System.out.println("{\"ok\": " + error.isEmpty() + ", \"error\": \"" + error.replace("\\", "\\\\")
                .replace("\"", "\\\"").replace("\n", " ") + "\"}");
        System.out.flush();
        System.exit(0);
    }

    static String value(int i) { return String.format("j%05d", i); }

    static String transactions(String bootstrap, String topic, String transactionalId) throws Exception {
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        List<String> want = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(pp, new ByteArraySerializer(), new ByteArraySerializer())) {
            p.initTransactions();
            for (String kind : List.of("first", "aborted", "second")) {
                p.beginTransaction();
                for (int i = 0; i < 10; i++) {
                    String v = kind + "-" + i;
                    p.send(new ProducerRecord<>(topic, 0, null, v.getBytes(StandardCharsets.UTF_8)));
                    if (!kind.equals("aborted")) want.add(v);
                }
                p.flush();
                if (kind.equals("aborted")) p.abortTransaction(); else p.commitTransaction();
            }
        }
        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        List<String> got = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(cp, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            TopicPartition tp = new TopicPartition(topic, 0);
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            long end = System.nanoTime() + 60_000_000_000L;
            while (got.size() < want.size() && System.nanoTime() < end) {
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) got.add(new String(r.value(), StandardCharsets.UTF_8));
            }
            for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) got.add(new String(r.value(), StandardCharsets.UTF_8));
        }
        return got.equals(want) ? "" : "read_committed read " + got;
    }

    static String run(String bootstrap, String topic, String group, int count, int holdAt) throws Exception {
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "120000");
        pp.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        AtomicInteger acked = new AtomicInteger();
        List<String> errors = Collections.synchronizedList(new ArrayList<>());
        Set<String> consumed = Collections.synchronizedSet(new HashSet<>());
        long deadline = System.nanoTime() + 150_000_000_000L;

        Thread reader = new Thread(() -> {
            Properties cp = new Properties();
            cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            cp.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(cp, new ByteArrayDeserializer(),
                    new ByteArrayDeserializer())) {
                c.subscribe(List.of(topic));
                while (consumed.size() < count && System.nanoTime() < deadline) {
                    ConsumerRecords<byte[], byte[]> recs = c.poll(Duration.ofMillis(200));
                    for (ConsumerRecord<byte[], byte[]> r : recs) consumed.add(new String(r.value(), StandardCharsets.UTF_8));
                    if (!recs.isEmpty()) {
                        try {
                            c.commitSync(Duration.ofSeconds(30));
                        } catch (RuntimeException e) {
                            // (a commit during the coordinator's move: the next one covers it)
                        }
                    }
                }
            } catch (Throwable e) {
                errors.add("consumer: " + e);
            }
        });
        reader.start();

        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(pp, new ByteArraySerializer(), new ByteArraySerializer())) {
            var stdin = new java.io.BufferedReader(new java.io.InputStreamReader(System.in, StandardCharsets.UTF_8));
            for (int i = 0; i < count; i++) {
                if (i == holdAt) {
                    System.out.println("holding " + acked.get() + " " + consumed.size());
                    System.out.flush();
                    stdin.readLine();
                }
                p.send(new ProducerRecord<>(topic, 0, null, value(i).getBytes(StandardCharsets.UTF_8)), (md, e) -> {
                    if (e != null) {
                        errors.add("producer: " + e);
                    } else if (acked.incrementAndGet() % 10 == 0) {
                        System.out.println("progress " + acked.get() + " " + consumed.size());
                        System.out.flush();
                    }
                });
                if (i % 10 == 0) {
                    System.out.println("progress " + acked.get() + " " + consumed.size());
                    System.out.flush();
                }
                Thread.sleep(5); // the stream's pace: the kill falls in its middle
            }
            p.flush();
        }
        while (reader.isAlive() && System.nanoTime() < deadline) {
            System.out.println("progress " + acked.get() + " " + consumed.size());
            System.out.flush();
            reader.join(200);
        }
        reader.join(1000);
        if (!errors.isEmpty()) return errors.get(0);
        if (acked.get() != count) return "acknowledged " + acked.get() + " of " + count;
        if (consumed.size() != count) return "the group consumed " + consumed.size() + " of " + count;

        // the partition holds every record exactly once, in order
        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        List<String> log = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(cp, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            TopicPartition tp = new TopicPartition(topic, 0);
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            long end = System.nanoTime() + 60_000_000_000L;
            while (log.size() < count && System.nanoTime() < end) {
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
                    log.add(new String(r.value(), StandardCharsets.UTF_8));
                }
            }
            for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
                log.add(new String(r.value(), StandardCharsets.UTF_8));
            }
        }
        for (int i = 0; i < Math.max(count, log.size()); i++) {
            if (i >= log.size() || i >= count || !log.get(i).equals(value(i))) {
                return "log differs at " + i + ": " + (i < log.size() ? log.get(i) : "end") + " (" + log.size() + " records)";
            }
        }
        return "";
    }
}
