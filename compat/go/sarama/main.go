// sarama scenarios for the kbroker client compatibility matrix.
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

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

type Ctx = harness.Ctx

var check = harness.Check

func config() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V4_0_0_0 // sarama clamps this down to what the broker advertises
	cfg.ClientID = "kbroker-compat"
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Consumer.Return.Errors = true
	cfg.Metadata.AllowAutoTopicCreation = false
	if security != nil {
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = security.TLS
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.User = security.User
		cfg.Net.SASL.Password = security.Password
		hash := scram.SHA256
		cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
		if security.Mechanism == "SCRAM-SHA-512" {
			hash = scram.SHA512
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
		}
		cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: hash} }
	}
	return cfg
}

var security = harness.LoadSecurity()

// scramClient is sarama's SCRAMClient over xdg-go/scram (sarama leaves the SCRAM implementation to
// its user).
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (s *scramClient) Begin(user, password, authzID string) error {
	client, err := s.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	s.conv = client.NewConversation()
	return nil
}

func (s *scramClient) Step(challenge string) (string, error) { return s.conv.Step(challenge) }

func (s *scramClient) Done() bool { return s.conv.Done() }

func brokers(c *Ctx) []string { return c.Brokers() }

func withAdmin(c *Ctx, f func(sarama.ClusterAdmin) error) error {
	a, err := sarama.NewClusterAdmin(brokers(c), config())
	if err != nil {
		return err
	}
	defer a.Close()
	return f(a)
}

func nPartitions(a sarama.ClusterAdmin, name string) int {
	md, err := a.DescribeTopics([]string{name})
	if err != nil || len(md) == 0 || md[0].Err != sarama.ErrNoError {
		return 0
	}
	return len(md[0].Partitions)
}

func createTopic(c *Ctx, n int) (string, error) {
	name := c.Topic()
	err := withAdmin(c, func(a sarama.ClusterAdmin) error {
		if err := a.CreateTopic(name, &sarama.TopicDetail{NumPartitions: int32(n), ReplicationFactor: c.RF}, false); err != nil {
			return err
		}
		return harness.WaitUntil(func() bool { return nPartitions(a, name) == n }, 15*time.Second, "topic metadata")
	})
	return name, err
}

