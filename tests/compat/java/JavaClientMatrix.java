// The Apache Kafka 4.4.0 Java client (producer, consumer, AdminClient) against a Brook cluster: every
// matrix scenario in one JVM. Usage: JavaClientMatrix BOOTSTRAP PREFIX
// Topics PREFIX-<codec> (1 partition) and PREFIX-group (4 partitions) exist before it runs (the test
// creates them). Each scenario prints one JSON line {"cell", "ok", "detail", "ms"}; the pytest side
// (tests/compat/test_matrix.py) asserts every cell and cross-checks the data with another client.
import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.*;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.*;

public class JavaClientMatrix {
    static String bootstrap;
    static String prefix;
    static final int N = 200;
    static final String[] CODECS = {"none", "gzip", "snappy", "lz4", "zstd"};

    interface Body { String run() throws Exception; }

    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    static void cell(String name, Body body) {
        long t0 = System.nanoTime();
        boolean ok;
        String detail;
        try {
            detail = body.run();
            ok = true;
        } catch (Throwable e) {
            ok = false;
            Throwable root = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
            detail = root.toString();
        }
        long ms = (System.nanoTime() - t0) / 1_000_000;
        System.out.println("{\"cell\": " + quote(name) + ", \"ok\": " + ok + ", \"detail\": " + quote(detail)
                + ", \"ms\": " + ms + "}");
        System.out.flush();
    }

    static void check(boolean condition, String message) {
        if (!condition) throw new AssertionError(message);
    }

    static Properties base() {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        return p;
    }

    static KafkaProducer<String, String> producer(String codec) {
        Properties p = base();
        p.put("acks", "all");
        p.put("enable.idempotence", "true");
        p.put("compression.type", codec);
        p.put("linger.ms", "10");
        p.put("delivery.timeout.ms", "60000");
        return new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
    }

