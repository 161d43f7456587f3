package session

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// TestHashToken: the stored form of a token is the hex SHA-256 of it, whatever its length
// (stored hashes must stay valid across versions).
func TestHashToken(t *testing.T) {
	if got := HashToken("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("HashToken(abc) = %s", got)
	}
	for _, n := range []int{0, 43, 127, 128, 129, 512, 4096} {
		plain := strings.Repeat("x", n)
		sum := sha256.Sum256([]byte(plain))
		if got := HashToken(plain); got != hex.EncodeToString(sum[:]) {
			t.Fatalf("length %d: %s", n, got)
		}
	}
	plain, hash := NewToken()
	if len(plain) != 43 || HashToken(plain) != hash {
		t.Fatalf("NewToken: %q %q", plain, hash)
	}
}
