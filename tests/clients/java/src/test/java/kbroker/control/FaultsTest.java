package kbroker.control;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.NotLeaderOrFollowerException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Test;

/** kafka-clients against kbroker's control endpoint: injected errors and a session expiry. */
class FaultsTest {
  static final String BOOTSTRAP = System.getenv("KBROKER_BOOTSTRAP");
  static final String CONTROL = System.getenv("KBROKER_CONTROL_URL");
  static final HttpClient HTTP = HttpClient.newHttpClient();

  static String control(String method, String path, String body) throws Exception {
    HttpRequest.Builder req = HttpRequest.newBuilder(URI.create(CONTROL + path)).timeout(Duration.ofSeconds(30));
    req.method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body));
    HttpResponse<String> resp = HTTP.send(req.build(), HttpResponse.BodyHandlers.ofString());
    assertEquals(200, resp.statusCode(), method + " " + path + ": " + resp.body());
    return resp.body();
  }

  static long number(String json, String field) {
    Matcher m = Pattern.compile("\"" + field + "\":\\s*(-?\\d+)").matcher(json);
    assertTrue(m.find(), field + " in " + json);
    return Long.parseLong(m.group(1));
  }

  static KafkaProducer<String, String> producer(String clientId, int retries) {
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
    p.put(ProducerConfig.CLIENT_ID_CONFIG, clientId);
    p.put(ProducerConfig.RETRIES_CONFIG, retries);
    p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, retries > 0);
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
    return new KafkaProducer<>(p);
  }

  @Test
  void producerSeesTheInjectedNotLeaderOrFollowerAndRecovers() throws Exception {
    String topic = "java-faults-" + UUID.randomUUID();
    String rule = "{\"api\": \"Produce\", \"error\": \"NOT_LEADER_OR_FOLLOWER\", \"count\": 1, \"topic\": \"" + topic + "\"}";
    try (KafkaProducer<String, String> producer = producer("java-no-retry", 0)) {
      producer.send(new ProducerRecord<>(topic, "warm-up")).get();
      long id = number(control("POST", "/faults", rule), "id");
      ExecutionException failed = assertThrows(ExecutionException.class,
          () -> producer.send(new ProducerRecord<>(topic, "refused")).get());
      assertInstanceOf(NotLeaderOrFollowerException.class, failed.getCause());
      assertEquals(1, producer.send(new ProducerRecord<>(topic, "after")).get().offset());  // the rule is spent
      assertEquals(1, number(control("GET", "/faults/" + id, null), "fired"));
    }
    // With retries the client refreshes its metadata, retries and succeeds; the rule fired once.
    try (KafkaProducer<String, String> producer = producer("java-retry", 5)) {
      long id = number(control("POST", "/faults", rule), "id");
      assertEquals(2, producer.send(new ProducerRecord<>(topic, "retried")).get().offset());
      String rules = control("GET", "/faults/" + id, null);
      assertEquals(1, number(rules, "fired"));
      String fired = control("GET", "/faults/fired?rule=" + id, null);
      assertTrue(fired.contains("\"client_id\": \"java-retry\""), fired);
      assertTrue(fired.contains("\"error\": \"NOT_LEADER_OR_FOLLOWER\""), fired);
    }
  }

  @Test
  void consumerRejoinsAfterItsSessionExpires() throws Exception {
    String topic = "java-session-" + UUID.randomUUID();
    try (KafkaProducer<String, String> producer = producer("java-session-producer", 5)) {
      producer.send(new ProducerRecord<>(topic, "first")).get();
    }
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
    p.put(ConsumerConfig.GROUP_ID_CONFIG, "java-session-group");
    p.put(ConsumerConfig.CLIENT_ID_CONFIG, "java-session-consumer");
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 45000);
    p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500);
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
    List<String> events = new ArrayList<>();
    try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(p)) {
      consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
        public void onPartitionsRevoked(Collection<TopicPartition> parts) { if (!parts.isEmpty()) events.add("revoked"); }
        public void onPartitionsAssigned(Collection<TopicPartition> parts) { if (!parts.isEmpty()) events.add("assigned"); }
        public void onPartitionsLost(Collection<TopicPartition> parts) { events.add("lost"); }
      });
      List<String> seen = pollUntil(consumer, "first");
      int generation = consumer.groupMetadata().generationId();
      assertEquals(List.of("assigned"), events);
      // The broker's manual clock jumps past the 45 s session: the member expires at once.
      number(control("POST", "/clock/advance", "{\"ms\": 45001}"), "now_ms");
      long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
      while (events.size() < 3) {  // the next heartbeat is refused; the consumer rejoins
        assertTrue(System.nanoTime() < deadline, "no rejoin after the session expiry: " + events);
        consumer.poll(Duration.ofMillis(200));
      }
      try (KafkaProducer<String, String> producer = producer("java-session-producer", 5)) {
        producer.send(new ProducerRecord<>(topic, "second")).get();
      }
      seen.addAll(pollUntil(consumer, "second"));
      // The heartbeat after the expiry got UNKNOWN_MEMBER_ID: partitions lost, a new generation.
      assertEquals(List.of("assigned", "lost", "assigned"), events);
      assertTrue(consumer.groupMetadata().generationId() > generation);
      // The fetch the last poll sent waits on the broker until its max wait (500 ms) passes on the
      // manual clock, and close() waits for it (up to its 30 s): move the clock past that wait first.
      number(control("POST", "/clock/advance", "{\"ms\": 1000}"), "now_ms");
    }
  }

  static List<String> pollUntil(KafkaConsumer<String, String> consumer, String value) {
    List<String> seen = new ArrayList<>();
    long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
    while (!seen.contains(value)) {
      assertTrue(System.nanoTime() < deadline, "timed out waiting for " + value + "; saw " + seen);
      for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
        seen.add(r.value());
      }
    }
    return seen;
  }
}
