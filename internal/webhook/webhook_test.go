package webhook

import (
	"testing"
	"time"

	clientwebhook "github.com/leasehold/leasehold/client/webhook"
)

// TestSignVerifies: the server's signature is what the Go client's Verify accepts, and a
// changed body, secret or old timestamp is refused.
func TestSignVerifies(t *testing.T) {
	body := []byte(`{"id":"e","type":"lease.denied"}`)
	h := Sign("s3cret", time.Now(), body)
	if err := clientwebhook.Verify("s3cret", h, body, 0); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := clientwebhook.Verify("other", h, body, 0); err == nil {
		t.Error("Verify accepted another secret")
	}
	if err := clientwebhook.Verify("s3cret", h, append(body, ' '), 0); err == nil {
		t.Error("Verify accepted another body")
	}
	old := Sign("s3cret", time.Now().Add(-10*time.Minute), body)
	if err := clientwebhook.Verify("s3cret", old, body, 0); err == nil {
		t.Error("Verify accepted a 10-minute-old signature")
	}
}

func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		n    int
		want time.Duration
	}{{0, time.Second}, {1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {12, 2048 * time.Second}, {13, time.Hour}, {100, time.Hour}} {
		if got := Backoff(c.n); got != c.want {
			t.Errorf("Backoff(%d) = %s, want %s", c.n, got, c.want)
		}
	}
}
