// franz-go (github.com/twmb/franz-go) against a Brook cluster: every matrix scenario in one process.
// Usage: franz BOOTSTRAP PREFIX. Topics PREFIX-<codec> (1 partition) and PREFIX-group (4 partitions)
// exist before it runs. One JSON line per scenario: {"cell", "ok", "detail", "ms"}.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"brook.dev/compat/report"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const n = 200

var (
	bootstrap string
	prefix    string
)

func codecOf(name string) kgo.CompressionCodec {
	switch name {
	case "gzip":
		return kgo.GzipCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}

func client(opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(strings.Split(bootstrap, ",")...)}, opts...)...)
}

func produceCodec(codec string) (string, error) {
	topic := prefix + "-" + codec
	// franz-go producers are idempotent unless DisableIdempotentWrite; acks=all is required for it.
	p, err := client(kgo.ProducerBatchCompression(codecOf(codec)), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(10*time.Millisecond))
	if err != nil {
		return "", err
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var records []*kgo.Record
	for i := 0; i < n; i++ {
		records = append(records, &kgo.Record{Topic: topic, Partition: 0, Key: []byte(fmt.Sprintf("k%d", i)),
			Value: []byte(fmt.Sprintf("%s-v%d", topic, i)), Headers: []kgo.RecordHeader{{Key: "h", Value: []byte(fmt.Sprint(i))}}})
	}
	results := p.ProduceSync(ctx, records...)
	if err := results.FirstErr(); err != nil {
		return "", err
	}
	for i, r := range results {
		if r.Record.Offset != int64(i) {
			return "", fmt.Errorf("record %d acknowledged at offset %d", i, r.Record.Offset)
		}
	}
	c, err := client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		return "", err
	}
	defer c.Close()
	var got []*kgo.Record
	for len(got) < n && ctx.Err() == nil {
		fetches := c.PollFetches(ctx)
		if errs := fetches.Errors(); len(errs) > 0 && ctx.Err() == nil {
			return "", fmt.Errorf("fetch: %v", errs[0].Err)
		}
		got = append(got, fetches.Records()...)
	}
	if len(got) != n {
		return "", fmt.Errorf("read back %d of %d", len(got), n)
	}
	for i, r := range got {
		if r.Offset != int64(i) || string(r.Key) != fmt.Sprintf("k%d", i) || string(r.Value) != fmt.Sprintf("%s-v%d", topic, i) ||
			len(r.Headers) != 1 || string(r.Headers[0].Value) != fmt.Sprint(i) {
			return "", fmt.Errorf("record %d read back as %s=%s at %d", i, r.Key, r.Value, r.Offset)
		}
	}
	return fmt.Sprintf("%d records, %s, idempotent, acks=all", n, codec), nil
}

func produceGroupRecords(tag string, count int) error {
	p, err := client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return err
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var records []*kgo.Record
	for i := 0; i < count; i++ {
		records = append(records, &kgo.Record{Topic: prefix + "-group", Partition: int32(i % 4), Value: []byte(fmt.Sprintf("%s%d", tag, i))})
	}
	return p.ProduceSync(ctx, records...).FirstErr()
}

func groupMember(group string, opts ...kgo.Opt) (*kgo.Client, error) {
	return client(append([]kgo.Opt{kgo.ConsumerGroup(group), kgo.ConsumeTopics(prefix + "-group"), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.SessionTimeout(10 * time.Second),
		kgo.HeartbeatInterval(500 * time.Millisecond)}, opts...)...)
}

func pollValues(c *kgo.Client, count int, timeout time.Duration) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var got []string
	for len(got) < count && ctx.Err() == nil {
		fetches := c.PollFetches(ctx)
		for _, e := range fetches.Errors() {
			if ctx.Err() == nil && !errors.Is(e.Err, context.DeadlineExceeded) {
				return got, fmt.Errorf("fetch: %v", e.Err)
			}
		}
		fetches.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	return got, nil
}

