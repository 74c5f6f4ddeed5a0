// franz-go scenarios for the kbroker client compatibility matrix.
package main

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"strconv"
	"sync"
	"time"

	"kbroker/compat/internal/harness"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

type Ctx = harness.Ctx

var check = harness.Check

var security = harness.LoadSecurity()

func client(c *Ctx, opts ...kgo.Opt) (*kgo.Client, error) {
	base := []kgo.Opt{kgo.SeedBrokers(c.Brokers()...)}
	if security != nil {
		auth := scram.Auth{User: security.User, Pass: security.Password}
		mech := auth.AsSha256Mechanism()
		if security.Mechanism == "SCRAM-SHA-512" {
			mech = auth.AsSha512Mechanism()
		}
		base = append(base, kgo.SASL(mech), kgo.DialTLSConfig(security.TLS))
	}
	return kgo.NewClient(append(base, opts...)...)
}

func withAdmin(c *Ctx, f func(*kadm.Client) error) error {
	cl, err := client(c)
	if err != nil {
		return err
	}
	defer cl.Close()
	return f(kadm.NewClient(cl))
}

func ctxT(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func nPartitions(a *kadm.Client, name string) int {
	ctx, cancel := ctxT(10 * time.Second)
	defer cancel()
	td, err := a.ListTopics(ctx, name)
	if err != nil || td[name].Err != nil {
		return 0
	}
	return len(td[name].Partitions)
}

func createTopic(c *Ctx, n int) (string, error) {
	name := c.Topic()
	err := withAdmin(c, func(a *kadm.Client) error {
		ctx, cancel := ctxT(15 * time.Second)
		defer cancel()
		resp, err := a.CreateTopics(ctx, int32(n), c.RF, nil, name)
		if err != nil {
			return err
		}
		if err := resp[name].Err; err != nil {
			return err
		}
		return harness.WaitUntil(func() bool { return nPartitions(a, name) == n }, 15*time.Second, "topic metadata")
	})
	return name, err
}

func produce(c *Ctx, recs []*kgo.Record, opts ...kgo.Opt) (kgo.ProduceResults, error) {
	cl, err := client(c, opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := ctxT(20 * time.Second)
	defer cancel()
	res := cl.ProduceSync(ctx, recs...)
	return res, res.FirstErr()
}

func consumeN(cl *kgo.Client, n int) ([]*kgo.Record, error) {
	ctx, cancel := ctxT(20 * time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollRecords(ctx, n-len(out))
		if ctx.Err() != nil {
			return out, fmt.Errorf("consumed %d of %d records", len(out), n)
		}
		for _, e := range fs.Errors() {
			return out, fmt.Errorf("fetch %s[%d]: %w", e.Topic, e.Partition, e.Err)
		}
		out = append(out, fs.Records()...)
	}
	return out, nil
}

func consumeFromStart(c *Ctx, topic string, n int, opts ...kgo.Opt) ([]*kgo.Record, error) {
	cl, err := client(c, append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	return consumeN(cl, n)
}

var codecs = map[string]kgo.CompressionCodec{
	"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
	"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
}

func produceConsume(codec string) func(*Ctx) error {
	return func(c *Ctx) error {
		topic, err := createTopic(c, 1)
		if err != nil {
			return err
		}
		var recs []*kgo.Record
		var values []string
		for i := 0; i < 100; i++ {
			v := ""
			for j := 0; j < 20; j++ {
				v += fmt.Sprintf("value-%d-", i)
			}
			values = append(values, v)
			recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(v)})
		}
		if _, err := produce(c, recs, kgo.ProducerBatchCompression(codecs[codec]), kgo.ProducerLinger(5*time.Millisecond)); err != nil {
			return err
		}
		got, err := consumeFromStart(c, topic, 100)
		if err != nil {
			return err
		}
		for i, r := range got {
			if string(r.Value) != values[i] {
				return fmt.Errorf("value %d differs", i)
			}
		}
		return nil
	}
}

func keyedOrdering(c *Ctx) error {
	topic, err := createTopic(c, 3)
	if err != nil {
		return err
	}
	var recs []*kgo.Record
	for i := 0; i < 300; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("k%d", i%5)), Value: []byte(strconv.Itoa(i))})
	}
	if _, err := produce(c, recs, kgo.ProducerLinger(5*time.Millisecond)); err != nil {
		return err
	}
	got, err := consumeFromStart(c, topic, 300)
	if err != nil {
		return err
	}
	seen := map[string][]int{}
	parts := map[string]map[int32]bool{}
	for _, r := range got {
		v, _ := strconv.Atoi(string(r.Value))
		seen[string(r.Key)] = append(seen[string(r.Key)], v)
		if parts[string(r.Key)] == nil {
			parts[string(r.Key)] = map[int32]bool{}
		}
		parts[string(r.Key)][r.Partition] = true
	}
	for k, vals := range seen {
		if !sort.IntsAreSorted(vals) {
			return fmt.Errorf("key %s out of order", k)
		}
		if len(parts[k]) != 1 {
			return fmt.Errorf("key %s spread over partitions", k)
		}
	}
	return nil
}

