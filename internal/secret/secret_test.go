package secret

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestHashVerify(t *testing.T) {
	phc, err := Hash("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(phc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("unexpected PHC %q", phc)
	}
	if err := ValidHash(phc); err != nil {
		t.Fatalf("ValidHash(own hash): %v", err)
	}
	for _, tc := range []struct {
		plain string
		want  bool
	}{
		{"s3cret", true},
		{"s3cret ", false},
		{"S3cret", false},
		{"", false},
		{strings.Repeat("x", MaxSecretLen+1), false},
	} {
		got, err := Verify(tc.plain, phc)
		if err != nil || got != tc.want {
			t.Errorf("Verify(%.10q) = %v, %v; want %v", tc.plain, got, err, tc.want)
		}
	}
	again, _ := Hash("s3cret")
	if again == phc {
		t.Error("two hashes of one secret are equal: no salt?")
	}
}

func TestVerifyBcrypt(t *testing.T) {
	for _, prefix := range []string{"$2a$", "$2b$", "$2y$"} {
		b, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		phc := prefix + string(b[4:])
		if err := ValidHash(phc); err != nil {
			t.Fatalf("ValidHash(%s): %v", phc, err)
		}
		if ok, err := Verify("pw", phc); !ok || err != nil {
			t.Errorf("Verify(pw, %s) = %v, %v", phc, ok, err)
		}
		if ok, err := Verify("px", phc); ok || err != nil {
			t.Errorf("Verify(px, %s) = %v, %v", phc, ok, err)
		}
	}
}

func TestValidHash(t *testing.T) {
	good, _ := Hash("x")
	salt := "$wgxtol6bXZkLnRN20tUlTw$b0Kc5VgrnaFjFPbhky1PAILnTIl5eBaFqqFqDOsyJLg"
	for _, tc := range []struct {
		name, phc, want string
	}{
		{"empty", "", "not an argon2id or bcrypt hash"},
		{"plaintext", "hunter2", "not an argon2id or bcrypt hash"},
		{"argon2i", "$argon2i$v=19$m=19456,t=2,p=1" + salt, "only the argon2id variant"},
		{"truncated", good[:len(good)-10] + "!!", "malformed"},
		{"huge memory", "$argon2id$v=19$m=4194304,t=2,p=1" + salt, "m must be in"},
		{"tiny memory", "$argon2id$v=19$m=7,t=2,p=1" + salt, "m must be in"},
		{"many passes", "$argon2id$v=19$m=19456,t=100,p=1" + salt, "t must be in"},
		{"zero lanes", "$argon2id$v=19$m=19456,t=2,p=0" + salt, "p must be in"},
		{"sloppy layout", "$argon2id$v=19$m=19456, t=2,p=1" + salt, "malformed"},
		{"old version", "$argon2id$v=16$m=19456,t=2,p=1" + salt, "malformed"},
		{"short salt", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$b0Kc5VgrnaFjFPbhky1PAILnTIl5eBaFqqFqDOsyJLg", "salt must be"},
		{"bcrypt cost", "$2b$31$" + strings.Repeat("a", 53), "cost must be at most"},
		{"bcrypt short", "$2b$10$" + strings.Repeat("a", 40), "malformed bcrypt"},
		{"bcrypt bad char", "$2b$10$" + strings.Repeat("a", 52) + "!", "malformed bcrypt"},
		{"too long", "$argon2id$" + strings.Repeat("a", 600), "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidHash(tc.phc)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidHash) {
				t.Fatalf("ValidHash(%q) = %v; want %q", tc.phc, err, tc.want)
			}
			if ok, err := Verify("x", tc.phc); ok || err == nil {
				t.Fatalf("Verify accepted invalid hash: %v, %v", ok, err)
			}
		})
	}
}

func TestDummyVerifyCostsLikeVerify(t *testing.T) {
	phc, _ := Hash("pw")
	start := time.Now()
	_, _ = Verify("guess", phc)
	real := time.Since(start)
	start = time.Now()
	DummyVerify("guess")
	dummy := time.Since(start)
	// Loose bound: same parameters, so the same order of magnitude; catches a no-op.
	if dummy < real/5 {
		t.Errorf("DummyVerify took %v, a real Verify %v", dummy, real)
	}
}

