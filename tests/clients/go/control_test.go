// franz-go against kbroker's control endpoint. Run by tests/compat/test_control_clients.py, which
// starts the broker and passes KBROKER_BOOTSTRAP and KBROKER_CONTROL_URL.
package controltests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func control(t *testing.T, method, path string, body any) map[string]any {
	t.Helper()
	var payload io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		payload = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, os.Getenv("KBROKER_CONTROL_URL")+path, payload)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %v", method, path, resp.StatusCode, out)
	}
	return out
}

func TestFranzGoSeesExactlyTheInjectedErrors(t *testing.T) {
	topic := fmt.Sprintf("go-faults-%d", time.Now().UnixNano())
	cl, err := kgo.NewClient(kgo.SeedBrokers(os.Getenv("KBROKER_BOOTSTRAP")), kgo.ClientID("franz-control"),
		kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(), kgo.DisableIdempotentWrite())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, kgo.StringRecord("warm-up")).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// A non-retriable error: the client reports exactly it, once.
	rule := control(t, "POST", "/faults", map[string]any{
		"api": "Produce", "error": "TOPIC_AUTHORIZATION_FAILED", "count": 1, "topic": topic})
	err = cl.ProduceSync(ctx, kgo.StringRecord("refused")).FirstErr()
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("expected TOPIC_AUTHORIZATION_FAILED, got %v", err)
	}
	if err := cl.ProduceSync(ctx, kgo.StringRecord("accepted")).FirstErr(); err != nil {
		t.Fatalf("the rule is spent, yet: %v", err)
	}
	got := control(t, "GET", fmt.Sprintf("/faults/%v", rule["id"]), nil)
	if got["fired"] != float64(1) {
		t.Fatalf("fired %v", got)
	}

	// NOT_LEADER_OR_FOLLOWER once: franz-go refreshes metadata and retries; the record lands.
	rule = control(t, "POST", "/faults", map[string]any{
		"api": "Produce", "error": "NOT_LEADER_OR_FOLLOWER", "count": 1, "topic": topic})
	results := cl.ProduceSync(ctx, kgo.StringRecord("retried"))
	if err := results.FirstErr(); err != nil {
		t.Fatal(err)
	}
	if offset := results[0].Record.Offset; offset != 2 {
		t.Fatalf("offset %d, want 2 (warm-up, accepted, retried)", offset)
	}
	fired := control(t, "GET", fmt.Sprintf("/faults/fired?rule=%v", rule["id"]), nil)["fired"].([]any)
	if len(fired) != 1 {
		t.Fatalf("fired %v", fired)
	}
	event := fired[0].(map[string]any)
	if event["client_id"] != "franz-control" || event["error"] != "NOT_LEADER_OR_FOLLOWER" || event["api"] != "Produce" {
		t.Fatalf("fired %v", event)
	}
}

// The broker runs a manual clock: advancing it past the 45 s session expires the member at once.
// franz-go's next heartbeat gets UNKNOWN_MEMBER_ID: the client loses its partitions and rejoins
// the group in a new generation, then consumes what was produced meanwhile.
func TestFranzGoConsumerRejoinsAfterItsSessionExpires(t *testing.T) {
	topic := fmt.Sprintf("go-session-%d", time.Now().UnixNano())
	group := topic + "-group"
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	producer, err := kgo.NewClient(kgo.SeedBrokers(os.Getenv("KBROKER_BOOTSTRAP")), kgo.DefaultProduceTopic(topic),
		kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	if err := producer.ProduceSync(ctx, kgo.StringRecord("first")).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var events []string
	record := func(event string, parts map[string][]int32) {
		if len(parts) > 0 {
			mu.Lock()
			events = append(events, event)
			mu.Unlock()
		}
	}
	snapshot := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(events)
	}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(os.Getenv("KBROKER_BOOTSTRAP")), kgo.ClientID("franz-session"),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(45*time.Second), kgo.HeartbeatInterval(500*time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, p map[string][]int32) { record("assigned", p) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, p map[string][]int32) { record("revoked", p) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, p map[string][]int32) { record("lost", p) }))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	pollUntil := func(value string) {
		t.Helper()
		for {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %q; events %v", value, snapshot())
			}
			pollCtx, pollCancel := context.WithTimeout(ctx, 200*time.Millisecond)
			fetches := consumer.PollFetches(pollCtx)
			pollCancel()
			found := false
			fetches.EachRecord(func(r *kgo.Record) { found = found || string(r.Value) == value })
			if found {
				return
			}
		}
	}
	pollUntil("first")
	if got := snapshot(); !slices.Equal(got, []string{"assigned"}) {
		t.Fatalf("events %v, want [assigned]", got)
	}
	_, generation := consumer.GroupMetadata()

	control(t, "POST", "/clock/advance", map[string]any{"ms": 45001})
	for len(snapshot()) < 3 { // the next heartbeat is refused: partitions lost, then a new assignment
		if ctx.Err() != nil {
			t.Fatalf("no rejoin after the session expiry: %v", snapshot())
		}
		pollCtx, pollCancel := context.WithTimeout(ctx, 200*time.Millisecond)
		consumer.PollFetches(pollCtx)
		pollCancel()
	}
	if err := producer.ProduceSync(ctx, kgo.StringRecord("second")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	pollUntil("second")
	if got := snapshot(); !slices.Equal(got, []string{"assigned", "lost", "assigned"}) {
		t.Fatalf("events %v, want [assigned lost assigned]", got)
	}
	if _, now := consumer.GroupMetadata(); now <= generation {
		t.Fatalf("generation %d after the expiry, was %d", now, generation)
	}
}
