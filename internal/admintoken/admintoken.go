// Package admintoken decides whether a presented value is the admin token, and slows down
// guessing it: one owner for the admin API, /metrics and the dashboard's sign-in, so that
// they accept the same tokens and share one allowance of wrong guesses per address.
package admintoken

import (
	"net/netip"
	"time"

	"github.com/leasehold/leasehold/internal/secret"
	"github.com/leasehold/leasehold/internal/throttle"
)

// Free wrong tokens from one address (a mistyped token); then each further one doubles
// the wait. Guessing a 24-character token stays out of reach.
const Free = 10

// Guard holds the configured admin token (plain, its PHC hash, or both: either is then
// accepted, so a token can be changed without a moment when neither works).
type Guard struct {
	plain, hash string
	cache       *secret.VerifyCache
	guesses     throttle.Limiter
}

// New returns a Guard of the configured token and hash ("" for none).
func New(plain, hash string) *Guard {
	return &Guard{plain: plain, hash: hash, cache: secret.NewVerifyCache(0, 0)}
}

// Configured reports whether an admin token is configured at all (else the admin API, the
// dashboard and, without a metrics token, /metrics are off).
func (g *Guard) Configured() bool { return g != nil && (g.plain != "" || g.hash != "") }

// Check reports whether tok, presented from addr, is the admin token or one of also (a
// token with a narrower use, such as metrics_token). When addr has failed too often,
// nothing is checked and retry says how long to wait; a wrong token counts against addr.
func (g *Guard) Check(tok string, addr netip.Addr, also ...string) (ok bool, retry time.Duration) {
	key := throttle.Key{ID: "admin\x00" + throttle.Addr(addr), Free: Free}
	if wait := g.guesses.Wait(time.Now(), key); wait > 0 {
		return false, wait
	}
	if g.valid(tok, also) {
		return true, 0
	}
	g.guesses.Fail(time.Now(), key)
	return false, 0
}

func (g *Guard) valid(tok string, also []string) bool {
	if tok == "" || len(tok) > secret.MaxSecretLen {
		return false
	}
	for _, a := range also {
		if a != "" && secret.Equal(tok, a) {
			return true
		}
	}
	if g.plain != "" && secret.Equal(tok, g.plain) {
		return true
	}
	if g.hash == "" {
		return false
	}
	// The cache's empty "tenant" is no tenant's name: no client shares the entry.
	ok, err := g.cache.Verify("", "admin", tok, g.hash)
	return err == nil && ok
}