func groupConsume() (string, error) {
	if err := produceGroupRecords("a", 100); err != nil {
		return "", err
	}
	group := prefix + "-g1"
	c, err := groupMember(group)
	if err != nil {
		return "", err
	}
	defer c.Close()
	got, err := pollValues(c, 100, 60*time.Second)
	if err != nil {
		return "", err
	}
	if len(got) != 100 {
		return "", fmt.Errorf("group member read %d of 100", len(got))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.CommitUncommittedOffsets(ctx); err != nil {
		return "", err
	}
	offsets, err := kadm.NewClient(c).FetchOffsets(ctx, group)
	if err != nil {
		return "", err
	}
	var sum int64
	offsets.Each(func(o kadm.OffsetResponse) { sum += o.At })
	if sum != 100 {
		return "", fmt.Errorf("committed offsets sum to %d, not 100", sum)
	}
	return "100 records through group " + group + ", committed", nil
}

func groupResume() (string, error) {
	if err := produceGroupRecords("b", 8); err != nil {
		return "", err
	}
	c, err := groupMember(prefix + "-g1")
	if err != nil {
		return "", err
	}
	defer c.Close()
	got, err := pollValues(c, 8, 60*time.Second)
	if err != nil {
		return "", err
	}
	more, _ := pollValues(c, 1, time.Second)
	got = append(got, more...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.CommitUncommittedOffsets(ctx); err != nil {
		return "", err
	}
	sort.Strings(got)
	want := []string{"b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7"}
	if !reflect.DeepEqual(got, want) {
		return "", fmt.Errorf("a new member of the group read %v (expected only the 8 new records)", got)
	}
	return "a new member resumed from the committed offsets", nil
}

// member polls in its own goroutine and tracks its assignment through the rebalance callbacks
// (franz-go's default balancer is cooperative-sticky: assignments arrive incrementally).
type member struct {
	mu       sync.Mutex
	owned    map[int32]bool
	cl       *kgo.Client
	done     chan struct{}
	cancel   context.CancelFunc
	assigned bool
}

func newMember(group string) (*member, error) {
	m := &member{owned: map[int32]bool{}, done: make(chan struct{})}
	update := func(add bool) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.assigned = true
			for _, p := range parts[prefix+"-group"] {
				if add {
					m.owned[p] = true
				} else {
					delete(m.owned, p)
				}
			}
		}
	}
	cl, err := groupMember(group, kgo.OnPartitionsAssigned(update(true)), kgo.OnPartitionsRevoked(update(false)),
		kgo.OnPartitionsLost(update(false)))
	if err != nil {
		return nil, err
	}
	m.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			m.cl.PollFetches(ctx)
		}
	}()
	return m, nil
}

func (m *member) partitions() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int32
	for p := range m.owned {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (m *member) stop() {
	m.cancel()
	<-m.done
	m.cl.Close() // leaves the group
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
		s = append(s, fmt.Sprint(m.partitions()))
	}
	return fmt.Errorf("timed out waiting for %s; assignments %v", what, s)
}

func rebalance() (string, error) {
	group := prefix + "-g2"
	a, err := newMember(group)
	if err != nil {
		return "", err
	}
	defer a.stop()
	all := []int32{0, 1, 2, 3}
	if err := waitFor("the first member to own 4 partitions", 60*time.Second,
		func() bool { return reflect.DeepEqual(a.partitions(), all) }, a); err != nil {
		return "", err
	}
	b, err := newMember(group)
	if err != nil {
		return "", err
	}
	if err := waitFor("2 + 2 partitions after a join", 60*time.Second, func() bool {
		x, y := a.partitions(), b.partitions()
		u := append(append([]int32{}, x...), y...)
		sort.Slice(u, func(i, j int) bool { return u[i] < u[j] })
		return len(x) == 2 && len(y) == 2 && reflect.DeepEqual(u, all)
	}, a, b); err != nil {
		b.stop()
		return "", err
	}
	b.stop()
	if err := waitFor("4 partitions back on the first member after a leave", 60*time.Second,
		func() bool { return reflect.DeepEqual(a.partitions(), all) }, a); err != nil {
		return "", err
	}
	return "join: 4 -> 2+2 (cooperative-sticky), leave: 4", nil
}