func produce(c *Ctx, cfg *sarama.Config, msgs []*sarama.ProducerMessage) error {
	p, err := sarama.NewSyncProducer(brokers(c), cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	if err := p.SendMessages(msgs); err != nil {
		var pe sarama.ProducerErrors
		if errors.As(err, &pe) && len(pe) > 0 {
			return pe[0].Err
		}
		return err
	}
	return nil
}

func consumeFromStart(c *Ctx, cfg *sarama.Config, topic string, parts int, n int) ([]*sarama.ConsumerMessage, error) {
	return consumeFrom(c, cfg, topic, parts, n, sarama.OffsetOldest)
}

func consumeFrom(c *Ctx, cfg *sarama.Config, topic string, parts int, n int, offset int64) ([]*sarama.ConsumerMessage, error) {
	cons, err := sarama.NewConsumer(brokers(c), cfg)
	if err != nil {
		return nil, err
	}
	defer cons.Close()
	out := make(chan *sarama.ConsumerMessage, n+16)
	errs := make(chan error, parts)
	var pcs []sarama.PartitionConsumer
	for p := 0; p < parts; p++ {
		pc, err := cons.ConsumePartition(topic, int32(p), offset)
		if err != nil {
			return nil, err
		}
		pcs = append(pcs, pc)
		go func(pc sarama.PartitionConsumer) {
			for m := range pc.Messages() {
				out <- m
			}
		}(pc)
		go func(pc sarama.PartitionConsumer) {
			for e := range pc.Errors() {
				errs <- e
			}
		}(pc)
	}
	defer func() {
		for _, pc := range pcs {
			pc.AsyncClose()
		}
	}()
	var got []*sarama.ConsumerMessage
	timeout := time.After(20 * time.Second)
	for len(got) < n {
		select {
		case m := <-out:
			got = append(got, m)
		case e := <-errs:
			return got, e
		case <-timeout:
			return got, fmt.Errorf("consumed %d of %d records", len(got), n)
		}
	}
	return got, nil
}

var codecs = map[string]sarama.CompressionCodec{
	"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP, "snappy": sarama.CompressionSnappy,
	"lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD,
}

func produceConsume(codec string) func(*Ctx) error {
	return func(c *Ctx) error {
		topic, err := createTopic(c, 1)
		if err != nil {
			return err
		}
		var msgs []*sarama.ProducerMessage
		var values []string
		for i := 0; i < 100; i++ {
			v := ""
			for j := 0; j < 20; j++ {
				v += fmt.Sprintf("value-%d-", i)
			}
			values = append(values, v)
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(v)})
		}
		cfg := config()
		cfg.Producer.Compression = codecs[codec]
		if err := produce(c, cfg, msgs); err != nil {
			return err
		}
		got, err := consumeFromStart(c, config(), topic, 1, 100)
		if err != nil {
			return err
		}
		for i, m := range got {
			if string(m.Value) != values[i] {
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
	var msgs []*sarama.ProducerMessage
	for i := 0; i < 300; i++ {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprintf("k%d", i%5)),
			Value: sarama.StringEncoder(strconv.Itoa(i))})
	}
	if err := produce(c, config(), msgs); err != nil {
		return err
	}
	got, err := consumeFromStart(c, config(), topic, 3, 300)
	if err != nil {
		return err
	}
	seen := map[string][]int{}
	parts := map[string]map[int32]bool{}
	for _, m := range got {
		v, _ := strconv.Atoi(string(m.Value))
		k := string(m.Key)
		seen[k] = append(seen[k], v)
		if parts[k] == nil {
			parts[k] = map[int32]bool{}
		}
		parts[k][m.Partition] = true
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
	hdrs := []sarama.RecordHeader{{Key: []byte("h1"), Value: []byte("v1")}, {Key: []byte("h2"), Value: []byte{}},
		{Key: []byte("h1"), Value: []byte("again")}}
	var msgs []*sarama.ProducerMessage
	for i := 0; i < 3; i++ {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder("k"), Value: sarama.StringEncoder("x"),
			Headers: hdrs, Timestamp: time.UnixMilli(ts + int64(i))})
	}
	if err := produce(c, config(), msgs); err != nil {
		return err
	}
	got, err := consumeFromStart(c, config(), topic, 1, 3)
	if err != nil {
		return err
	}
	for i, m := range got {
		if err := check(m.Timestamp.UnixMilli() == ts+int64(i), "timestamp %d", m.Timestamp.UnixMilli()); err != nil {
			return err
		}
		if err := check(len(m.Headers) == 3, "headers %v", m.Headers); err != nil {
			return err
		}
		for j, h := range m.Headers {
			if string(h.Key) != string(hdrs[j].Key) || string(h.Value) != string(hdrs[j].Value) {
				return fmt.Errorf("header %d differs", j)
			}
		}
	}
	return nil
}

type member struct {
	mu     sync.Mutex
	parts  map[int32]bool
	group  sarama.ConsumerGroup
	cancel context.CancelFunc
	done   chan struct{}
}

func (m *member) Setup(s sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.parts = map[int32]bool{}
	for _, ps := range s.Claims() {
		for _, p := range ps {
			m.parts[p] = true
		}
	}
	return nil
}

func (m *member) Cleanup(sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.parts = map[int32]bool{}
	return nil
}

func (m *member) ConsumeClaim(s sarama.ConsumerGroupSession, cl sarama.ConsumerGroupClaim) error {
	for range cl.Messages() {
	}
	return nil
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
	cfg := config()
	cfg.Consumer.Group.Session.Timeout = 10 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	g, err := sarama.NewConsumerGroup(brokers(c), group, cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{parts: map[int32]bool{}, group: g, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			if err := g.Consume(ctx, []string{topic}, m); err != nil && ctx.Err() == nil {
				time.Sleep(100 * time.Millisecond) // back off before rejoining after an error
			}
		}
	}()
	go func() {
		for range g.Errors() {
		}
	}()
	return m, nil
}