    static KafkaConsumer<String, String> consumer(String group) {
        Properties p = base();
        if (group != null) p.put("group.id", group);
        p.put("enable.auto.commit", "false");
        p.put("auto.offset.reset", "earliest");
        p.put("session.timeout.ms", "10000");
        p.put("heartbeat.interval.ms", "500");
        return new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer());
    }

    static String produceCodec(String codec) throws Exception {
        String topic = prefix + "-" + codec;
        try (KafkaProducer<String, String> p = producer(codec)) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < N; i++) {
                ProducerRecord<String, String> r = new ProducerRecord<>(topic, 0, "k" + i, topic + "-v" + i);
                r.headers().add("h", Integer.toString(i).getBytes());
                sent.add(p.send(r));
            }
            for (int i = 0; i < N; i++) {
                long offset = sent.get(i).get(60, TimeUnit.SECONDS).offset();
                check(offset == i, "record " + i + " acknowledged at offset " + offset);
            }
        }
        try (KafkaConsumer<String, String> c = consumer(null)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            List<ConsumerRecord<String, String>> got = new ArrayList<>();
            long deadline = System.currentTimeMillis() + 30_000;
            while (got.size() < N && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) got.add(r);
            }
            check(got.size() == N, "read back " + got.size() + " of " + N);
            for (int i = 0; i < N; i++) {
                ConsumerRecord<String, String> r = got.get(i);
                check(r.offset() == i && r.key().equals("k" + i) && r.value().equals(topic + "-v" + i)
                        && new String(r.headers().lastHeader("h").value()).equals(Integer.toString(i)),
                        "record " + i + " read back as " + r);
            }
        }
        return N + " records, " + codec + ", idempotent, acks=all";
    }

    static List<String> pollUntil(KafkaConsumer<String, String> c, int count, long timeoutMs) {
        List<String> got = new ArrayList<>();
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (got.size() < count && System.currentTimeMillis() < deadline) {
            for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) got.add(r.value());
        }
        return got;
    }

    static void produceGroupRecords(String tag, int count) throws Exception {
        try (KafkaProducer<String, String> p = producer("none")) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                sent.add(p.send(new ProducerRecord<>(prefix + "-group", i % 4, "k" + i, tag + i)));
            }
            for (Future<RecordMetadata> f : sent) f.get(60, TimeUnit.SECONDS);
        }
    }

    static String groupConsume() throws Exception {
        produceGroupRecords("a", 100);
        String group = prefix + "-g1";
        try (KafkaConsumer<String, String> c = consumer(group)) {
            c.subscribe(List.of(prefix + "-group"));
            List<String> got = pollUntil(c, 100, 60_000);
            check(got.size() == 100 && new HashSet<>(got).size() == 100, "group member read " + got.size() + " of 100");
            c.commitSync(Duration.ofSeconds(30));
            long committed = 0;
            for (Map.Entry<TopicPartition, OffsetAndMetadata> e : c.committed(c.assignment(), Duration.ofSeconds(30)).entrySet()) {
                check(e.getValue() != null, "no committed offset for " + e.getKey());
                committed += e.getValue().offset();
            }
            check(committed == 100, "committed offsets sum to " + committed + ", not 100");
        }
        return "100 records through group " + group + ", committed";
    }

    static String groupResume() throws Exception {
        produceGroupRecords("b", 8);
        try (KafkaConsumer<String, String> c = consumer(prefix + "-g1")) {
            c.subscribe(List.of(prefix + "-group"));
            List<String> got = pollUntil(c, 8, 60_000);
            // Give the member a moment to see anything more it would (wrongly) re-read.
            got.addAll(pollUntil(c, 1, 1_000));
            c.commitSync(Duration.ofSeconds(30));
            Collections.sort(got);
            check(got.equals(List.of("b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7")),
                    "a new member of the group read " + got + " (expected only the 8 new records)");
        }
        return "a new member resumed from the committed offsets";
    }

    static class Member implements Runnable {
        final KafkaConsumer<String, String> consumer;
        final AtomicReference<Set<Integer>> assignment = new AtomicReference<>(null);
        final AtomicBoolean stop = new AtomicBoolean(false);
        final AtomicReference<Throwable> failure = new AtomicReference<>(null);
        final Thread thread = new Thread(this);

        Member(String group) {
            consumer = consumer(group);
        }

        public void run() {
            try {
                consumer.subscribe(List.of(prefix + "-group"));
                while (!stop.get()) {
                    consumer.poll(Duration.ofMillis(100));
                    Set<Integer> now = new TreeSet<>();
                    for (TopicPartition tp : consumer.assignment()) now.add(tp.partition());
                    assignment.set(now);
                }
            } catch (Throwable e) {
                failure.set(e);
            } finally {
                consumer.close(Duration.ofSeconds(10));
            }
        }

        void stopAndJoin() throws InterruptedException {
            stop.set(true);
            thread.join(30_000);
        }
    }

    static void waitFor(String what, long timeoutMs, java.util.function.BooleanSupplier cond, Member... members) throws Exception {
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (System.currentTimeMillis() < deadline) {
            for (Member m : members) {
                if (m.failure.get() != null) throw new Exception("a member failed: " + m.failure.get());
            }
            if (cond.getAsBoolean()) return;
            Thread.sleep(100);
        }
        StringBuilder s = new StringBuilder();
        for (Member m : members) s.append(m.assignment.get()).append(' ');
        throw new AssertionError("timed out waiting for " + what + "; assignments " + s);
    }

    static String rebalance() throws Exception {
        String group = prefix + "-g2";
        Member a = new Member(group);
        Member b = new Member(group);
        try {
            a.thread.start();
            waitFor("the first member to own 4 partitions", 60_000,
                    () -> Set.of(0, 1, 2, 3).equals(a.assignment.get()), a);
            b.thread.start();
            waitFor("2 + 2 partitions after a join", 60_000, () -> {
                Set<Integer> x = a.assignment.get(), y = b.assignment.get();
                if (x == null || y == null || x.size() != 2 || y.size() != 2) return false;
                Set<Integer> all = new TreeSet<>(x);
                all.addAll(y);
                return all.equals(Set.of(0, 1, 2, 3));
            }, a, b);
            b.stopAndJoin();
            waitFor("4 partitions back on the first member after a leave", 60_000,
                    () -> Set.of(0, 1, 2, 3).equals(a.assignment.get()), a);
        } finally {
            a.stopAndJoin();
            b.stopAndJoin();
        }
        return "join: 4 -> 2+2, leave: 4";
    }

    static Admin admin() {
        return Admin.create(base());
    }

    public static void main(String[] args) throws Exception {
        bootstrap = args[0];
        prefix = args[1];
        for (String codec : CODECS) cell("produce." + codec, () -> produceCodec(codec));
        cell("group.consume_commit", JavaClientMatrix::groupConsume);
        cell("group.resume", JavaClientMatrix::groupResume);
        cell("group.rebalance", JavaClientMatrix::rebalance);

        String topic = prefix + "-admin";
        ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        try (Admin admin = admin()) {
            cell("admin.create_topic", () -> {
                admin.createTopics(List.of(new NewTopic(topic, 2, (short) 3).configs(Map.of("retention.ms", "3600000"))))
                        .all().get(60, TimeUnit.SECONDS);
                return topic;
            });
            cell("admin.describe_topic", () -> {
                long deadline = System.currentTimeMillis() + 30_000;
                while (true) {
                    TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS).get(topic);
                    boolean ready = d.partitions().size() == 2;
                    for (TopicPartitionInfo p : d.partitions()) {
                        ready &= p.leader() != null && p.replicas().size() == 3;
                    }
                    if (ready) return "2 partitions, 3 replicas, leaders " + d.partitions().get(0).leader().id()
                            + "," + d.partitions().get(1).leader().id();
                    check(System.currentTimeMillis() < deadline, "described as " + d);
                    Thread.sleep(200);
                }
            });
            cell("admin.describe_configs", () -> {
                Config c = admin.describeConfigs(List.of(resource)).all().get(30, TimeUnit.SECONDS).get(resource);
                ConfigEntry e = c.get("retention.ms");
                check(e != null && e.value().equals("3600000"), "retention.ms described as " + e);
                check(c.get("cleanup.policy") != null, "cleanup.policy missing from " + c.entries().size() + " entries");
                return c.entries().size() + " entries, retention.ms=3600000";
            });
            cell("admin.describe_broker_configs", () -> {
                String brokerId = Integer.toString(admin.describeCluster().nodes().get(30, TimeUnit.SECONDS).iterator().next().id());
                ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER, brokerId);
                Config c = admin.describeConfigs(List.of(broker)).all().get(30, TimeUnit.SECONDS).get(broker);
                check(c.entries().size() > 0, "no broker config entries");
                return "broker " + brokerId + ": " + c.entries().size() + " entries";
            });
            cell("admin.alter_config", () -> {
                admin.incrementalAlterConfigs(Map.of(resource, List.of(new AlterConfigOp(
                        new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET)))).all().get(30, TimeUnit.SECONDS);
                ConfigEntry e = admin.describeConfigs(List.of(resource)).all().get(30, TimeUnit.SECONDS).get(resource).get("retention.ms");
                check(e != null && e.value().equals("7200000"), "after the alter, retention.ms is " + e);
                return "incrementalAlterConfigs retention.ms=7200000";
            });
            cell("admin.list_groups", () -> {
                Set<String> ids = new TreeSet<>();
                for (GroupListing g : admin.listGroups().all().get(30, TimeUnit.SECONDS)) ids.add(g.groupId());
                // PREFIX-g2 committed nothing: like Kafka, its empty group is gone once its members left.
                check(ids.contains(prefix + "-g1"), "listed " + ids);
                return ids.size() + " groups";
            });
            cell("admin.describe_groups", () -> {
                ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(prefix + "-g1")).all()
                        .get(30, TimeUnit.SECONDS).get(prefix + "-g1");
                check(d.groupState() == GroupState.EMPTY && d.members().isEmpty(), "described as " + d);
                long sum = 0;
                for (OffsetAndMetadata o : admin.listConsumerGroupOffsets(prefix + "-g1").partitionsToOffsetAndMetadata()
                        .get(30, TimeUnit.SECONDS).values()) sum += o.offset();
                check(sum == 108, "committed offsets sum to " + sum + ", not 108");
                return "state " + d.groupState() + ", committed offsets sum 108";
            });
            cell("admin.delete_topic", () -> {
                admin.deleteTopics(List.of(topic)).all().get(30, TimeUnit.SECONDS);
                long deadline = System.currentTimeMillis() + 30_000;
                while (admin.listTopics().names().get(30, TimeUnit.SECONDS).contains(topic)) {
                    check(System.currentTimeMillis() < deadline, topic + " still listed");
                    Thread.sleep(200);
                }
                return topic + " deleted";
            });
        }
        cell("txn.init", () -> {
            Properties p = base();
            p.put("transactional.id", prefix + "-txn");
            p.put("max.block.ms", "20000");
            try (KafkaProducer<String, String> tp = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
                tp.initTransactions();
                tp.beginTransaction();
                tp.send(new ProducerRecord<>(prefix + "-none", 0, "t", "txn")).get(30, TimeUnit.SECONDS);
                tp.commitTransaction();
            }
            return "initTransactions, one committed transaction";
        });
        cell("txn.read_committed", () -> {
            String txnTopic = prefix + "-txn";
            Properties p = base();
            p.put("transactional.id", prefix + "-txn2");
            p.put("max.block.ms", "30000");
            try (KafkaProducer<String, String> tp = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
                tp.initTransactions();
                tp.beginTransaction();
                for (int i = 0; i < 20; i++) tp.send(new ProducerRecord<>(txnTopic, i % 2, "k", "aborted-" + i));
                tp.flush();
                tp.abortTransaction();
                tp.beginTransaction();
                for (int i = 0; i < 20; i++) tp.send(new ProducerRecord<>(txnTopic, i % 2, "k", "committed-" + i));
                tp.commitTransaction();
            }
            Properties cp = base();
            cp.put("isolation.level", "read_committed");
            cp.put("auto.offset.reset", "earliest");
            cp.put("enable.auto.commit", "false");
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(cp, new StringDeserializer(), new StringDeserializer())) {
                List<TopicPartition> tps = List.of(new TopicPartition(txnTopic, 0), new TopicPartition(txnTopic, 1));
                c.assign(tps);
                c.seekToBeginning(tps);
                List<String> got = pollUntil(c, 20, 30_000);
                got.addAll(pollUntil(c, 1, 2_000));  // anything more would be a leak
                check(got.size() == 20, "read_committed read " + got.size() + " records: " + got);
                for (String v : got) check(v.startsWith("committed-"), "read_committed saw " + v);
            }
            return "an aborted then a committed transaction; read_committed sees only the committed 20";
        });
        System.exit(0);
    }
}
