package kbroker.streams;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.TreeMap;
import java.util.UUID;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.StreamsGroupDescription;
import org.apache.kafka.clients.admin.StreamsGroupMemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.ThreadMetadata;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

/**
 * Word count with a state store ("counts", changelogged) and a repartition topic (group by word),
 * run as two Kafka Streams instances with group.protocol=streams.
 *
 * Usage: WordCount BOOTSTRAP APPLICATION_ID STATE_DIR
 *
 * Creates the input topic (4 partitions) and the output topic, produces a fixed text (first half),
 * starts instance A, waits for its counts, starts instance B, waits until both instances run active
 * tasks, produces the second half and waits until the output topic's latest count of every word is
 * the expected one (exactly-once, read_committed). Prints, one a line: "TASKS a=<n> b=<n>",
 * "GROUP state=<state> members=<n> subtopologies=<n>", "COUNT <word> <count>" for every word, and
 * "OK" at the end; exits non-zero (with the reason) if a deadline passes.
 */
public final class WordCount {
    private static final String[] WORDS = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta",
        "iota", "kappa", "lambda", "mu"};

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String appId = args[1];
        Path stateDir = Path.of(args[2]);
        String input = appId + "-lines";
        String output = appId + "-counts";

        List<String> lines = new ArrayList<>();
        Random random = new Random(42);
        for (int i = 0; i < 400; i++) {
            StringBuilder line = new StringBuilder();
            int n = 1 + random.nextInt(8);
            for (int j = 0; j < n; j++) {
                line.append(j == 0 ? "" : " ").append(WORDS[random.nextInt(WORDS.length)]);
            }
            lines.add(line.toString());
        }
        Map<String, Long> expectedHalf = count(lines.subList(0, 200));
        Map<String, Long> expected = count(lines);

        Properties adminProps = new Properties();
        adminProps.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(adminProps)) {
            admin.createTopics(List.of(new NewTopic(input, 4, (short) 1), new NewTopic(output, 2, (short) 1)))
                .all().get();

            produce(bootstrap, input, lines.subList(0, 200));
            KafkaStreams a = start(bootstrap, appId, stateDir.resolve("a"), input, output);
            KafkaStreams b = null;
            try (KafkaConsumer<String, Long> consumer = outputConsumer(bootstrap, output)) {
                Map<String, Long> seen = new HashMap<>();
                await(consumer, seen, expectedHalf, "counts of the first half from instance a");
                b = start(bootstrap, appId, stateDir.resolve("b"), input, output);
                long deadline = System.currentTimeMillis() + 120_000;
                while (activeTasks(a) == 0 || activeTasks(b) == 0) {
                    if (System.currentTimeMillis() > deadline) {
                        fail("both instances running active tasks: a=" + activeTasks(a) + " b=" + activeTasks(b));
                    }
                    Thread.sleep(200);
                }
                System.out.println("TASKS a=" + activeTasks(a) + " b=" + activeTasks(b));
                produce(bootstrap, input, lines.subList(200, lines.size()));
                await(consumer, seen, expected, "final counts from instances a and b");
                StreamsGroupDescription group = admin.describeStreamsGroups(List.of(appId)).all().get().get(appId);
                int withTasks = 0;
                for (StreamsGroupMemberDescription m : group.members()) {
                    if (!m.assignment().activeTasks().isEmpty()) {
                        withTasks++;
                    }
                }
                System.out.println("GROUP state=" + group.groupState() + " members=" + group.members().size()
                    + " members_with_active_tasks=" + withTasks + " subtopologies=" + group.subtopologies().size());
                for (Map.Entry<String, Long> e : new TreeMap<>(seen).entrySet()) {
                    System.out.println("COUNT " + e.getKey() + " " + e.getValue());
                }
            } finally {
                a.close(Duration.ofSeconds(30));
                if (b != null) {
                    b.close(Duration.ofSeconds(30));
                }
            }
        }
        System.out.println("OK");
        System.exit(0);
    }

    private static Map<String, Long> count(List<String> lines) {
        Map<String, Long> out = new HashMap<>();
        for (String line : lines) {
            for (String w : line.split(" ")) {
                out.merge(w, 1L, Long::sum);
            }
        }
        return out;
    }

    private static void fail(String what) {
        System.out.println("FAILED waiting for " + what);
        System.exit(1);
    }

    private static int activeTasks(KafkaStreams streams) {
        if (streams.state() != KafkaStreams.State.RUNNING) {
            return 0;
        }
        int n = 0;
        for (ThreadMetadata t : streams.metadataForLocalThreads()) {
            n += t.activeTasks().size();
        }
        return n;
    }

    private static void produce(String bootstrap, String topic, List<String> lines) throws Exception {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            int i = 0;
            for (String line : lines) {
                producer.send(new ProducerRecord<>(topic, "line-" + (i++), line)).get();
            }
        }
    }

    private static KafkaStreams start(String bootstrap, String appId, Path stateDir, String input, String output)
            throws Exception {
        Files.createDirectories(stateDir);
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.GROUP_PROTOCOL_CONFIG, "streams");
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 200);
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        StreamsBuilder builder = new StreamsBuilder();
        builder.<String, String>stream(input)
            .flatMapValues(v -> Arrays.asList(v.split(" ")))
            .groupBy((k, w) -> w, Grouped.with("by-word", Serdes.String(), Serdes.String()))
            .count(Materialized.as("counts"))
            .toStream()
            .to(output, Produced.with(Serdes.String(), Serdes.Long()));
        Topology topology = builder.build();
        KafkaStreams streams = new KafkaStreams(topology, p);
        streams.setUncaughtExceptionHandler(e -> {
            System.out.println("UNCAUGHT " + e);
            e.printStackTrace(System.out);
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse
                .SHUTDOWN_CLIENT;
        });
        streams.start();
        return streams;
    }

    private static KafkaConsumer<String, Long> outputConsumer(String bootstrap, String output) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, "verify-" + UUID.randomUUID());
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, LongDeserializer.class);
        KafkaConsumer<String, Long> consumer = new KafkaConsumer<>(p);
        consumer.subscribe(List.of(output));
        return consumer;
    }

    private static void await(KafkaConsumer<String, Long> consumer, Map<String, Long> seen, Map<String, Long> want,
                              String what) {
        long deadline = System.currentTimeMillis() + 180_000;
        while (!seen.equals(want)) {
            if (System.currentTimeMillis() > deadline) {
                System.out.println("SEEN " + new TreeMap<>(seen));
                System.out.println("WANT " + new TreeMap<>(want));
                fail(what);
            }
            for (ConsumerRecord<String, Long> r : consumer.poll(Duration.ofMillis(200))) {
                seen.put(r.key(), r.value());
            }
        }
    }
}