func (m *member) close() {
	m.cancel()
	<-m.done
	m.group.Close()
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

func offsetManager(c *Ctx, group, topic string) (sarama.Client, sarama.OffsetManager, sarama.PartitionOffsetManager, error) {
	cfg := config()
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	cl, err := sarama.NewClient(brokers(c), cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	om, err := sarama.NewOffsetManagerFromClient(group, cl)
	if err != nil {
		cl.Close()
		return nil, nil, nil, err
	}
	pom, err := om.ManagePartition(topic, 0)
	if err != nil {
		om.Close()
		cl.Close()
		return nil, nil, nil, err
	}
	return cl, om, pom, nil
}

func commitResume(c *Ctx) error {
	topic, err := createTopic(c, 1)
	if err != nil {
		return err
	}
	group := c.Group()
	var msgs []*sarama.ProducerMessage
	for i := 0; i < 10; i++ {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(strconv.Itoa(i))})
	}
	if err := produce(c, config(), msgs); err != nil {
		return err
	}
	if _, err := consumeFromStart(c, config(), topic, 1, 5); err != nil {
		return err
	}
	cl, om, pom, err := offsetManager(c, group, topic)
	if err != nil {
		return err
	}
	pom.MarkOffset(5, "")
	om.Commit()
	pom.AsyncClose()
	om.Close()
	cl.Close()
	cl, om, pom, err = offsetManager(c, group, topic)
	if err != nil {
		return err
	}
	next, _ := pom.NextOffset()
	pom.AsyncClose()
	om.Close()
	cl.Close()
	if err := check(next == 5, "committed offset read back as %d", next); err != nil {
		return err
	}
	got, err := consumeFrom(c, config(), topic, 1, 5, next)
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
	return withAdmin(c, func(a sarama.ClusterAdmin) error {
		v := "12345"
		if err := a.IncrementalAlterConfig(sarama.TopicResource, name, map[string]sarama.IncrementalAlterConfigsEntry{
			"retention.ms": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &v}}, false); err != nil {
			return err
		}
		if err := harness.WaitUntil(func() bool {
			entries, err := a.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: name})
			if err != nil {
				return false
			}
			for _, e := range entries {
				if e.Name == "retention.ms" && e.Value == "12345" {
					return true
				}
			}
			return false
		}, 10*time.Second, "retention.ms altered"); err != nil {
			return err
		}
		if err := a.CreatePartitions(name, 3, nil, false); err != nil {
			return err
		}
		if err := harness.WaitUntil(func() bool { return nPartitions(a, name) == 3 }, 10*time.Second, "3 partitions"); err != nil {
			return err
		}
		if err := a.DeleteTopic(name); err != nil {
			return err
		}
		return harness.WaitUntil(func() bool {
			ts, err := a.ListTopics()
			_, ok := ts[name]
			return err == nil && !ok
		}, 15*time.Second, "topic deleted")
	})
}

func offsetsByTimestamp(c *Ctx) error {
	topic, err := createTopic(c, 1)
	if err != nil {
		return err
	}
	t := int64(1_700_000_000_000)
	var msgs []*sarama.ProducerMessage
	for i := 0; i < 3; i++ {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder("v"), Timestamp: time.UnixMilli(t + 1000*int64(i))})
	}
	if err := produce(c, config(), msgs); err != nil {
		return err
	}
	cl, err := sarama.NewClient(brokers(c), config())
	if err != nil {
		return err
	}
	defer cl.Close()
	o, err := cl.GetOffset(topic, 0, t+500)
	if err != nil {
		return err
	}
	if err := check(o == 1, "offset for t+500: %d", o); err != nil {
		return err
	}
	o, err = cl.GetOffset(topic, 0, t+5000)
	if err != nil {
		return err
	}
	if err := check(o == -1, "offset past the last timestamp: %d", o); err != nil {
		return err
	}
	lo, err := cl.GetOffset(topic, 0, sarama.OffsetOldest)
	if err != nil {
		return err
	}
	hi, err := cl.GetOffset(topic, 0, sarama.OffsetNewest)
	if err != nil {
		return err
	}
	return check(lo == 0 && hi == 3, "earliest/latest %d/%d", lo, hi)
}