func adminCells() {
	cl, err := client()
	if err != nil {
		report.Fail("admin.create_topic", err)
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topic := prefix + "-admin"
	ctx := context.Background()
	retention := "3600000"
	report.Cell("admin.create_topic", func() (string, error) {
		resp, err := adm.CreateTopics(ctx, 2, 3, map[string]*string{"retention.ms": &retention}, topic)
		if err != nil {
			return "", err
		}
		r, err := resp.On(topic, nil)
		if err != nil {
			return "", err
		}
		return topic, r.Err
	})
	report.Cell("admin.describe_topic", func() (string, error) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			details, err := adm.ListTopics(ctx, topic)
			if err != nil {
				return "", err
			}
			d := details[topic]
			ready := d.Err == nil && len(d.Partitions) == 2
			for _, p := range d.Partitions {
				ready = ready && p.Leader >= 0 && len(p.Replicas) == 3
			}
			if ready {
				return "2 partitions, 3 replicas", nil
			}
			if time.Now().After(deadline) {
				return "", fmt.Errorf("described as %+v", d)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	describe := func(key string) (string, int, error) {
		rcs, err := adm.DescribeTopicConfigs(ctx, topic)
		if err != nil {
			return "", 0, err
		}
		rc, err := rcs.On(topic, nil)
		if err != nil {
			return "", 0, err
		}
		if rc.Err != nil {
			return "", 0, rc.Err
		}
		for _, c := range rc.Configs {
			if c.Key == key {
				return c.MaybeValue(), len(rc.Configs), nil
			}
		}
		return "", len(rc.Configs), fmt.Errorf("%s not described", key)
	}
	report.Cell("admin.describe_configs", func() (string, error) {
		v, count, err := describe("retention.ms")
		if err == nil && v != "3600000" {
			err = fmt.Errorf("retention.ms described as %q", v)
		}
		return fmt.Sprintf("%d entries, retention.ms=%s", count, v), err
	})
	report.Cell("admin.describe_broker_configs", func() (string, error) {
		rcs, err := adm.DescribeBrokerConfigs(ctx)
		if err != nil {
			return "", err
		}
		if len(rcs) == 0 || rcs[0].Err != nil || len(rcs[0].Configs) == 0 {
			return "", fmt.Errorf("described as %+v", rcs)
		}
		return fmt.Sprintf("%d entries", len(rcs[0].Configs)), nil
	})
	report.Cell("admin.alter_config", func() (string, error) {
		v := "7200000"
		resp, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &v}}, topic)
		if err != nil {
			return "", err
		}
		if r, err := resp.On(topic, nil); err != nil || r.Err != nil {
			return "", fmt.Errorf("alter: %v %v", err, r.Err)
		}
		got, _, err := describe("retention.ms")
		if err == nil && got != v {
			err = fmt.Errorf("after the alter, retention.ms is %q", got)
		}
		return "incrementalAlterConfigs retention.ms=7200000", err
	})
	report.Cell("admin.list_groups", func() (string, error) {
		groups, err := adm.ListGroups(ctx)
		if err != nil {
			return "", err
		}
		if _, ok := groups[prefix+"-g1"]; !ok {
			return "", fmt.Errorf("listed %v", groups.Groups())
		}
		return fmt.Sprintf("%d groups", len(groups)), nil
	})
	report.Cell("admin.describe_groups", func() (string, error) {
		groups, err := adm.DescribeGroups(ctx, prefix+"-g1")
		if err != nil {
			return "", err
		}
		g := groups[prefix+"-g1"]
		if g.Err != nil || g.State != "Empty" || len(g.Members) != 0 {
			return "", fmt.Errorf("described as state %q, %d members, err %v", g.State, len(g.Members), g.Err)
		}
		offsets, err := adm.FetchOffsets(ctx, prefix+"-g1")
		if err != nil {
			return "", err
		}
		var sum int64
		offsets.Each(func(o kadm.OffsetResponse) { sum += o.At })
		if sum != 108 {
			return "", fmt.Errorf("committed offsets sum to %d, not 108", sum)
		}
		return "state Empty, committed offsets sum 108", nil
	})
	report.Cell("admin.delete_topic", func() (string, error) {
		resp, err := adm.DeleteTopics(ctx, topic)
		if err != nil {
			return "", err
		}
		if r, err := resp.On(topic, nil); err != nil || r.Err != nil {
			return "", fmt.Errorf("delete: %v %v", err, r.Err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			details, err := adm.ListTopics(ctx)
			if err == nil && !details.Has(topic) {
				return topic + " deleted", nil
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
	report.Cell("group.consume_commit", groupConsume)
	report.Cell("group.resume", groupResume)
	report.Cell("group.rebalance", rebalance)
	adminCells()
	report.Cell("txn.read_committed", txnReadCommitted)
}

// txnReadCommitted: an aborted then a committed transaction on PREFIX-txn (2 partitions); a
// read_committed consumer must read exactly the 20 committed records.
func txnReadCommitted() (string, error) {
	topic := prefix + "-txn"
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p, err := client(kgo.TransactionalID(prefix+"-tid"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return "", err
	}
	defer p.Close()
	for _, tag := range []string{"aborted", "committed"} {
		if err := p.BeginTransaction(); err != nil {
			return "", err
		}
		var records []*kgo.Record
		for i := 0; i < 20; i++ {
			records = append(records, &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: []byte(fmt.Sprintf("%s-%d", tag, i))})
		}
		if err := p.ProduceSync(ctx, records...).FirstErr(); err != nil {
			return "", err
		}
		if err := p.EndTransaction(ctx, kgo.TransactionEndTry(tag == "committed")); err != nil {
			return "", err
		}
	}
	c, err := client(kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart()}}))
	if err != nil {
		return "", err
	}
	defer c.Close()
	var got []string
	deadline := time.Now().Add(30 * time.Second)
	var quietUntil time.Time
	for time.Now().Before(deadline) {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		fetches := c.PollFetches(pctx)
		pcancel()
		fetches.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
		if len(got) >= 20 {
			if quietUntil.IsZero() {
				quietUntil = time.Now().Add(2 * time.Second) // anything more would be a leak
			} else if time.Now().After(quietUntil) {
				break
			}
		}
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