func headersTimestamps(c *Ctx) error {
	topic, err := createTopic(c, 1)
	if err != nil {
		return err
	}
	ts := int64(1_600_000_000_000)
	hdrs := []kgo.RecordHeader{{Key: "h1", Value: []byte("v1")}, {Key: "h2", Value: []byte{}}, {Key: "h1", Value: []byte("again")}}
	var recs []*kgo.Record
	for i := 0; i < 3; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte("x"), Headers: hdrs, Timestamp: time.UnixMilli(ts + int64(i))})
	}
	if _, err := produce(c, recs); err != nil {
		return err
	}
	got, err := consumeFromStart(c, topic, 3)
	if err != nil {
		return err
	}
	for i, r := range got {
		if err := check(r.Timestamp.UnixMilli() == ts+int64(i), "timestamp %d", r.Timestamp.UnixMilli()); err != nil {
			return err
		}
		if err := check(r.Attrs.TimestampType() == 0, "timestamp type %d", r.Attrs.TimestampType()); err != nil {
			return err
		}
		if err := check(len(r.Headers) == 3, "headers %v", r.Headers); err != nil {
			return err
		}
		for j, h := range r.Headers {
			if h.Key != hdrs[j].Key || string(h.Value) != string(hdrs[j].Value) {
				return fmt.Errorf("header %d differs: %v", j, h)
			}
		}
	}
	return nil
}

type member struct {
	mu    sync.Mutex
	parts map[int32]bool
	cl    *kgo.Client
	stop  context.CancelFunc
	done  chan struct{}
}

func (m *member) owned() map[int32]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[int32]bool{}
	for p := range m.parts {
		out[p] = true
	}
	return out
}

func newMember(c *Ctx, topic, group string) (*member, error) {
	m := &member{parts: map[int32]bool{}, done: make(chan struct{})}
	update := func(add bool) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range ps[topic] {
				if add {
					m.parts[p] = true
				} else {
					delete(m.parts, p)
				}
			}
		}
	}
	cl, err := client(c, kgo.ConsumeTopics(topic), kgo.ConsumerGroup(group), kgo.SessionTimeout(10*time.Second),
		kgo.HeartbeatInterval(500*time.Millisecond), kgo.OnPartitionsAssigned(update(true)),
		kgo.OnPartitionsRevoked(update(false)), kgo.OnPartitionsLost(update(false)))
	if err != nil {
		return nil, err
	}
	m.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			cl.PollFetches(ctx)
		}
	}()
	return m, nil
}

func (m *member) close() {
	m.stop()
	<-m.done
	m.cl.Close()
}

func covered(ms []*member) bool {
	all := map[int32]bool{}
	sum := 0
	for _, m := range ms {
		o := m.owned()
		if len(o) == 0 {
			return false
		}
		sum += len(o)
		for p := range o {
			all[p] = true
		}
	}
	return sum == 6 && len(all) == 6
}

func groupThreeLeave(c *Ctx) error {
	topic, err := createTopic(c, 6)
	if err != nil {
		return err
	}
	group := c.Group()
	var ms []*member
	defer func() {
		for _, m := range ms {
			m.close()
		}
	}()
	for i := 0; i < 3; i++ {
		m, err := newMember(c, topic, group)
		if err != nil {
			return err
		}
		ms = append(ms, m)
	}
	if err := harness.WaitUntil(func() bool { return covered(ms) }, 45*time.Second, "three members sharing six partitions"); err != nil {
		return err
	}
	ms[0].close()
	ms = ms[1:]
	return harness.WaitUntil(func() bool { return covered(ms) }, 45*time.Second, "two members taking over six partitions")
}

func commitResume(c *Ctx) error {
	topic, err := createTopic(c, 1)
	if err != nil {
		return err
	}
	group := c.Group()
	var recs []*kgo.Record
	for i := 0; i < 10; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))})
	}
	if _, err := produce(c, recs); err != nil {
		return err
	}
	opts := []kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumerGroup(group), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
	cl, err := client(c, opts...)
	if err != nil {
		return err
	}
	got, err := consumeN(cl, 5)
	if err != nil {
		cl.Close()
		return err
	}
	ctx, cancel := ctxT(15 * time.Second)
	defer cancel()
	if err := cl.CommitRecords(ctx, got[:5]...); err != nil {
		cl.Close()
		return err
	}
	cl.Close()
	cl, err = client(c, opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	got, err = consumeN(cl, 5)
	if err != nil {
		return err
	}
	return check(got[0].Offset == 5 && string(got[0].Value) == "5", "resumed at offset %d", got[0].Offset)
}

