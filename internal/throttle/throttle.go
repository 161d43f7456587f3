// Package throttle slows down guessing: repeated failures of a secret check (a password,
// a client secret, the admin token) under one key make the next attempt wait.
//
// Each key may fail a few times freely (its Free count); after that every further failure
// doubles the wait before the next attempt, up to MaxWait. A key forgets its failures
// Window after the last one. An attempt counts as a failure as soon as it is let through
// (Succeed takes it back), so that concurrent guesses cannot all slip in before the first
// of them has failed.
//
// Keys are chosen by the caller so that a failure only slows down who failed: a user is
// throttled per (user, address), never across addresses, so that a guess every few
// minutes from anywhere cannot keep a user out for good (lockout as a weapon).
//
// The table is bounded: when full, forgotten keys are dropped first, then arbitrary ones
// (an attacker flooding it from many addresses gains at most a fresh start for some keys,
// never unbounded memory).
package throttle

import (
	"net/netip"
	"sync"
	"time"
)

// Defaults of a Limiter's zero fields.
const (
	DefaultBaseWait = time.Second
	DefaultMaxWait  = 15 * time.Minute
	DefaultWindow   = 15 * time.Minute
	DefaultMaxKeys  = 100_000
)

// Key is one thing whose failures are counted, and how many of them are free.
type Key struct {
	ID   string
	Free int
}

// Limiter counts failures per key. The zero value is ready to use with the defaults.
type Limiter struct {
	BaseWait, MaxWait, Window time.Duration
	MaxKeys                   int

	mu      sync.Mutex
	entries map[string]*failures
}

type failures struct {
	n     int
	last  time.Time
	until time.Time
}

// Attempt answers how long the caller must wait before trying (0: go ahead). When it may go
// ahead, the attempt is counted at once as a failure of every key; keys with an empty ID
// are skipped. For checks that one caller rarely runs concurrently (a user's password).
func (l *Limiter) Attempt(now time.Time, keys ...Key) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := l.waitLocked(now, keys); w > 0 {
		return w
	}
	l.failLocked(now, keys)
	return 0
}

// Wait answers how long the caller must wait before trying (0: go ahead), counting nothing:
// for checks that an honest caller runs many at a time (a busy client's secret, the admin
// token), which Attempt's counting of attempts in flight would refuse. Call Fail after a
// failed check.
func (l *Limiter) Wait(now time.Time, keys ...Key) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waitLocked(now, keys)
}

// Fail counts a failure of every key.
func (l *Limiter) Fail(now time.Time, keys ...Key) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failLocked(now, keys)
}

func (l *Limiter) waitLocked(now time.Time, keys []Key) time.Duration {
	var w time.Duration
	for _, k := range keys {
		if e := l.entries[k.ID]; k.ID != "" && e != nil && now.Before(e.until) {
			w = max(w, e.until.Sub(now))
		}
	}
	return w
}

// Succeed forgets the failures of key, and gives each of refund back the one attempt that
// succeeded: one valid account must not let an address go on guessing the secrets of others.
func (l *Limiter) Succeed(key Key, refund ...Key) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.entries, key.ID)
	for _, k := range refund {
		if e := l.entries[k.ID]; k.ID != "" && e != nil {
			e.n = max(e.n-1, 0)
			if e.n < k.Free {
				e.until = time.Time{}
			}
		}
	}
}

func (l *Limiter) failLocked(now time.Time, keys []Key) {
	for _, k := range keys {
		if k.ID != "" {
			l.failKeyLocked(now, k)
		}
	}
}

func (l *Limiter) failKeyLocked(now time.Time, k Key) {
	if l.entries == nil {
		l.entries = map[string]*failures{}
	}
	e := l.entries[k.ID]
	if e == nil {
		if len(l.entries) >= l.maxKeys() {
			l.evictLocked(now)
		}
		e = &failures{}
		l.entries[k.ID] = e
	} else if now.Sub(e.last) > l.window() {
		*e = failures{}
	}
	e.n++
	e.last = now
	if over := e.n - k.Free; over >= 0 {
		wait, base := l.maxWait(), l.baseWait()
		if over < 20 && base<<over < wait {
			wait = base << over
		}
		e.until = now.Add(wait)
	}
}

func (l *Limiter) evictLocked(now time.Time) {
	for k, e := range l.entries {
		if now.Sub(e.last) > l.window() && !now.Before(e.until) {
			delete(l.entries, k)
		}
	}
	for k := range l.entries {
		if len(l.entries) < l.maxKeys()*9/10 {
			break
		}
		delete(l.entries, k)
	}
}

func (l *Limiter) baseWait() time.Duration { return or(l.BaseWait, DefaultBaseWait) }
func (l *Limiter) maxWait() time.Duration  { return or(l.MaxWait, DefaultMaxWait) }
func (l *Limiter) window() time.Duration   { return or(l.Window, DefaultWindow) }
func (l *Limiter) maxKeys() int {
	if l.MaxKeys > 0 {
		return l.MaxKeys
	}
	return DefaultMaxKeys
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Addr is the part of a client address that identifies one host: IPv6 clients are grouped
// by /64, since one host usually owns the whole prefix. "" for an invalid address.
func Addr(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// RetrySeconds is d rounded up to whole seconds (at least 1), for a Retry-After header.
func RetrySeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}
