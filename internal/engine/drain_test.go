package engine_test

import (
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
)

// Drain answers queued requests at once with the refusal their wait would have ended
// with, and a wait that starts afterwards does not wait.
func TestDrainAnswersWaiters(t *testing.T) {
	h := newHarness(t, withPoll(time.Hour))
	h.setup(1, nil)
	h.grant(req("alice", "FeatA"))
	bob := h.enqueue(h.ctx, req("bob", "FeatA", queue(time.Minute)))
	noAnswer(t, bob, 100*time.Millisecond)

	drained := time.Now()
	h.eng.Drain()
	got := waitAnswer(t, bob)
	if got.err != nil || got.res.Err == nil || got.res.Err.Code != domain.CodeQuotaExceeded {
		t.Fatalf("bob after Drain: %+v, want licenseQuotaExceeded", got)
	}
	if d := got.at.Sub(drained); d > time.Second {
		t.Errorf("bob answered %v after Drain", d)
	}

	h.eng.Drain() // twice is fine
	start := time.Now()
	h.refuse(req("carol", "FeatA", queue(time.Minute)), domain.CodeQuotaExceeded)
	if d := time.Since(start); d > time.Second {
		t.Errorf("a wait after Drain took %v", d)
	}
}
