package dev.tributary.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;

/**
 * The Kafka Streams peer of make bench-stream. Usage:
 * StreamsBench filter|count BOOTSTRAP INPUT OUTPUT APPLICATION_ID STATE_DIR
 *
 * <p>filter: the worker's
 * {@code SELECT after.rating_id AS id, after.rating AS rating, UPPER(after.region) AS region
 * FROM input WHERE after.rating < 3}.
 *
 * <p>count: the worker's
 * {@code SELECT after.region AS region, WINDOWSTART AS window_start, COUNT(*) AS ratings FROM input
 * WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 10 SECONDS) GROUP BY after.region EMIT FINAL}
 * (event time: the record timestamp; through a repartition topic, as the worker does).
 */
public final class StreamsBench {
  private static final ObjectMapper JSON = new ObjectMapper();

  private StreamsBench() {}

  public static void main(String[] args) throws Exception {
    String mode = args[0];
    Properties props = new Properties();
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[4]);
    props.put(StreamsConfig.STATE_DIR_CONFIG, args[5]);
    // The worker's at-least-once commit interval.
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 1000);
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
    StreamsBuilder builder = new StreamsBuilder();
    KStream<byte[], byte[]> input =
        builder.stream(args[2], Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()));
    String output = args[3];
    if (mode.equals("filter")) {
      input
          .flatMapValues(StreamsBench::alert)
          .to(output, Produced.with(Serdes.ByteArray(), Serdes.ByteArray()));
    } else {
      input
          .map((key, value) -> KeyValue.pair(region(value), value))
          .groupByKey(Grouped.with(Serdes.String(), Serdes.ByteArray()))
          .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMinutes(1), Duration.ofSeconds(10)))
          .count(Materialized.with(Serdes.String(), Serdes.Long()))
          .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
          .toStream()
          .map(
              (window, count) -> {
                ObjectNode key = JSON.createObjectNode();
                key.put("region", window.key());
                key.put("window_start", window.window().start());
                ObjectNode row = key.deepCopy();
                row.put("ratings", count);
                return KeyValue.pair(bytes(key), bytes(row));
              })
          .to(output, Produced.with(Serdes.ByteArray(), Serdes.ByteArray()));
    }
    KafkaStreams streams = new KafkaStreams(builder.build(), props);
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  streams.close(Duration.ofSeconds(20));
                  stopped.countDown();
                }));
    streams.start();
    stopped.await();
  }

  private static List<byte[]> alert(byte[] value) {
    try {
      JsonNode after = JSON.readTree(value).get("after");
      if (after == null || after.isNull() || !after.has("rating") || after.get("rating").asInt() >= 3) {
        return List.of();
      }
      ObjectNode row = JSON.createObjectNode();
      row.set("id", after.get("rating_id"));
      row.set("rating", after.get("rating"));
      row.put("region", after.get("region").asText().toUpperCase());
      return List.of(JSON.writeValueAsBytes(row));
    } catch (java.io.IOException e) {
      return List.of();
    }
  }

  private static String region(byte[] value) {
    try {
      return JSON.readTree(value).get("after").get("region").asText();
    } catch (java.io.IOException | NullPointerException e) {
      return "";
    }
  }

  private static byte[] bytes(JsonNode node) {
    try {
      return JSON.writeValueAsBytes(node);
    } catch (java.io.IOException e) {
      throw new IllegalStateException(e);
    }
  }
}
