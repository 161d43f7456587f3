package session

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// procClock replaces the cache's process clock, so that its ttl can pass without sleeping.
type procClock struct{ ns atomic.Int64 }

func (c *procClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *procClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func useProcClock(m *Manager) *procClock {
	c := &procClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	m.auth.now = c.Now
	return c
}

// wantHit authenticates access and requires the answer to come from the cache.
func (h *oaHarness) wantHit(access string) *Principal {
	h.t.Helper()
	before := h.m.auth.hits.Load()
	p, err := h.m.Authenticate(h.ctx, oaTenant, access, netip.Addr{})
	if err != nil {
		h.t.Fatalf("cached token refused: %v", err)
	}
	if h.m.auth.hits.Load() != before+1 {
		h.t.Fatal("not served from the cache")
	}
	return p
}

// warm authenticates access twice: the first loads it, the second must be a hit.
func (h *oaHarness) warm(access string) *Principal {
	h.t.Helper()
	if !h.live(access) {
		h.t.Fatal("token refused")
	}
	return h.wantHit(access)
}

func deleteTokenBehindManager(h *oaHarness, plain string) {
	h.t.Helper()
	if err := h.st.Update(h.ctx, func(tx store.Tx) error {
		ok, err := tx.DeleteToken(h.ctx, h.m.HashToken(plain))
		if err == nil && !ok {
			err = errors.New("no such token")
		}
		return err
	}); err != nil {
		h.t.Fatal(err)
	}
}

func deleteObject(h *oaHarness, ten string, kind domain.Kind, id string) {
	h.t.Helper()
	if err := h.st.Update(h.ctx, func(tx store.Tx) error {
		_, err := tx.DeleteObject(h.ctx, ten, kind, id)
		return err
	}); err != nil {
		h.t.Fatal(err)
	}
	h.cat.Invalidate(ten)
}

// TestAuthCacheServesWithoutStore: within the ttl a token is answered without the store (a
// row deleted behind the Manager's back, as another process would, still answers), and
// not past it, on either clock.
func TestAuthCacheServesWithoutStore(t *testing.T) {
	h := newOAuthHarness(t, 0)
	proc := useProcClock(h.m)

	g := h.codeGrant("conf", "all")
	h.warm(g.AccessToken)
	deleteTokenBehindManager(h, g.AccessToken)
	h.wantHit(g.AccessToken)
	proc.Advance(authCacheTTL - time.Millisecond)
	h.wantHit(g.AccessToken)
	proc.Advance(time.Millisecond)
	if h.live(g.AccessToken) {
		t.Fatal("a deleted token answered past the ttl (process clock)")
	}

	g = h.codeGrant("conf", "all")
	h.warm(g.AccessToken)
	deleteTokenBehindManager(h, g.AccessToken)
	h.wantHit(g.AccessToken)
	h.clock.Advance(authCacheTTL)
	if h.live(g.AccessToken) {
		t.Fatal("a deleted token answered past the ttl (store clock)")
	}
}

// TestAuthCacheBoundedByExpiry: an entry never outlives its token, nor its session's
// refresh point (where authenticating must extend the session through the store).
func TestAuthCacheBoundedByExpiry(t *testing.T) {
	h := newLoginHarness(t) // idle_timeout 10 m: the refresh point is 8 m after the last use
	g := h.mustLogin("alice", "d0")
	if _, err := h.m.Authenticate(h.ctx, "", g.AccessToken, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	h.m.auth.ttl = time.Hour // only the session may bound the entry now
	h.m.auth.invalidate()
	if _, err := h.m.Authenticate(h.ctx, "", g.AccessToken, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(8*time.Minute + time.Millisecond)
	wantExtendedPastRefresh(t, h.m, "", g.AccessToken, h.clock.Now(), 10*time.Minute)
}

// wantExtendedPastRefresh authenticates access (of tenant) past its session's refresh
// point: the answer must come from the store, not the cache, with the session's deadline
// moved to now + idle.
func wantExtendedPastRefresh(t testing.TB, m *Manager, tenant, access string, now time.Time, idle time.Duration) {
	t.Helper()
	hits := m.auth.hits.Load()
	p, err := m.Authenticate(t.Context(), tenant, access, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if m.auth.hits.Load() != hits {
		t.Fatal("an authentication past the refresh point was served from the cache")
	}
	if want := now.Add(idle); !p.Session.ExpiresAt.Equal(want) {
		t.Fatalf("not extended on use: expires %v, want %v", p.Session.ExpiresAt, want)
	}
}

// revocations are the Manager's ways to kill the token of a grant (g, from a code with
// offline_access, authenticated as p); each returns the token that must be dead ("" when the
// case checks for itself).
func revocations() map[string]func(h *oaHarness, g *Grant, p *Principal) (dead string) {
	return map[string]func(h *oaHarness, g *Grant, p *Principal) (dead string){
		"End": func(h *oaHarness, g *Grant, p *Principal) string {
			if _, err := h.m.End(h.ctx, oaTenant, g.Session.ID, true); err != nil {
				h.t.Fatal(err)
			}
			return g.AccessToken
		},
		"Logout": func(h *oaHarness, g *Grant, p *Principal) string {
			if err := h.m.Logout(h.ctx, p); err != nil {
				h.t.Fatal(err)
			}
			return g.AccessToken
		},
		"EndAll": func(h *oaHarness, g *Grant, p *Principal) string {
			if _, err := h.m.EndAll(h.ctx, oaTenant, "alice"); err != nil {
				h.t.Fatal(err)
			}
			return g.AccessToken
		},
		"RevokeAccess": func(h *oaHarness, g *Grant, p *Principal) string {
			if err := h.m.Revoke(h.ctx, oaTenant, g.AccessToken, "conf"); err != nil {
				h.t.Fatal(err)
			}
			return g.AccessToken
		},
		"RevokeRefresh": func(h *oaHarness, g *Grant, p *Principal) string {
			if err := h.m.Revoke(h.ctx, oaTenant, g.RefreshToken, "conf"); err != nil {
				h.t.Fatal(err)
			}
			return g.AccessToken
		},
		"RefreshKillsOldAccess": func(h *oaHarness, g *Grant, p *Principal) string {
			g2, err := h.m.Refresh(h.ctx, oaTenant, g.RefreshToken, "conf", netip.Addr{})
			if err != nil {
				h.t.Fatal(err)
			}
			h.warm(g2.AccessToken)
			return g.AccessToken
		},
		"RefreshReplayRevokesFamily": func(h *oaHarness, g *Grant, p *Principal) string {
			g2, err := h.m.Refresh(h.ctx, oaTenant, g.RefreshToken, "conf", netip.Addr{})
			if err != nil {
				h.t.Fatal(err)
			}
			h.warm(g2.AccessToken)
			if _, err := h.m.Refresh(h.ctx, oaTenant, g.RefreshToken, "conf", netip.Addr{}); err == nil {
				h.t.Fatal("replay accepted")
			}
			return g2.AccessToken
		},
		"ClientCredentialsRejoin": func(h *oaHarness, g *Grant, p *Principal) string {
			// A rejoining grant that rewrites the session (here its scopes) must not leave a
			// cached copy behind; the earlier token stays valid (SPEC §4). (A rejoin that
			// writes nothing but its tokens keeps the cache: TestRejoinKeepsCache.)
			before := h.m.auth.hits.Load()
			g2, err := h.m.ClientCredentials(h.ctx, oaTenant, h.client("conf"), []string{"all"}, "dev-1", netip.Addr{})
			if err != nil {
				h.t.Fatal(err)
			}
			q, err := h.m.Authenticate(h.ctx, oaTenant, g.AccessToken, netip.Addr{})
			if err != nil || h.m.auth.hits.Load() != before {
				h.t.Fatalf("after a grant: %v, served from the cache: %v", err, h.m.auth.hits.Load() != before)
			}
			if q.Session.ID != g2.Session.ID || !slices.Equal(q.Session.Scopes, []string{"all"}) {
				h.t.Fatalf("session after the rejoin: %+v", q.Session)
			}
			return ""
		},
	}
}

// TestAuthCacheRevokedInProcess: every revocation path of the Manager is refused by the
// very next request although the token was cached.
func TestAuthCacheRevokedInProcess(t *testing.T) {
	for name, revoke := range revocations() {
		t.Run(name, func(t *testing.T) {
			h := newOAuthHarness(t, 0)
			var g *Grant
			if name == "ClientCredentialsRejoin" {
				var err error
				if g, err = h.m.ClientCredentials(h.ctx, oaTenant, h.client("conf"), []string{"all", ScopeOffline}, "dev-1", netip.Addr{}); err != nil {
					t.Fatal(err)
				}
			} else {
				g = h.codeGrant("conf", "all", ScopeOffline)
			}
			p := h.warm(g.AccessToken)
			if dead := revoke(h, g, p); dead != "" && h.live(dead) {
				t.Fatal("a revoked token still authenticates")
			}
		})
	}
}

// TestAuthCacheCodeReuse: presenting a used authorization code again ends what it issued.
func TestAuthCacheCodeReuse(t *testing.T) {
	h := newOAuthHarness(t, 0)
	verifier := "v-" + NewID() + NewID()
	code, err := h.m.IssueCode(h.ctx, oaTenant, CodeRequest{ClientID: "conf", RedirectURI: "https://app.example/cb",
		RedirectGiven: true, Challenge: S256(verifier), Scopes: []string{"all"}, User: "alice", Device: "dev-1"})
	if err != nil {
		t.Fatal(err)
	}
	x := CodeExchange{Code: code, RedirectURI: "https://app.example/cb", Verifier: verifier}
	g, err := h.m.ExchangeCode(h.ctx, oaTenant, h.client("conf"), x)
	if err != nil {
		t.Fatal(err)
	}
	h.warm(g.AccessToken)
	if _, err := h.m.ExchangeCode(h.ctx, oaTenant, h.client("conf"), x); err == nil {
		t.Fatal("code reused")
	}
	if h.live(g.AccessToken) {
		t.Fatal("a token of a reused code still authenticates")
	}
}

// TestAuthCacheCatalogEveryRequest: a disabled client's cached token is refused at once,
// and works again once the client is enabled.
func TestAuthCacheCatalogEveryRequest(t *testing.T) {
	h := newOAuthHarness(t, 0)
	g := h.codeGrant("conf", "all")
	h.warm(g.AccessToken)
	c := *h.client("conf")
	c.Enabled = false
	h.put(oaTenant, domain.KindClient, "conf", c)
	if h.live(g.AccessToken) {
		t.Fatal("a disabled client's cached token authenticates")
	}
	c.Enabled = true
	h.put(oaTenant, domain.KindClient, "conf", c)
	h.wantHit(g.AccessToken)
	if _, err := h.m.Authenticate(h.ctx, "other", g.AccessToken, netip.Addr{}); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("cached token in another tenant: %v", err)
	}
}

// TestAuthCacheCookie: cookies are cached too, and a logout refuses them at once; a token
// of one kind cached never answers for the other.
func TestAuthCacheCookie(t *testing.T) {
	h := newLoginHarness(t)
	g := h.mustLogin("alice", "d0")
	for range 2 {
		if _, err := h.m.AuthenticateCookie(h.ctx, "", g.Cookie, netip.Addr{}); err != nil {
			t.Fatal(err)
		}
	}
	if h.m.auth.hits.Load() != 1 {
		t.Fatalf("hits %d, want 1", h.m.auth.hits.Load())
	}
	if _, err := h.m.Authenticate(h.ctx, "", g.Cookie, netip.Addr{}); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("cached cookie as a bearer token: %v", err)
	}
	p, err := h.m.AuthenticateCookie(h.ctx, "", g.Cookie, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.m.Logout(h.ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.AuthenticateCookie(h.ctx, "", g.Cookie, netip.Addr{}); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("cookie after logout: %v", err)
	}
}

// TestAuthCacheCopies: a caller that changes its Principal does not change the next one's.
func TestAuthCacheCopies(t *testing.T) {
	h := newOAuthHarness(t, 0)
	g := h.codeGrant("conf", "all")
	p := h.warm(g.AccessToken)
	p.Session.Scopes[0], p.Token.Scopes[0], p.Session.User, p.Token.ClientID = "x", "x", "x", "x"
	q := h.wantHit(g.AccessToken)
	if q.Session.Scopes[0] != "all" || q.Token.Scopes[0] != "all" || q.Session.User != "alice" || q.Token.ClientID != "conf" {
		t.Fatalf("cache entry changed through a caller: %+v %+v", q.Session, q.Token)
	}
}

// TestAuthCacheBounded: the cache never holds more than its maximum.
func TestAuthCacheBounded(t *testing.T) {
	c := newAuthCache()
	c.max = 64
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &domain.Session{LastUsedAt: now, ExpiresAt: now.Add(time.Hour)}
	tok := &domain.Token{ExpiresAt: now.Add(time.Hour)}
	for i := range 1000 {
		c.put(fmt.Sprint(i), tok, s, c.generation(), now)
		if c.len() > c.max {
			t.Fatalf("%d entries, max %d", c.len(), c.max)
		}
	}
	if c.len() < c.max*7/8 {
		t.Fatalf("evicted too much: %d", c.len())
	}
}

// TestAuthCacheConcurrent: authentications racing with ends (run with -race).
func TestAuthCacheConcurrent(t *testing.T) {
	h := newOAuthHarness(t, 0)
	var grants []*Grant
	for range 4 {
		grants = append(grants, h.codeGrant("conf", "all"))
	}
	var wg sync.WaitGroup
	for _, g := range grants {
		for range 4 {
			wg.Go(func() {
				for range 50 {
					if _, err := h.m.Authenticate(h.ctx, oaTenant, g.AccessToken, netip.Addr{}); err != nil && !errors.Is(err, ErrInvalidToken) {
						t.Error(err)
					}
				}
			})
		}
		wg.Go(func() {
			if _, err := h.m.End(h.ctx, oaTenant, g.Session.ID, false); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, g := range grants {
		if h.live(g.AccessToken) {
			t.Fatal("an ended session's token authenticates")
		}
	}
}

// BenchmarkAuthenticateCached: one hot token, answered from the cache, against the same
// with the cache forgotten before every call (a read transaction each time).
func BenchmarkAuthenticateCached(b *testing.B) {
	benchCached(b, func(h *oaHarness, token string) error {
		_, err := h.m.Authenticate(h.ctx, oaTenant, token, netip.Addr{})
		return err
	})
}

// benchCached runs call on one hot access token, with the token cache and with it forgotten
// before every call.
func benchCached(b *testing.B, call func(h *oaHarness, token string) error) {
	for _, cached := range []bool{true, false} {
		b.Run(map[bool]string{true: "cached", false: "uncached"}[cached], func(b *testing.B) {
			h := newOAuthHarness(b, 0)
			g := h.codeGrant("conf", "all")
			b.ReportAllocs()
			for b.Loop() {
				if !cached {
					h.m.auth.invalidate()
				}
				if err := call(h, g.AccessToken); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
