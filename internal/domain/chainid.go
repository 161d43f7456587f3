package domain

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
)

// Lease ids after the first are derived from the lease rather than drawn at random:
//
//	<root>.<n>.<tag>    tag = base64url(HMAC-SHA256(ChainKey, "<root>.<n>")[:12])
//
// where n counts the renewals. Any id of the chain then names its lease (the root is in
// it) and proves itself (the tag), so a renewal needs no row of its own to stay findable by
// a later release: with random ids every renewal inserted one into a table keyed by id, a
// random page of the store per renewal. The tag keeps ids unpredictable: a client that
// holds an old id cannot compute the current one (lease chaining's point), because the
// ChainKey never leaves the store.

// chainTagLen is the tag's size in bytes: 96 bits, beyond guessing within a lease's life.
const chainTagLen = 12

// NewChainKey returns a fresh random key for a lease's id chain.
func NewChainKey() []byte {
	k := make([]byte, 16)
	_, _ = rand.Read(k) // never fails (crypto/rand panics rather than return short)
	return k
}

// ChainedLeaseID returns the n-th (n ≥ 1) derived id of the chain rooted at root.
func ChainedLeaseID(root string, key []byte, n int64) string {
	var buf [128]byte
	b := chainPrefix(buf[:0], root, n)
	var tag [chainTagLen]byte
	chainTag(&tag, key, b)
	b = base64.RawURLEncoding.AppendEncode(append(b, '.'), tag[:])
	return string(b)
}

// chainPrefix appends "<root>.<n>", what the tag authenticates.
func chainPrefix(b []byte, root string, n int64) []byte {
	return strconv.AppendInt(append(append(b, root...), '.'), n, 10)
}

// chainTag computes the tag of prefix under key. A renewal derives an id and the store
// checks one, so both avoid allocating what they can.
func chainTag(tag *[chainTagLen]byte, key, prefix []byte) {
	mac := hmac.New(sha256.New, key)
	mac.Write(prefix)
	var sum [sha256.Size]byte
	copy(tag[:], mac.Sum(sum[:0]))
}

// ChainRoot returns the root a derived id names, and false for an id not of that form
// (a root, or an id from before derived ids). It does not check the tag: HasChainID does.
func ChainRoot(id string) (string, bool) {
	i := strings.LastIndexByte(id, '.')
	if i <= 0 {
		return "", false
	}
	j := strings.LastIndexByte(id[:i], '.')
	if j <= 0 || j+1 == i {
		return "", false
	}
	return id[:j], true
}

// HasChainID reports whether id is l's root, its current id, or a derived id of its chain
// up to the current one (constant time in the tag).
func (l *Lease) HasChainID(id string) bool {
	if id == l.Root || id == l.ID {
		return true
	}
	return l.DerivedChainID(id)
}

// DerivedChainID reports whether id is a derived id of l's chain (n from 1 to ChainSeq).
func (l *Lease) DerivedChainID(id string) bool {
	root, ok := ChainRoot(id)
	if !ok || root != l.Root || len(l.ChainKey) == 0 {
		return false
	}
	rest := id[len(root)+1:]
	dot := strings.IndexByte(rest, '.')
	n, err := strconv.ParseInt(rest[:dot], 10, 64)
	if err != nil || n < 1 || n > l.ChainSeq {
		return false
	}
	var buf [128]byte
	prefix := chainPrefix(buf[:0], root, n)
	if string(prefix) != id[:len(root)+1+dot] {
		return false // "+1" or "01" parse as 1 but are not the id that was issued
	}
	encoded := rest[dot+1:]
	if base64.RawURLEncoding.EncodedLen(chainTagLen) != len(encoded) {
		return false
	}
	var got, want [chainTagLen]byte
	if m, err := base64.RawURLEncoding.Decode(got[:], []byte(encoded)); err != nil || m != chainTagLen {
		return false
	}
	chainTag(&want, l.ChainKey, prefix)
	return hmac.Equal(got[:], want[:])
}
