// Sarama (github.com/IBM/sarama) against a Brook cluster: every matrix scenario in one process.
// Usage: sarama BOOTSTRAP PREFIX. Topics PREFIX-<codec> (1 partition) and PREFIX-group (4 partitions)
// exist before it runs. One JSON line per scenario: {"cell", "ok", "detail", "ms"}.
package main

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"brook.dev/compat/report"
	"github.com/IBM/sarama"
)

const n = 200

var (
	bootstrap string
	prefix    string
)

func brokers() []string { return strings.Split(bootstrap, ",") }

func config() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V3_6_0_0
	c.ClientID = "brook-compat-sarama"
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Enable = false
	c.Consumer.Group.Session.Timeout = 10 * time.Second
	c.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Partitioner = sarama.NewManualPartitioner
	return c
}

func idempotent(codec sarama.CompressionCodec) *sarama.Config {
	c := config()
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1
	c.Producer.Compression = codec
	c.Producer.Flush.Frequency = 10 * time.Millisecond
	return c
}

var codecs = map[string]sarama.CompressionCodec{"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP,
	"snappy": sarama.CompressionSnappy, "lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD}

func produceCodec(codec string) (string, error) {
	topic := prefix + "-" + codec
	p, err := sarama.NewSyncProducer(brokers(), idempotent(codecs[codec]))
	if err != nil {
		return "", err
	}
	var msgs []*sarama.ProducerMessage
	for i := 0; i < n; i++ {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: 0, Key: sarama.StringEncoder(fmt.Sprintf("k%d", i)),
			Value:   sarama.StringEncoder(fmt.Sprintf("%s-v%d", topic, i)),
			Headers: []sarama.RecordHeader{{Key: []byte("h"), Value: []byte(fmt.Sprint(i))}}})
	}
	err = p.SendMessages(msgs)
	p.Close()
	if err != nil {
		return "", err
	}
	for i, m := range msgs {
		if m.Offset != int64(i) {
			return "", fmt.Errorf("record %d acknowledged at offset %d", i, m.Offset)
		}
	}
	c, err := sarama.NewConsumer(brokers(), config())
	if err != nil {
		return "", err
	}
	defer c.Close()
	pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		return "", err
	}
	defer pc.Close()
	timeout := time.After(30 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case m := <-pc.Messages():
			if m.Offset != int64(i) || string(m.Key) != fmt.Sprintf("k%d", i) || string(m.Value) != fmt.Sprintf("%s-v%d", topic, i) ||
				len(m.Headers) != 1 || string(m.Headers[0].Value) != fmt.Sprint(i) {
				return "", fmt.Errorf("record %d read back as %s=%s at %d", i, m.Key, m.Value, m.Offset)
			}
		case e := <-pc.Errors():
			return "", e
		case <-timeout:
			return "", fmt.Errorf("read back %d of %d", i, n)
		}
	}
	return fmt.Sprintf("%d records, %s, idempotent, acks=all", n, codec), nil
}

func produceGroupRecords(tag string, count int) error {
	p, err := sarama.NewSyncProducer(brokers(), config())
	if err != nil {
		return err
	}
	defer p.Close()
	var msgs []*sarama.ProducerMessage
	for i := 0; i < count; i++ {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: prefix + "-group", Partition: int32(i % 4),
			Value: sarama.StringEncoder(fmt.Sprintf("%s%d", tag, i))})
	}
	return p.SendMessages(msgs)
}

// handler records its claims and the values it reads; it marks every message and commits on demand.
type handler struct {
	mu     sync.Mutex
	owned  []int32
	values []string
}

func (h *handler) Setup(s sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.owned = append([]int32{}, s.Claims()[prefix+"-group"]...)
	sort.Slice(h.owned, func(i, j int) bool { return h.owned[i] < h.owned[j] })
	return nil
}

func (h *handler) Cleanup(sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.owned = nil
	return nil
}

func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		h.mu.Lock()
		h.values = append(h.values, string(m.Value))
		h.mu.Unlock()
		s.MarkMessage(m, "")
		s.Commit()
	}
	return nil
}

func (h *handler) partitions() []int32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int32{}, h.owned...)
}

func (h *handler) read() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string{}, h.values...)
}

