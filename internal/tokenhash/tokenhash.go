// Package tokenhash owns the form in which the stores keep bearer secrets (access, refresh
// and login tokens, authorization codes, dashboard cookies): an HMAC-SHA256, under a key
// the server keeps apart from the rows, of the secret's SHA-256. A copy of the tokens table
// signs no one in, and write access to it is not enough to plant a token: without the key
// no one can compute the hash a chosen token would have.
//
// The HMAC is taken over the SHA-256 rather than the secret itself so that a store holding
// the plain SHA-256 of an earlier version can be upgraded row by row (Rekey), without the
// secrets and without a window in which the old, unkeyed form is accepted.
package tokenhash

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"strings"
	"sync"
)

// KeySize is the length of a key, in bytes.
const KeySize = 32

// Hasher computes stored forms under one key. It is safe for concurrent use.
type Hasher struct {
	macs sync.Pool // of hash.Hash: an HMAC's keyed state is set up once, not per token
}

// New returns a Hasher under key (KeySize random bytes, kept by the store).
func New(key []byte) *Hasher {
	k := append([]byte(nil), key...)
	h := &Hasher{}
	h.macs.New = func() any { return hmac.New(sha256.New, k) }
	return h
}

// NewKey returns a fresh random key.
func NewKey() []byte {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		panic("crypto/rand failed: " + err.Error()) // the platform RNG never fails on Linux
	}
	return k
}

// Hash is the stored form of secret.
func (h *Hasher) Hash(secret string) string {
	// Every authentication and introspection hashes its token: the buffers stay on the
	// stack for the tokens this server issues (43 characters) and most others.
	var in [128]byte
	b := in[:0]
	if len(secret) <= len(in) {
		b = append(b, secret...)
	} else {
		b = []byte(secret)
	}
	sum := sha256.Sum256(b)
	return h.keyed(sum[:])
}

func (h *Hasher) keyed(digest []byte) string {
	m := h.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(digest)
	var mac [sha256.Size]byte
	m.Sum(mac[:0])
	h.macs.Put(m)
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], mac[:])
	return string(out[:])
}

// New returns a fresh opaque token (256 random bits, base64url) and its stored form.
func (h *Hasher) New() (plain, stored string) {
	plain = Random()
	return plain, h.Hash(plain)
}

// Random returns 256 random bits, base64url: a token, or a value (a CSRF token) that is
// never stored.
func Random() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ErrNotLegacy is returned by Rekey for a value that is not an unkeyed stored form.
var ErrNotLegacy = errors.New("tokenhash: not a hex SHA-256")

// Rekey turns the stored form of an earlier version (the hex SHA-256 of the secret,
// optionally after a "prefix:" that marks a record kept under a token's hash) into this
// version's. A store's migration calls it on every row, once.
func (h *Hasher) Rekey(legacy string) (string, error) {
	prefix, digest := "", legacy
	if i := strings.LastIndexByte(legacy, ':'); i >= 0 {
		prefix, digest = legacy[:i+1], legacy[i+1:]
	}
	sum, err := hex.DecodeString(digest)
	if err != nil || len(sum) != sha256.Size {
		return "", ErrNotLegacy
	}
	return prefix + h.keyed(sum), nil
}
