package session

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

const (
	// authCacheTTL bounds how long a resolved token is trusted without the store. SPEC §6
	// gives other processes 1 s to see a revocation; this process sees its own at once
	// (generation below).
	authCacheTTL = time.Second
	// authCacheMax bounds the memory: an entry is about 1 KB.
	authCacheMax = 1 << 16
)

// authCache remembers, per token hash, the token and session a store read resolved, so
// that a client presenting one token many times a second costs one read per second.
//
// In-process invalidation is by generation: every store write of the Manager bumps it
// (Manager.update), and an entry loaded under an older generation is a miss. The
// generation is read before the store read that fills an entry, so a write that commits
// while the read runs invalidates what it loads. This is coarse (any write forgets every
// entry) but cannot miss a path that revokes.
type authCache struct {
	ttl time.Duration
	max int
	// now is the process clock for the ttl; the store clock bounds expiries.
	now func() time.Time

	gen          atomic.Uint64
	hits, misses atomic.Uint64

	mu      sync.RWMutex
	entries map[string]*authEntry
}

// authEntry is immutable once stored: hits share it, and whoever hands a part of it to a
// caller that may change it copies that part (resolveToken does).
type authEntry struct {
	tok    domain.Token
	sess   domain.Session
	gen    uint64
	loaded time.Time // process clock (monotonic)
	// until is on the store clock: the first of the token's and the session's expiry and
	// load + ttl (tests move the store clock; so it bounds the entry too).
	until time.Time
	// extendAt (store clock; zero: never) is the refresh point of a session that using the
	// token extends. An authentication past it must reach the store to extend the session;
	// an introspection extends nothing, so it may still be answered from the entry.
	extendAt time.Time
}

func newAuthCache() *authCache {
	return &authCache{ttl: authCacheTTL, max: authCacheMax, now: time.Now, entries: map[string]*authEntry{}}
}

// invalidate forgets every entry; call it after each store write that may touch sessions
// or tokens.
func (c *authCache) invalidate() { c.gen.Add(1) }

// generation is read before a store read whose result may be stored with put.
func (c *authCache) generation() uint64 { return c.gen.Load() }

// get returns the entry of hash if it may answer now; forUse: the answer is for an
// authentication (see authEntry.extendAt). storeNow is asked only when there is an entry:
// on PostgreSQL the store clock is a round trip. The entry is shared: read it, never change it.
func (c *authCache) get(hash string, forUse bool, storeNow func() (time.Time, error)) (*authEntry, error) {
	c.mu.RLock()
	e := c.entries[hash]
	c.mu.RUnlock()
	if e == nil || e.gen != c.gen.Load() || c.now().Sub(e.loaded) >= c.ttl {
		c.misses.Add(1)
		return nil, nil
	}
	now, err := storeNow()
	if err != nil {
		return nil, err
	}
	// The expiries are checked against the store clock on every hit, so a token or session
	// is refused exactly at its end, not up to a ttl later.
	if !now.Before(e.until) || (forUse && !e.extendAt.IsZero() && !now.Before(e.extendAt)) {
		c.misses.Add(1)
		return nil, nil
	}
	c.hits.Add(1)
	return e, nil
}

// put stores t and s, loaded at storeNow under generation gen. It keeps them by value
// (their slices shared): the caller must not change them afterwards.
func (c *authCache) put(hash string, t *domain.Token, s *domain.Session, gen uint64, storeNow time.Time) {
	until := storeNow.Add(c.ttl)
	for _, u := range []time.Time{t.ExpiresAt, s.ExpiresAt} {
		if u.Before(until) {
			until = u
		}
	}
	if !storeNow.Before(until) || gen != c.gen.Load() {
		return
	}
	e := &authEntry{tok: *t, sess: *s, gen: gen, loaded: c.now(), until: until}
	if extendsOnUse(s) {
		e.extendAt = refreshPoint(s)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		c.evictLocked()
	}
	c.entries[hash] = e
}

// evictLocked drops dead entries, then arbitrary ones (map order) down to 7/8 of max, so
// that a full cache of live entries pays for the scan once per max/8 inserts.
func (c *authCache) evictLocked() {
	gen, now := c.gen.Load(), c.now()
	for k, e := range c.entries {
		if e.gen != gen || now.Sub(e.loaded) >= c.ttl {
			delete(c.entries, k)
		}
	}
	for k := range c.entries {
		if len(c.entries) <= c.max*7/8 {
			break
		}
		delete(c.entries, k)
	}
}

func (c *authCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

func cloneToken(t *domain.Token) *domain.Token {
	c := *t
	c.Scopes = slices.Clone(t.Scopes)
	c.Data = slices.Clone(t.Data)
	return &c
}

func cloneSession(s *domain.Session) *domain.Session {
	c := *s
	c.Scopes = slices.Clone(s.Scopes)
	return &c
}

// update is the package's way to write (with updateAdding): after the transaction
// (committed or not) it invalidates the token cache, so that a revocation, an ended session
// or a rotated token of this process is refused by the next request.
func (m *Manager) update(ctx context.Context, fn func(tx store.Tx) error) error {
	defer m.auth.invalidate()
	err := m.st.Update(ctx, fn)
	m.eng.ReportSeatRefusal(ctx, err)
	return err
}

// updateAdding is update for a transaction that may turn out to have only added tokens to a
// live session (fn then sets *onlyAdded). Such a write leaves every cached entry true, since
// the cache holds existing tokens and their sessions, never the absence of a token; so it
// does not invalidate the cache, and a client_credentials rejoin does not make the next
// authentication or introspection of every other token of the process go to the store.
func (m *Manager) updateAdding(ctx context.Context, fn func(tx store.Tx, onlyAdded *bool) error) error {
	var onlyAdded, keep bool
	defer func() {
		if !keep {
			m.auth.invalidate()
		}
	}()
	err := m.st.Update(ctx, func(tx store.Tx) error {
		onlyAdded = false
		return fn(tx, &onlyAdded)
	})
	keep = err == nil && onlyAdded
	m.eng.ReportSeatRefusal(ctx, err)
	return err
}
