package throttle

import (
	"net/netip"
	"strconv"
	"testing"
	"time"
)

func TestLimiterDoublesAndForgets(t *testing.T) {
	var l Limiter
	t0 := time.Unix(1_000_000, 0)
	u := Key{ID: "u", Free: 5}
	a := Key{ID: "a", Free: 20}
	for i := range u.Free {
		if w := l.Attempt(t0.Add(time.Duration(i)*time.Millisecond), u, a); w != 0 {
			t.Fatalf("attempt %d waits %v", i, w)
		}
	}
	if w := l.Attempt(t0, u, a); w != DefaultBaseWait+4*time.Millisecond {
		t.Fatalf("first wait: %v", w)
	}
	t1 := t0.Add(2 * time.Second)
	l.Attempt(t1, u, a)
	if w := l.Attempt(t1, u); w != 2*DefaultBaseWait {
		t.Fatalf("the second lock doubles: %v", w)
	}
	for i := range 40 {
		l.Attempt(t1.Add(time.Duration(i+1)*DefaultMaxWait), u)
	}
	tEnd := t1.Add(40 * DefaultMaxWait)
	if w := l.Attempt(tEnd, u); w != DefaultMaxWait {
		t.Fatalf("capped: %v", w)
	}
	// A key is forgotten a window after its last failure.
	if w := l.Attempt(tEnd.Add(DefaultMaxWait+DefaultWindow+time.Second), u); w != 0 {
		t.Fatalf("after the window: %v", w)
	}
	n := l.entries["a"].n
	l.Succeed(u, a)
	if l.entries["u"] != nil {
		t.Fatal("success did not forget the key")
	}
	if e := l.entries["a"]; e == nil || e.n != n-1 {
		t.Fatal("success must give a refunded key back its one attempt only")
	}
}

func TestLimiterCountsAttemptsInFlight(t *testing.T) {
	var l Limiter
	now := time.Unix(1_000_000, 0)
	k := Key{ID: "u", Free: 5}
	admitted := 0
	for range 3 * k.Free {
		if l.Attempt(now, k, Key{}) == 0 {
			admitted++ // none has finished yet: each counts as a failure already
		}
	}
	if admitted != k.Free {
		t.Fatalf("%d concurrent attempts admitted, want %d", admitted, k.Free)
	}
}

func TestLimiterBounded(t *testing.T) {
	l := Limiter{MaxKeys: 1000}
	now := time.Unix(1_000_000, 0)
	for i := range 1500 {
		l.Attempt(now, Key{ID: strconv.Itoa(i), Free: 5})
	}
	if n := len(l.entries); n > 1000 {
		t.Fatalf("%d keys kept, bound 1000", n)
	}
}

func TestAddr(t *testing.T) {
	a := Addr(netip.MustParseAddr("10.0.0.1"))
	if Addr(netip.MustParseAddr("2001:db8::1")) != Addr(netip.MustParseAddr("2001:db8::ffff")) ||
		Addr(netip.MustParseAddr("::ffff:10.0.0.1")) != a || Addr(netip.Addr{}) != "" {
		t.Fatal("address keys: IPv6 per /64, IPv4-mapped as IPv4, none for an invalid address")
	}
}