func adminTopics(c *Ctx) error {
	name, err := createTopic(c, 1)
	if err != nil {
		return err
	}
	return withAdmin(c, func(a *kadm.Client) error {
		ctx, cancel := ctxT(30 * time.Second)
		defer cancel()
		v := "12345"
		resp, err := a.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &v}}, name)
		if err != nil {
			return err
		}
		for _, r := range resp {
			if r.Err != nil {
				return r.Err
			}
		}
		if err := harness.WaitUntil(func() bool {
			rcs, err := a.DescribeTopicConfigs(ctx, name)
			if err != nil || len(rcs) == 0 {
				return false
			}
			for _, cfg := range rcs[0].Configs {
				if cfg.Key == "retention.ms" && cfg.Value != nil && *cfg.Value == "12345" {
					return true
				}
			}
			return false
		}, 10*time.Second, "retention.ms altered"); err != nil {
			return err
		}
		pr, err := a.UpdatePartitions(ctx, 3, name)
		if err != nil {
			return err
		}
		if err := pr.Error(); err != nil {
			return err
		}
		if err := harness.WaitUntil(func() bool { return nPartitions(a, name) == 3 }, 10*time.Second, "3 partitions"); err != nil {
			return err
		}
		dr, err := a.DeleteTopics(ctx, name)
		if err != nil {
			return err
		}
		if err := dr.Error(); err != nil {
			return err
		}
		return harness.WaitUntil(func() bool {
			td, err := a.ListTopics(ctx)
			return err == nil && !td.Has(name)
		}, 15*time.Second, "topic deleted")
	})
}

func offsetsByTimestamp(c *Ctx) error {
	topic, err := createTopic(c, 1)
	if err != nil {
		return err
	}
	t := int64(1_700_000_000_000)
	var recs []*kgo.Record
	for i := 0; i < 3; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte("v"), Timestamp: time.UnixMilli(t + 1000*int64(i))})
	}
	if _, err := produce(c, recs); err != nil {
		return err
	}
	return withAdmin(c, func(a *kadm.Client) error {
		ctx, cancel := ctxT(15 * time.Second)
		defer cancel()
		lo, err := a.ListOffsetsAfterMilli(ctx, t+500, topic)
		if err != nil {
			return err
		}
		o, _ := lo.Lookup(topic, 0)
		if err := check(o.Err == nil && o.Offset == 1, "offset for t+500: %+v", o); err != nil {
			return err
		}
		lo, err = a.ListOffsetsAfterMilli(ctx, t+5000, topic)
		if err != nil {
			return err
		}
		o, _ = lo.Lookup(topic, 0)
		if err := check(o.Err == nil && (o.Offset == -1 || o.Offset == 3), "offset past the last timestamp: %+v", o); err != nil {
			return err
		}
		so, err := a.ListStartOffsets(ctx, topic)
		if err != nil {
			return err
		}
		eo, err := a.ListEndOffsets(ctx, topic)
		if err != nil {
			return err
		}
		s, _ := so.Lookup(topic, 0)
		e, _ := eo.Lookup(topic, 0)
		return check(s.Offset == 0 && e.Offset == 3, "earliest/latest %d/%d", s.Offset, e.Offset)
	})
}

func idempotentProducer(c *Ctx) error {
	topic, err := createTopic(c, 1)
	if err != nil {
		return err
	}
	var recs []*kgo.Record
	for i := 0; i < 50; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))})
	}
	// franz-go producers are idempotent unless kgo.DisableIdempotentWrite is given.
	res, err := produce(c, recs, kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		return err
	}
	for i, r := range res {
		if r.Record.Offset != int64(i) || r.Record.ProducerID < 0 {
			return fmt.Errorf("record %d at offset %d, producer id %d", i, r.Record.Offset, r.Record.ProducerID)
		}
	}
	got, err := consumeFromStart(c, topic, 50)
	if err != nil {
		return err
	}
	for i, r := range got {
		if string(r.Value) != strconv.Itoa(i) {
			return fmt.Errorf("values out of order or duplicated")
		}
	}
	return nil
}

