package kbroker.share;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ShareGroupDescription;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Test;

/** Kafka 4.4's KafkaShareConsumer against kbroker: two consumers sharing one partition, and
 *  explicit acknowledgement with redelivery. */
class ShareConsumerTest {
    private static final String BOOTSTRAP = System.getenv().getOrDefault("KBROKER_BOOTSTRAP", "localhost:9092");

    private static Admin admin() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
        return Admin.create(p);
    }

    private static void setUp(Admin admin, String topic, String group) throws Exception {
        admin.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get();
        ConfigResource res = new ConfigResource(ConfigResource.Type.GROUP, group);
        admin.incrementalAlterConfigs(Map.of(res, List.of(new AlterConfigOp(
            new ConfigEntry("share.auto.offset.reset", "earliest"), AlterConfigOp.OpType.SET)))).all().get();
    }

    private static void produce(String topic, int count) throws Exception {
        Properties p = new Properties();
        p.put("bootstrap.servers", BOOTSTRAP);
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            for (int i = 0; i < count; i++) {
                producer.send(new ProducerRecord<>(topic, 0, "k" + i, "v" + i)).get(); // one batch per record
            }
        }
    }

    private static KafkaShareConsumer<String, String> consumer(String group, String mode) {
        Properties p = new Properties();
        p.put("bootstrap.servers", BOOTSTRAP);
        p.put("group.id", group);
        p.put("key.deserializer", StringDeserializer.class.getName());
        p.put("value.deserializer", StringDeserializer.class.getName());
        p.put("max.poll.records", "10");
        p.put("share.acknowledgement.mode", mode);
        return new KafkaShareConsumer<>(p);
    }

    @Test
    void twoConsumersShareOnePartition() throws Exception {
        String topic = "java-share-" + UUID.randomUUID();
        String group = "java-share-group-" + UUID.randomUUID();
        int total = 100;
        try (Admin admin = admin()) {
            setUp(admin, topic, group);
            produce(topic, total);
            Map<String, Set<Long>> seen = new HashMap<>();
            List<Long> all = new ArrayList<>();
            try (KafkaShareConsumer<String, String> a = consumer(group, "implicit");
                 KafkaShareConsumer<String, String> b = consumer(group, "implicit")) {
                a.subscribe(List.of(topic));
                b.subscribe(List.of(topic));
                long deadline = System.currentTimeMillis() + 60_000;
                while (all.size() < total && System.currentTimeMillis() < deadline) {
                    for (Map.Entry<String, KafkaShareConsumer<String, String>> e
                            : Map.of("a", a, "b", b).entrySet()) {
                        ConsumerRecords<String, String> records = e.getValue().poll(Duration.ofMillis(200));
                        for (ConsumerRecord<String, String> r : records) {
                            assertEquals("v" + r.offset(), r.value());
                            assertEquals(1, r.deliveryCount().orElse((short) -1).intValue());
                            seen.computeIfAbsent(e.getKey(), k -> new HashSet<>()).add(r.offset());
                            all.add(r.offset());
                        }
                    }
                }
                // Both members are assigned the one partition: the group shares it.
                ShareGroupDescription d = admin.describeShareGroups(List.of(group)).describedGroups().get(group).get();
                assertEquals(2, d.members().size());
                d.members().forEach(m -> assertEquals(1, m.assignment().topicPartitions().size()));
                Set<GroupType> types = new HashSet<>();
                for (GroupListing g : admin.listGroups().all().get()) {
                    if (g.groupId().equals(group)) {
                        types.add(g.type().orElse(GroupType.UNKNOWN));
                    }
                }
                assertEquals(Set.of(GroupType.SHARE), types);
            }
            assertEquals(total, all.size(), "every record delivered once: " + all);
            assertEquals(total, new HashSet<>(all).size(), "no record delivered twice");
            assertTrue(seen.getOrDefault("a", Set.of()).size() > 0 && seen.getOrDefault("b", Set.of()).size() > 0,
                "both consumers got records: " + seen);
        }
    }

    @Test
    void releasedRecordIsRedeliveredWithItsDeliveryCount() throws Exception {
        String topic = "java-share-" + UUID.randomUUID();
        String group = "java-share-group-" + UUID.randomUUID();
        try (Admin admin = admin()) {
            setUp(admin, topic, group);
            produce(topic, 3);
            try (KafkaShareConsumer<String, String> c = consumer(group, "explicit")) {
                c.subscribe(List.of(topic));
                Map<Long, List<Integer>> deliveries = new HashMap<>();
                Set<Long> accepted = new HashSet<>();
                long deadline = System.currentTimeMillis() + 60_000;
                while (accepted.size() < 3 && System.currentTimeMillis() < deadline) {
                    for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                        int count = r.deliveryCount().orElse((short) -1);
                        deliveries.computeIfAbsent(r.offset(), k -> new ArrayList<>()).add(count);
                        if (r.offset() == 1 && count == 1) {
                            c.acknowledge(r, AcknowledgeType.RELEASE);
                        } else {
                            c.acknowledge(r, AcknowledgeType.ACCEPT);
                            accepted.add(r.offset());
                        }
                    }
                    c.commitSync();
                }
                assertEquals(List.of(1), deliveries.get(0L));
                assertEquals(List.of(1, 2), deliveries.get(1L));
                assertEquals(List.of(1), deliveries.get(2L));
            }
        }
    }
}
