package secret

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"
	"time"
)

// Defaults of NewVerifyCache.
const (
	DefaultCacheTTL  = 5 * time.Minute
	DefaultCacheSize = 10000
)

// VerifyCache remembers, for a short time, which client secrets were verified against which
// stored hash, so that the token endpoint pays argon2 once per client per TTL rather than on
// every call.
//
// Nothing usable is kept: an entry is HMAC-SHA256(tenant, client, PHC, secret) under a random
// key made when the cache is created, so a memory dump yields neither the secret nor a value
// that can be presented. Binding the PHC into the MAC makes a changed stored hash (a new
// secret, a re-hash) miss at once. Only successful verifications are remembered: a wrong
// secret always pays the full price.
type VerifyCache struct {
	key [32]byte
	ttl time.Duration
	max int
	now func() time.Time

	macs sync.Pool // hash.Hash keyed with key

	mu      sync.Mutex
	entries map[cacheKey]cacheEntry
}

type cacheKey struct{ tenant, client string }

type cacheEntry struct {
	mac     [sha256.Size]byte
	expires time.Time
}

// NewVerifyCache returns a cache that remembers a verification for ttl and holds at most
// size entries (zero values: DefaultCacheTTL, DefaultCacheSize).
func NewVerifyCache(ttl time.Duration, size int) *VerifyCache {
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	if size <= 0 {
		size = DefaultCacheSize
	}
	c := &VerifyCache{ttl: ttl, max: size, now: time.Now, entries: map[cacheKey]cacheEntry{}}
	if _, err := rand.Read(c.key[:]); err != nil {
		// crypto/rand does not fail on supported platforms (it panics itself since Go 1.24).
		panic("secret: no randomness: " + err.Error())
	}
	c.macs.New = func() any { return hmac.New(sha256.New, c.key[:]) }
	return c
}

// Verify is Verify(secret, phc) for client clientID of tenant, answered from the cache when
// the same secret was verified against the same phc within the TTL.
func (c *VerifyCache) Verify(tenant, clientID, secret, phc string) (bool, error) {
	mac := c.mac(tenant, clientID, phc, secret)
	k := cacheKey{tenant, clientID}
	now := c.now()

	c.mu.Lock()
	e, found := c.entries[k]
	c.mu.Unlock()
	if found && now.Before(e.expires) && hmac.Equal(e.mac[:], mac[:]) {
		return true, nil
	}

	ok, err := verify(secret, phc, clientSlots)
	if err != nil || !ok {
		return ok, err
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if _, exists := c.entries[k]; !exists && len(c.entries) >= c.max {
		c.evictLocked(now)
	}
	c.entries[k] = cacheEntry{mac: mac, expires: now.Add(c.ttl)}
	return true, nil
}

// Forget drops what is remembered of a client (disabled, removed, secret changed).
func (c *VerifyCache) Forget(tenant, clientID string) {
	c.mu.Lock()
	delete(c.entries, cacheKey{tenant, clientID})
	c.mu.Unlock()
}

// Len is the number of entries held (expired ones included until evicted).
func (c *VerifyCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// evictLocked makes room for one entry: expired entries go first, then arbitrary ones (map
// order). The cache is an optimisation; evicting a live entry only costs one argon2 run.
func (c *VerifyCache) evictLocked(now time.Time) {
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	for k := range c.entries {
		if len(c.entries) < c.max {
			break
		}
		delete(c.entries, k)
	}
}

func (c *VerifyCache) mac(fields ...string) [sha256.Size]byte {
	h := c.macs.Get().(hash.Hash)
	h.Reset()
	var n [8]byte
	for _, f := range fields {
		// Length-prefixed, so that no two field lists share an encoding.
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	c.macs.Put(h)
	return out
}
