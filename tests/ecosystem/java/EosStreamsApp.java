/*
 * kbroker's Kafka Streams test application (tests/ecosystem/test_streams.py), exactly_once_v2 with the
 * group protocol its fifth argument names (classic, or streams: KIP-1071's rebalance protocol):
 *   word count:   text (key: user, value: sentence) -> words -> repartition by word -> count (store
 *                 "word-counts", changelog) -> topic word-counts (word -> count)
 *   windowed sum: clicks (key: user, value: amount) -> 60 s tumbling windows -> sum (store
 *                 "click-sums") -> topic click-sums (user@windowStart -> sum)
 *   join:         clicks joined with the users table (key: user, value: name) -> topic enriched
 *                 (user -> name:amount)
 * Caching is off, so every update reaches the output topics; transactions commit every second.
 * Usage: EosStreamsApp <bootstrap> <application.id> <state.dir> <topic prefix> <classic|streams>
 */

import java.time.Duration;
import java.util.Arrays;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.TimeWindows;

public final class EosStreamsApp {
    private EosStreamsApp() {
    }

    public static void main(String[] args) throws InterruptedException {
        String prefix = args[3];
        Properties props = new Properties();
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[1]);
        props.put(StreamsConfig.STATE_DIR_CONFIG, args[2]);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        props.put(StreamsConfig.GROUP_PROTOCOL_CONFIG, args[4]);
        props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 1000);
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        props.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
        // An open transaction of a killed instance is aborted after 6 s rather than Streams' 10 s
        // (its successor's read_committed output waits for it).
        props.put(StreamsConfig.producerPrefix("transaction.timeout.ms"), 6000);
        if (args[4].equals("classic")) {
            // A killed instance leaves the group after 6 s (the broker's group.min.session.timeout.ms)
            // rather than the default 45 s, heartbeating every second (the streams protocol's session
            // and heartbeat are the broker's group.streams.* settings).
            props.put(StreamsConfig.consumerPrefix("session.timeout.ms"), 6000);
            props.put(StreamsConfig.consumerPrefix("heartbeat.interval.ms"), 1000);
        }

        StreamsBuilder builder = new StreamsBuilder();
        KStream<String, String> text = builder.stream(prefix + "text");
        text.flatMapValues(line -> Arrays.asList(line.toLowerCase().split("\\s+")))
            .groupBy((user, word) -> word, Grouped.as("by-word"))
            .count(Materialized.as("word-counts"))
            .toStream()
            .mapValues(Object::toString)
            .to(prefix + "word-counts", Produced.with(Serdes.String(), Serdes.String()));

        KStream<String, Long> clicks = builder.stream(prefix + "clicks", Consumed.with(Serdes.String(), Serdes.String()))
            .mapValues(v -> Long.parseLong(v));
        clicks.groupByKey(Grouped.with(Serdes.String(), Serdes.Long()))
            .windowedBy(TimeWindows.ofSizeWithNoGrace(Duration.ofSeconds(60)))
            .reduce(Long::sum, Materialized.as("click-sums"))
            .toStream()
            .map((w, sum) -> KeyValue.pair(w.key() + "@" + w.window().start(), sum.toString()))
            .to(prefix + "click-sums", Produced.with(Serdes.String(), Serdes.String()));

        KTable<String, String> users = builder.table(prefix + "users");
        clicks.join(users, (amount, name) -> name + ":" + amount)
            .to(prefix + "enriched", Produced.with(Serdes.String(), Serdes.String()));

        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        CountDownLatch done = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            System.out.println("STATE " + now);
            System.out.flush();
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                done.countDown();
            }
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(30));
            done.countDown();
        }));
        streams.start();
        done.await();
    }
}
