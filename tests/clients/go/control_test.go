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
