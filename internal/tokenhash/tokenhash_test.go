package tokenhash

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
)

// TestHash: the stored form is the hex HMAC-SHA256, under the key, of the secret's
// SHA-256, whatever the secret's length; another key gives another form.
func TestHash(t *testing.T) {
	key := []byte(strings.Repeat("k", KeySize))
	h := New(key)
	for _, n := range []int{0, 43, 127, 128, 129, 4096} {
		secret := strings.Repeat("x", n)
		sum := sha256.Sum256([]byte(secret))
		m := hmac.New(sha256.New, key)
		m.Write(sum[:])
		if got, want := h.Hash(secret), hex.EncodeToString(m.Sum(nil)); got != want {
			t.Fatalf("length %d: %s, want %s", n, got, want)
		}
		if plain := hex.EncodeToString(sum[:]); h.Hash(secret) == plain {
			t.Fatalf("length %d: the stored form is the unkeyed SHA-256", n)
		}
	}
	if New(NewKey()).Hash("abc") == h.Hash("abc") {
		t.Fatal("two keys give one stored form")
	}
	plain, stored := h.New()
	if len(plain) != 43 || h.Hash(plain) != stored {
		t.Fatalf("New: %q %q", plain, stored)
	}
}

// TestRekey: an earlier version's stored form (hex SHA-256, with or without a record
// prefix) becomes exactly what Hash gives for the same secret now.
func TestRekey(t *testing.T) {
	h := New(NewKey())
	sum := sha256.Sum256([]byte("a-token"))
	legacy := hex.EncodeToString(sum[:])
	for _, prefix := range []string{"", "used:", "rotated:"} {
		got, err := h.Rekey(prefix + legacy)
		if err != nil || got != prefix+h.Hash("a-token") {
			t.Fatalf("Rekey(%q) = %q, %v", prefix+legacy, got, err)
		}
	}
	for _, bad := range []string{"", "zz", legacy[:10], "used:" + legacy[:62] + "zz"} {
		if _, err := h.Rekey(bad); err != ErrNotLegacy {
			t.Fatalf("Rekey(%q): %v", bad, err)
		}
	}
}

// TestHashConcurrent: the pooled HMAC states are never shared between goroutines.
func TestHashConcurrent(t *testing.T) {
	h := New(NewKey())
	want := h.Hash("same")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 1000; j++ {
				if got := h.Hash("same"); got != want {
					t.Errorf("got %s", got)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// BenchmarkHash against the unkeyed SHA-256 that was stored before: what keying costs an
// authentication.
func BenchmarkHash(b *testing.B) {
	h := New(NewKey())
	plain := Random()
	b.Run("keyed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = h.Hash(plain)
		}
	})
	b.Run("sha256", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sum := sha256.Sum256([]byte(plain))
			_ = hex.EncodeToString(sum[:])
		}
	})
}