func idempotentProducer(c *Ctx) error {
	topic, err := createTopic(c, 1)
	if err != nil {
		return err
	}
	cfg := config()
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	var msgs []*sarama.ProducerMessage
	for i := 0; i < 50; i++ {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(strconv.Itoa(i))})
	}
	if err := produce(c, cfg, msgs); err != nil {
		return err
	}
	for i, m := range msgs {
		if m.Offset != int64(i) {
			return fmt.Errorf("record %d at offset %d", i, m.Offset)
		}
	}
	got, err := consumeFromStart(c, config(), topic, 1, 50)
	if err != nil {
		return err
	}
	for i, m := range got {
		if string(m.Value) != strconv.Itoa(i) {
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
	cfg := config()
	cfg.Producer.Idempotent = true
	cfg.Producer.Transaction.ID = c.Group()
	cfg.Net.MaxOpenRequests = 1
	p, err := sarama.NewSyncProducer(brokers(c), cfg)
	if err != nil {
		return err
	}
	for txn, commit := range []bool{true, false, true} {
		if err := p.BeginTxn(); err != nil {
			p.Close()
			return err
		}
		for i := 0; i < 5; i++ {
			if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprintf("%d-%d", txn, i))}); err != nil {
				p.Close()
				return err
			}
		}
		if commit {
			err = p.CommitTxn()
		} else {
			err = p.AbortTxn()
		}
		if err != nil {
			p.Close()
			return err
		}
	}
	p.Close()
	ccfg := config()
	ccfg.Consumer.IsolationLevel = sarama.ReadCommitted
	got, err := consumeFromStart(c, ccfg, topic, 1, 10)
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
	return nil
}

func recordAtSizeLimit(c *Ctx) error {
	topic, err := createTopic(c, 1)
	if err != nil {
		return err
	}
	cfg := config()
	cfg.Producer.MaxMessageBytes = harness.ClientMaxRequest
	msg := &sarama.ProducerMessage{Topic: topic, Value: sarama.ByteEncoder(make([]byte, harness.AtLimitValue))}
	if err := produce(c, cfg, []*sarama.ProducerMessage{msg}); err != nil {
		return err
	}
	ccfg := config()
	ccfg.Consumer.Fetch.Default = harness.ClientMaxRequest
	got, err := consumeFromStart(c, ccfg, topic, 1, 1)
	if err != nil {
		return err
	}
	return check(msg.Offset == 0 && len(got[0].Value) == harness.AtLimitValue, "large record not read back")
}

func recordBeyondSizeLimit(c *Ctx) error {
	topic, err := createTopic(c, 1)
	if err != nil {
		return err
	}
	cfg := config()
	cfg.Producer.MaxMessageBytes = harness.ClientMaxRequest
	cfg.Producer.Retry.Max = 0
	err = produce(c, cfg, []*sarama.ProducerMessage{{Topic: topic, Value: sarama.ByteEncoder(make([]byte, harness.BeyondLimitValue))}})
	if err == nil {
		return fmt.Errorf("broker accepted a batch beyond message.max.bytes")
	}
	return check(errors.Is(err, sarama.ErrMessageSizeTooLarge), "unexpected error %v", err)
}

func unknownTopic(c *Ctx) error {
	name := c.Topic()
	err := produce(c, config(), []*sarama.ProducerMessage{{Topic: name, Value: sarama.StringEncoder("v")}})
	if err == nil {
		return fmt.Errorf("produce to an unknown topic succeeded")
	}
	if !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		return fmt.Errorf("unexpected error %v", err)
	}
	return withAdmin(c, func(a sarama.ClusterAdmin) error {
		ts, err := a.ListTopics()
		if err != nil {
			return err
		}
		_, ok := ts[name]
		return check(!ok, "topic was auto-created")
	})
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/IBM/sarama" {
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
	harness.Main("sarama", version(), sc)
}
