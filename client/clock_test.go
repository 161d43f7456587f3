package client

import (
	"testing"
	"time"
)

// TestTimesFromReceipt: a lease's expiry and renewal time count from the moment it was
// received, offset by its own iat, so a local clock far off the server's neither renews
// late nor declares a valid lease expired.
func TestTimesFromReceipt(t *testing.T) {
	now := time.Now()
	for _, tt := range []struct {
		name          string
		iat, exp, rfr int64
		wantExpiry    time.Duration
		wantRenew     time.Duration
	}{
		{"server clock in 1970", 1000, 1006, 1003, 6 * time.Second, 3 * time.Second},
		{"server clock far ahead", 4102444800, 4102445700, 4102445520, 15 * time.Minute, 12 * time.Minute},
		{"no rfr: 80 %", 1000, 1010, 0, 10 * time.Second, 8 * time.Second},
		{"rfr past exp: 80 %", 1000, 1010, 2000, 10 * time.Second, 8 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := &Lease{}
			l.set("x.y.z", map[string]any{"jti": "id", "iat": float64(tt.iat), "exp": float64(tt.exp), "rfr": float64(tt.rfr)}, now)
			if got := l.Expiry().Sub(now); got != tt.wantExpiry {
				t.Errorf("expiry after %s, want %s", got, tt.wantExpiry)
			}
			if got := l.renewAt().Sub(now); got != tt.wantRenew {
				t.Errorf("renewal after %s, want %s", got, tt.wantRenew)
			}
			if !l.Valid() {
				t.Error("not valid")
			}
		})
	}
	l := &Lease{}
	l.set("x.y.z", map[string]any{"jti": "id", "iat": float64(time.Now().Unix()), "exp": float64(time.Now().Unix() + 60)}, now.Add(-61*time.Second))
	if l.Valid() {
		t.Error("a lease received 61 s ago for 60 s is still valid")
	}
}

// TestEventsDropOldest: a reader that falls behind loses the oldest events, never blocks
// the renewal; the channel closes once.
func TestEventsDropOldest(t *testing.T) {
	l := &Lease{events: make(chan Event, eventBuffer)}
	l.set("x.y.z", map[string]any{"jti": "id", "iat": float64(1), "exp": float64(61)}, time.Now())
	for i := 0; i < eventBuffer+8; i++ {
		kind := Renewed
		if i == eventBuffer+7 {
			kind = Lost
		}
		l.emit(kind, nil)
	}
	if n := len(l.events); n != eventBuffer {
		t.Fatalf("%d events buffered", n)
	}
	l.closeEvents()
	l.closeEvents()
	l.emit(Renewed, nil) // after close: dropped, no panic
	var last Event
	n := 0
	for ev := range l.Events() {
		last = ev
		n++
	}
	if n != eventBuffer || last.Kind != Lost {
		t.Fatalf("read %d events, last %s", n, last.Kind)
	}
}