type member struct {
	group  sarama.ConsumerGroup
	h      *handler
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func newMember(groupID string) (*member, error) {
	g, err := sarama.NewConsumerGroup(brokers(), groupID, config())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{group: g, h: &handler{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			if err := g.Consume(ctx, []string{prefix + "-group"}, m.h); err != nil && ctx.Err() == nil {
				m.err = err
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	return m, nil
}

func (m *member) stop() {
	m.cancel()
	<-m.done
	m.group.Close()
}

func waitFor(what string, timeout time.Duration, cond func() bool, members ...*member) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	var s []string
	for _, m := range members {
		s = append(s, fmt.Sprintf("%v (last error %v)", m.h.partitions(), m.err))
	}
	return fmt.Errorf("timed out waiting for %s; assignments %v", what, s)
}

func committedSum(admin sarama.ClusterAdmin, group string) (int64, error) {
	resp, err := admin.ListConsumerGroupOffsets(group, nil)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, parts := range resp.Blocks {
		for _, b := range parts {
			if b.Offset > 0 {
				sum += b.Offset
			}
		}
	}
	return sum, nil
}

func groupConsume(admin sarama.ClusterAdmin) (string, error) {
	if err := produceGroupRecords("a", 100); err != nil {
		return "", err
	}
	group := prefix + "-g1"
	m, err := newMember(group)
	if err != nil {
		return "", err
	}
	err = waitFor("100 records", 60*time.Second, func() bool { return len(m.h.read()) >= 100 }, m)
	m.stop()
	if err != nil {
		return "", err
	}
	if got := m.h.read(); len(got) != 100 {
		return "", fmt.Errorf("group member read %d records, not 100", len(got))
	}
	sum, err := committedSum(admin, group)
	if err == nil && sum != 100 {
		err = fmt.Errorf("committed offsets sum to %d, not 100", sum)
	}
	return "100 records through group " + group + ", committed", err
}

func groupResume() (string, error) {
	if err := produceGroupRecords("b", 8); err != nil {
		return "", err
	}
	m, err := newMember(prefix + "-g1")
	if err != nil {
		return "", err
	}
	err = waitFor("8 new records", 60*time.Second, func() bool { return len(m.h.read()) >= 8 }, m)
	time.Sleep(time.Second)
	m.stop()
	if err != nil {
		return "", err
	}
	got := m.h.read()
	sort.Strings(got)
	if want := []string{"b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7"}; !reflect.DeepEqual(got, want) {
		return "", fmt.Errorf("a new member of the group read %v (expected only the 8 new records)", got)
	}
	return "a new member resumed from the committed offsets", nil
}

func rebalance() (string, error) {
	group := prefix + "-g2"
	all := []int32{0, 1, 2, 3}
	a, err := newMember(group)
	if err != nil {
		return "", err
	}
	defer a.stop()
	if err := waitFor("the first member to own 4 partitions", 60*time.Second,
		func() bool { return reflect.DeepEqual(a.h.partitions(), all) }, a); err != nil {
		return "", err
	}
	b, err := newMember(group)
	if err != nil {
		return "", err
	}
	if err := waitFor("2 + 2 partitions after a join", 60*time.Second, func() bool {
		x, y := a.h.partitions(), b.h.partitions()
		u := append(append([]int32{}, x...), y...)
		sort.Slice(u, func(i, j int) bool { return u[i] < u[j] })
		return len(x) == 2 && len(y) == 2 && reflect.DeepEqual(u, all)
	}, a, b); err != nil {
		b.stop()
		return "", err
	}
	b.stop()
	if err := waitFor("4 partitions back on the first member after a leave", 60*time.Second,
		func() bool { return reflect.DeepEqual(a.h.partitions(), all) }, a); err != nil {
		return "", err
	}
	return "join: 4 -> 2+2, leave: 4", nil
}

func adminCells(admin sarama.ClusterAdmin) {
	topic := prefix + "-admin"
	retention := "3600000"
	resource := sarama.ConfigResource{Type: sarama.TopicResource, Name: topic}
	report.Cell("admin.create_topic", func() (string, error) {
		return topic, admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 3,
			ConfigEntries: map[string]*string{"retention.ms": &retention}}, false)
	})
	report.Cell("admin.describe_topic", func() (string, error) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			ms, err := admin.DescribeTopics([]string{topic})
			if err != nil {
				return "", err
			}
			ready := len(ms) == 1 && ms[0].Err == sarama.ErrNoError && len(ms[0].Partitions) == 2
			if ready {
				for _, p := range ms[0].Partitions {
					ready = ready && p.Leader >= 0 && len(p.Replicas) == 3
				}
			}
			if ready {
				return "2 partitions, 3 replicas", nil
			}
			if time.Now().After(deadline) {
				return "", fmt.Errorf("described as %+v", ms)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	describe := func(key string) (string, int, error) {
		entries, err := admin.DescribeConfig(resource)
		if err != nil {
			return "", 0, err
		}
		for _, e := range entries {
			if e.Name == key {
				return e.Value, len(entries), nil
			}
		}
		return "", len(entries), fmt.Errorf("%s not described", key)
	}
	report.Cell("admin.describe_configs", func() (string, error) {
		v, count, err := describe("retention.ms")
		if err == nil && v != retention {
			err = fmt.Errorf("retention.ms described as %q", v)
		}
		return fmt.Sprintf("%d entries, retention.ms=%s", count, v), err
	})
	report.Cell("admin.describe_broker_configs", func() (string, error) {
		brokers, _, err := admin.DescribeCluster()
		if err != nil {
			return "", err
		}
		id := fmt.Sprint(brokers[0].ID())
		entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.BrokerResource, Name: id})
		if err == nil && len(entries) == 0 {
			err = fmt.Errorf("no broker config entries")
		}
		return fmt.Sprintf("broker %s: %d entries", id, len(entries)), err
	})
	report.Cell("admin.alter_config", func() (string, error) {
		v := "7200000"
		err := admin.IncrementalAlterConfig(sarama.TopicResource, topic,
			map[string]sarama.IncrementalAlterConfigsEntry{"retention.ms": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &v}}, false)
		if err != nil {
			return "", err
		}
		got, _, err := describe("retention.ms")
		if err == nil && got != v {
			err = fmt.Errorf("after the alter, retention.ms is %q", got)
		}
		return "IncrementalAlterConfig retention.ms=7200000", err
	})
	report.Cell("admin.list_groups", func() (string, error) {
		groups, err := admin.ListConsumerGroups()
		if err != nil {
			return "", err
		}
		if _, ok := groups[prefix+"-g1"]; !ok {
			return "", fmt.Errorf("listed %v", groups)
		}
		return fmt.Sprintf("%d groups", len(groups)), nil
	})
	report.Cell("admin.describe_groups", func() (string, error) {
		ds, err := admin.DescribeConsumerGroups([]string{prefix + "-g1"})
		if err != nil {
			return "", err
		}
		if len(ds) != 1 || ds[0].Err != sarama.ErrNoError || ds[0].State != "Empty" || len(ds[0].Members) != 0 {
			return "", fmt.Errorf("described as %+v", ds)
		}
		sum, err := committedSum(admin, prefix+"-g1")
		if err == nil && sum != 108 {
			err = fmt.Errorf("committed offsets sum to %d, not 108", sum)
		}
		return "state Empty, committed offsets sum 108", err
	})
	report.Cell("admin.delete_topic", func() (string, error) {
		if err := admin.DeleteTopic(topic); err != nil {
			return "", err
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			topics, err := admin.ListTopics()
			if err == nil {
				if _, ok := topics[topic]; !ok {
					return topic + " deleted", nil
				}
			}
			if time.Now().After(deadline) {
				return "", fmt.Errorf("%s still listed", topic)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

func main() {
	bootstrap, prefix = os.Args[1], os.Args[2]
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		report.Cell("produce."+codec, func() (string, error) { return produceCodec(codec) })
	}
	admin, err := sarama.NewClusterAdmin(brokers(), config())
	if err != nil {
		for _, c := range []string{"group.consume_commit", "group.resume", "group.rebalance", "admin.create_topic"} {
			report.Fail(c, err)
		}
		return
	}
	defer admin.Close()
	report.Cell("group.consume_commit", func() (string, error) { return groupConsume(admin) })
	report.Cell("group.resume", groupResume)
	report.Cell("group.rebalance", rebalance)
	adminCells(admin)
	report.Cell("txn.read_committed", txnReadCommitted)
}

// txnReadCommitted: an aborted then a committed transaction on PREFIX-txn (2 partitions); a
// read_committed consumer must read exactly the 20 committed records.
func txnReadCommitted() (string, error) {
	topic := prefix + "-txn"
	c := idempotent(sarama.CompressionNone)
	c.Producer.Transaction.ID = prefix + "-tid"
	p, err := sarama.NewSyncProducer(brokers(), c)
	if err != nil {
		return "", err
	}
	defer p.Close()
	for _, tag := range []string{"aborted", "committed"} {
		if err := p.BeginTxn(); err != nil {
			return "", err
		}
		for i := 0; i < 20; i++ {
			msg := &sarama.ProducerMessage{Topic: topic, Partition: int32(i % 2), Value: sarama.StringEncoder(fmt.Sprintf("%s-%d", tag, i))}
			if _, _, err := p.SendMessage(msg); err != nil {
				return "", err
			}
		}
		if tag == "committed" {
			err = p.CommitTxn()
		} else {
			err = p.AbortTxn()
		}
		if err != nil {
			return "", err
		}
	}
	cc := config()
	cc.Consumer.IsolationLevel = sarama.ReadCommitted
	consumer, err := sarama.NewConsumer(brokers(), cc)
	if err != nil {
		return "", err
	}
	defer consumer.Close()
	values := make(chan string, 100)
	for _, partition := range []int32{0, 1} {
		pc, err := consumer.ConsumePartition(topic, partition, sarama.OffsetOldest)
		if err != nil {
			return "", err
		}
		defer pc.Close()
		go func(pc sarama.PartitionConsumer) {
			for m := range pc.Messages() {
				values <- string(m.Value)
			}
		}(pc)
	}
	var got []string
	timeout := time.After(30 * time.Second)
	for len(got) < 20 {
		select {
		case v := <-values:
			got = append(got, v)
		case <-timeout:
			return "", fmt.Errorf("read_committed read %d records: %v", len(got), got)
		}
	}
	select { // anything more would be a leak
	case v := <-values:
		got = append(got, v)
	case <-time.After(2 * time.Second):
	}
	if len(got) != 20 {
		return "", fmt.Errorf("read_committed read %d records: %v", len(got), got)
	}
	for _, v := range got {
		if !strings.HasPrefix(v, "committed-") {
			return "", fmt.Errorf("read_committed saw %s", v)
		}
	}
	return "an aborted then a committed transaction; read_committed sees only the committed 20", nil
}