func transactionsReadCommitted(c *Ctx) error {
	topic, err := createTopic(c, 1)
	if err != nil {
		return err
	}
	cl, err := client(c, kgo.TransactionalID(c.Group()), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return err
	}
	ctx, cancel := ctxT(30 * time.Second)
	defer cancel()
	for txn, commit := range []bool{true, false, true} {
		if err := cl.BeginTransaction(); err != nil {
			cl.Close()
			return err
		}
		for i := 0; i < 5; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("%d-%d", txn, i))}).FirstErr(); err != nil {
				cl.Close()
				return err
			}
		}
		end := kgo.TryAbort
		if commit {
			end = kgo.TryCommit
		}
		if err := cl.EndTransaction(ctx, end); err != nil {
			cl.Close()
			return err
		}
	}
	cl.Close()
	cons, err := client(c, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return err
	}
	defer cons.Close()
	got, err := consumeN(cons, 10)
	if err != nil {
		return err
	}
	i := 0
	for _, t := range []int{0, 2} {
		for j := 0; j < 5; j++ {
			if string(got[i].Value) != fmt.Sprintf("%d-%d", t, j) {
				return fmt.Errorf("read_committed saw %q at %d", got[i].Value, i)
			}
			i++
		}
	}
	pctx, pcancel := ctxT(time.Second)
	defer pcancel()
	extra := cons.PollFetches(pctx).Records()
	return check(len(extra) == 0, "more than the committed records")
}

func recordAtSizeLimit(c *Ctx) error {
	topic, err := createTopic(c, 1)
	if err != nil {
		return err
	}
	res, err := produce(c, []*kgo.Record{{Topic: topic, Value: make([]byte, harness.AtLimitValue)}},
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(harness.ClientMaxRequest))
	if err != nil {
		return err
	}
	got, err := consumeFromStart(c, topic, 1)
	if err != nil {
		return err
	}
	return check(res[0].Record.Offset == 0 && len(got[0].Value) == harness.AtLimitValue, "large record not read back")
}

func recordBeyondSizeLimit(c *Ctx) error {
	topic, err := createTopic(c, 1)
	if err != nil {
		return err
	}
	_, err = produce(c, []*kgo.Record{{Topic: topic, Value: make([]byte, harness.BeyondLimitValue)}},
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(harness.ClientMaxRequest))
	if err == nil {
		return fmt.Errorf("broker accepted a batch beyond message.max.bytes")
	}
	return check(errors.Is(err, kerr.MessageTooLarge), "unexpected error %v", err)
}

func unknownTopic(c *Ctx) error {
	name := c.Topic()
	cl, err := client(c, kgo.UnknownTopicRetries(2))
	if err != nil {
		return err
	}
	ctx, cancel := ctxT(10 * time.Second)
	defer cancel()
	err = cl.ProduceSync(ctx, &kgo.Record{Topic: name, Value: []byte("v")}).FirstErr()
	cl.Close()
	if err == nil {
		return fmt.Errorf("produce to an unknown topic succeeded")
	}
	if !errors.Is(err, kerr.UnknownTopicOrPartition) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("unexpected error %v", err)
	}
	return withAdmin(c, func(a *kadm.Client) error {
		ctx, cancel := ctxT(10 * time.Second)
		defer cancel()
		td, err := a.ListTopics(ctx)
		if err != nil {
			return err
		}
		return check(!td.Has(name), "topic was auto-created")
	})
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/twmb/franz-go" {
				return d.Version
			}
		}
	}
	return "unknown"
}

func main() {
	var sc []harness.Scenario
	for _, codec := range harness.Codecs {
		sc = append(sc, harness.Scenario{Name: "produce_consume_" + codec, Run: produceConsume(codec)})
	}
	sc = append(sc,
		harness.Scenario{Name: "keyed_ordering", Run: keyedOrdering},
		harness.Scenario{Name: "headers_timestamps", Run: headersTimestamps},
		harness.Scenario{Name: "group_three_leave", Run: groupThreeLeave},
		harness.Scenario{Name: "commit_resume", Run: commitResume},
		harness.Scenario{Name: "admin_topics", Run: adminTopics},
		harness.Scenario{Name: "offsets_by_timestamp", Run: offsetsByTimestamp},
		harness.Scenario{Name: "idempotent_producer", Run: idempotentProducer},
		harness.Scenario{Name: "transactions_read_committed", Run: transactionsReadCommitted},
		harness.Scenario{Name: "record_at_size_limit", Run: recordAtSizeLimit},
		harness.Scenario{Name: "record_beyond_size_limit", Run: recordBeyondSizeLimit},
		harness.Scenario{Name: "unknown_topic", Run: unknownTopic},
	)
	harness.Main("franz-go", version(), sc)
}