func TestVerifyCache(t *testing.T) {
	phc, _ := Hash("s3cret")
	c := NewVerifyCache(time.Minute, 0)
	now := time.Unix(1_700_000_000, 0)
	c.now = func() time.Time { return now }

	if ok, err := c.Verify("acme", "app", "wrong", phc); ok || err != nil {
		t.Fatalf("wrong secret: %v, %v", ok, err)
	}
	if c.Len() != 0 {
		t.Fatal("a failed verification was remembered")
	}
	if ok, err := c.Verify("acme", "app", "s3cret", phc); !ok || err != nil {
		t.Fatalf("right secret: %v, %v", ok, err)
	}
	if c.Len() != 1 {
		t.Fatal("a verification was not remembered")
	}
	// A hit must still refuse another secret, another client, another tenant.
	for _, tc := range []struct{ tenant, client, secret string }{
		{"acme", "app", "s3cret!"},
		{"acme", "app", ""},
	} {
		if ok, _ := c.Verify(tc.tenant, tc.client, tc.secret, phc); ok {
			t.Errorf("cache accepted %+v", tc)
		}
	}
	if ok, _ := c.Verify("other", "app", "s3cret", phc); !ok {
		t.Error("other tenant, same hash: must verify (by argon2)")
	}

	// The stored hash changes: the old secret must no longer pass through the cache.
	newPHC, _ := Hash("n3w")
	if ok, _ := c.Verify("acme", "app", "s3cret", newPHC); ok {
		t.Error("old secret accepted against a new hash")
	}
	if ok, _ := c.Verify("acme", "app", "n3w", newPHC); !ok {
		t.Error("new secret refused")
	}

	// Expiry: past the TTL the entry is not trusted (and a wrong secret is still wrong).
	now = now.Add(2 * time.Minute)
	if ok, _ := c.Verify("acme", "app", "wrong", newPHC); ok {
		t.Error("wrong secret accepted after expiry")
	}

	c.Forget("acme", "app")
	c.Forget("other", "app")
	if c.Len() != 0 {
		t.Errorf("Forget left %d entries", c.Len())
	}
}

func TestVerifyCacheBounded(t *testing.T) {
	b, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	c := NewVerifyCache(time.Minute, 3)
	for i := range 10 {
		if ok, _ := c.Verify("t", string(rune('a'+i)), "pw", string(b)); !ok {
			t.Fatal("refused")
		}
		if c.Len() > 3 {
			t.Fatalf("cache grew to %d", c.Len())
		}
	}
}

func TestVerifyCacheConcurrent(t *testing.T) {
	b, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	c := NewVerifyCache(time.Minute, 5)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				secret := "pw"
				if j%3 == 0 {
					secret = "no"
				}
				ok, err := c.Verify("t", string(rune('a'+(i+j)%7)), secret, string(b))
				if err != nil || ok != (secret == "pw") {
					t.Errorf("Verify = %v, %v", ok, err)
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkVerify(b *testing.B) {
	phc, _ := Hash("s3cret")
	b.Run("argon2id", func(b *testing.B) {
		for b.Loop() {
			if ok, _ := Verify("s3cret", phc); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		c := NewVerifyCache(0, 0)
		for b.Loop() {
			if ok, _ := c.Verify("acme", "app", "s3cret", phc); !ok {
				b.Fatal("refused")
			}
		}
	})
}

// TestCachedVerifyIsCheap is the benchmark's claim as a test: a cache hit costs microseconds,
// not the milliseconds of argon2id.
func TestCachedVerifyIsCheap(t *testing.T) {
	phc, _ := Hash("s3cret")
	c := NewVerifyCache(0, 0)
	start := time.Now()
	c.Verify("acme", "app", "s3cret", phc)
	first := time.Since(start)
	const n = 1000
	start = time.Now()
	for range n {
		if ok, _ := c.Verify("acme", "app", "s3cret", phc); !ok {
			t.Fatal("refused")
		}
	}
	perHit := time.Since(start) / n
	if perHit*50 > first {
		t.Errorf("cache hit %v, argon2 %v: not cheap", perHit, first)
	}
}

// TestSlowHashesAreBounded: no more than the slot count of argon2id checks run at once,
// however many callers arrive together.
func TestSlowHashesAreBounded(t *testing.T) {
	phc, err := Hash("pw")
	if err != nil {
		t.Fatal(err)
	}
	var running, peak atomic.Int32
	var wg sync.WaitGroup
	for range 3 * cap(slowSlots) {
		wg.Go(func() {
			release := acquireSlow()
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			running.Add(-1)
			release()
			if ok, err := Verify("pw", phc); err != nil || !ok {
				t.Errorf("Verify: %v %v", ok, err)
			}
		})
	}
	wg.Wait()
	if int(peak.Load()) > cap(slowSlots) {
		t.Fatalf("%d slow hashes ran at once, bound %d", peak.Load(), cap(slowSlots))
	}
}
