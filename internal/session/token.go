package session

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
)

// NewToken returns a fresh opaque token (256 random bits, base64url) and the hash that is
// stored in its place: a database dump holds no usable token.
func NewToken() (plain, hash string) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // the platform RNG never fails on Linux
	}
	plain = base64.RawURLEncoding.EncodeToString(b[:])
	return plain, HashToken(plain)
}

// HashToken is the stored form of a token. A plain SHA-256 suffices: the tokens carry 256
// bits of entropy, so there is nothing to brute-force.
func HashToken(plain string) string {
	// Every authentication and introspection hashes its token: the buffers stay on the stack,
	// for the tokens this server issues (43 characters) and most others.
	var in [128]byte
	b := in[:0]
	if len(plain) <= len(in) {
		b = append(b, plain...)
	} else {
		b = []byte(plain)
	}
	sum := sha256.Sum256(b)
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], sum[:])
	return string(out[:])
}

// NewID returns a random identifier for sessions and token families.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}
