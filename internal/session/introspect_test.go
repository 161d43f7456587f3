package session

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
)

func (h *oaHarness) introspect(token string) *Introspection {
	h.t.Helper()
	in, err := h.m.Introspect(h.ctx, oaTenant, token)
	if err != nil {
		h.t.Fatal(err)
	}
	return in
}

// wantIntrospectHit introspects token and requires the answer to come from the cache
// without a store transaction.
func (h *oaHarness) wantIntrospectHit(c *countingStore, token string) *Introspection {
	h.t.Helper()
	hits, views, updates := h.m.auth.hits.Load(), c.views.Load(), c.updates.Load()
	in := h.introspect(token)
	if h.m.auth.hits.Load() != hits+1 || c.views.Load() != views || c.updates.Load() != updates {
		h.t.Fatalf("not served from the cache: %d hits, %d views, %d updates",
			h.m.auth.hits.Load()-hits, c.views.Load()-views, c.updates.Load()-updates)
	}
	return in
}

// TestIntrospectCached: a second introspection of a live token opens no store transaction
// and answers exactly what the first (from the store) answered, for access and refresh
// tokens; an authentication warms the same cache.
func TestIntrospectCached(t *testing.T) {
	h := newOAuthHarness(t, 0)
	c := countManager(h.m)
	g := h.codeGrant("conf", "all", ScopeOffline)
	for _, tok := range []string{g.AccessToken, g.RefreshToken} {
		views := c.views.Load()
		first := h.introspect(tok)
		if c.views.Load() != views+1 {
			t.Fatalf("first introspection: %d views", c.views.Load()-views)
		}
		if !first.Active || !first.Seat || first.User != "alice" || first.ClientID != "conf" || first.Tenant != oaTenant ||
			first.SessionID != g.Session.ID || len(first.Scopes) != 2 || first.ExpiresAt.IsZero() {
			t.Fatalf("introspection: %+v", first)
		}
		second := h.wantIntrospectHit(c, tok)
		if !reflect.DeepEqual(first, second) {
			t.Fatalf("cached answer differs:\n%+v\n%+v", first, second)
		}
		// The answer is the caller's: changing it changes no later answer.
		second.Scopes[0] = "x"
		if in := h.wantIntrospectHit(c, tok); in.Scopes[0] != "all" {
			t.Fatalf("cache entry changed through an answer: %+v", in)
		}
	}
	if in := h.introspect(g.RefreshToken); in.Kind != domain.TokenRefresh || !in.ExpiresAt.Equal(g.Session.ExpiresAt) {
		t.Fatalf("refresh token: %+v", in)
	}

	g = h.codeGrant("conf", "all")
	h.live(g.AccessToken)
	h.wantIntrospectHit(c, g.AccessToken)
}

// TestIntrospectCachedChecks: what a hit still checks. The tenant and the token kind (a
// cookie is no OAuth2 token, even cached), the catalog (a disabled or removed client or
// user makes the token inactive at once, and active again when enabled), and the store
// clock: the token is inactive exactly at its exp.
func TestIntrospectCachedChecks(t *testing.T) {
	h := newOAuthHarness(t, 0)
	c := countManager(h.m)
	h.m.auth.ttl = time.Hour // only the expiries bound the entries now
	g := h.codeGrant("conf", "all")
	h.introspect(g.AccessToken)
	h.wantIntrospectHit(c, g.AccessToken)

	if in, err := h.m.Introspect(h.ctx, "other", g.AccessToken); err != nil || in.Active {
		t.Fatalf("cached token introspected in another tenant: %+v %v", in, err)
	}

	conf := *h.client("conf")
	conf.Enabled = false
	h.put(oaTenant, domain.KindClient, "conf", conf)
	if in := h.wantIntrospectHit(c, g.AccessToken); in.Active {
		t.Fatal("a disabled client's cached token is active")
	}
	conf.Enabled = true
	h.put(oaTenant, domain.KindClient, "conf", conf)
	if in := h.wantIntrospectHit(c, g.AccessToken); !in.Active {
		t.Fatal("re-enabled client's token inactive")
	}
	alice := domain.User{Username: "alice", PasswordHash: "x", Organization: "org-1", Enabled: false}
	h.put(oaTenant, domain.KindUser, "alice", alice)
	if in := h.wantIntrospectHit(c, g.AccessToken); in.Active {
		t.Fatal("a disabled user's cached token is active")
	}
	alice.Enabled = true
	h.put(oaTenant, domain.KindUser, "alice", alice)

	snap, err := h.cat.Get(h.ctx, oaTenant)
	if err != nil {
		t.Fatal(err)
	}
	lg, err := h.m.BrowserLogin(h.ctx, oaTenant, snap.Users["alice"], "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.AuthenticateCookie(h.ctx, oaTenant, lg.Cookie, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if in := h.wantIntrospectHit(c, lg.Cookie); in.Active {
		t.Fatal("a cached cookie token is active at the introspection endpoint")
	}

	g = h.codeGrant("conf", "all") // the login's write forgot the cache
	in := h.introspect(g.AccessToken)
	h.clock.Advance(in.ExpiresAt.Sub(h.clock.Now()) - time.Millisecond)
	if in := h.wantIntrospectHit(c, g.AccessToken); !in.Active {
		t.Fatal("inactive before its exp")
	}
	h.clock.Advance(time.Millisecond)
	if in := h.introspect(g.AccessToken); in.Active {
		t.Fatal("active at its exp")
	}

	h.put(oaTenant, domain.KindClient, "gone", domain.Client{ClientID: "gone", ClientSecretHash: "x", User: "alice", Enabled: true,
		RedirectURIs: []string{"https://app.example/cb"}, GrantTypes: []string{"authorization_code"}, Scopes: []string{"all"}})
	g = h.codeGrant("gone", "all")
	h.introspect(g.AccessToken)
	h.wantIntrospectHit(c, g.AccessToken)
	deleteObject(h, oaTenant, domain.KindClient, "gone")
	if in := h.wantIntrospectHit(c, g.AccessToken); in.Active {
		t.Fatal("a removed client's cached token is active")
	}
}

// TestIntrospectCachedRevokedInProcess: every revocation path of the Manager makes a cached
// token inactive at the very next introspection.
func TestIntrospectCachedRevokedInProcess(t *testing.T) {
	for name, revoke := range revocations() {
		if name == "ClientCredentialsRejoin" {
			continue // revokes nothing
		}
		t.Run(name, func(t *testing.T) {
			h := newOAuthHarness(t, 0)
			c := countManager(h.m)
			g := h.codeGrant("conf", "all", ScopeOffline)
			p := h.warm(g.AccessToken)
			for _, tok := range []string{g.AccessToken, g.RefreshToken} {
				h.introspect(tok)
				h.wantIntrospectHit(c, tok)
			}
			dead := revoke(h, g, p)
			if in := h.introspect(dead); in.Active {
				t.Fatalf("a revoked token is active: %+v", in)
			}
			if name != "RefreshKillsOldAccess" && name != "RefreshReplayRevokesFamily" && name != "RevokeAccess" {
				if in := h.introspect(g.RefreshToken); in.Active {
					t.Fatalf("the refresh token of an ended session is active: %+v", in)
				}
			}
		})
	}
}

// TestIntrospectPastRefreshPoint: an introspection extends nothing, so the cache answers it
// past the session's refresh point, where an authentication must reach the store to extend
// the session.
func TestIntrospectPastRefreshPoint(t *testing.T) {
	h := newOAuthHarness(t, 0)
	h.policy.AccessTokenTTL = domain.Duration(time.Hour) // capped: as long as the session
	h.put("", domain.KindTenant, oaTenant, domain.Tenant{Name: oaTenant, Session: h.policy})
	c := countManager(h.m)
	h.m.auth.ttl = time.Hour
	g := h.codeGrant("conf", "all") // no refresh token: the session slides on use (idle_timeout 20 m)
	if g.Session.Refreshable || g.ExpiresIn != 1200 {
		t.Fatalf("grant: %+v", g)
	}
	h.clock.Advance(16*time.Minute + time.Millisecond) // past 80 % of the window
	h.introspect(g.AccessToken)
	h.wantIntrospectHit(c, g.AccessToken)
	wantExtendedPastRefresh(t, h.m, oaTenant, g.AccessToken, h.clock.Now(), 20*time.Minute)
}

// TestAuthCacheEntryBounds: an entry answers neither at its token's expiry nor at its
// session's, whichever is first; for an authentication, not at the session's refresh point
// either when using the session extends it.
func TestAuthCacheEntryBounds(t *testing.T) {
	c := newAuthCache()
	c.ttl = time.Hour
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) func() (time.Time, error) {
		return func() (time.Time, error) { return now.Add(d), nil }
	}
	sess := &domain.Session{LastUsedAt: now, ExpiresAt: now.Add(10 * time.Minute)} // refresh point: 8 m
	tok := &domain.Token{ExpiresAt: now.Add(20 * time.Minute)}
	c.put("a", tok, sess, c.generation(), now)
	for _, tc := range []struct {
		d      time.Duration
		forUse bool
		hit    bool
	}{
		{8*time.Minute - 1, true, true},
		{8 * time.Minute, true, false},
		{8 * time.Minute, false, true},
		{10*time.Minute - 1, false, true},
		{10 * time.Minute, false, false},
	} {
		if e, _ := c.get("a", tc.forUse, at(tc.d)); (e != nil) != tc.hit {
			t.Fatalf("at %v (for use %v): hit %v, want %v", tc.d, tc.forUse, e != nil, tc.hit)
		}
	}
	refreshable := *sess
	refreshable.Refreshable = true
	c.put("b", tok, &refreshable, c.generation(), now)
	if e, _ := c.get("b", true, at(9*time.Minute)); e == nil {
		t.Fatal("a refreshable session's entry refused past its refresh point")
	}
	short := &domain.Token{ExpiresAt: now.Add(time.Minute)}
	c.put("c", short, sess, c.generation(), now)
	if e, _ := c.get("c", false, at(time.Minute)); e != nil {
		t.Fatal("served at the token's exp")
	}
}

// BenchmarkIntrospect: one hot token, answered from the cache, against the same with the
// cache forgotten before every call (a read transaction each time).
func BenchmarkIntrospect(b *testing.B) {
	benchCached(b, func(h *oaHarness, token string) error {
		in, err := h.m.Introspect(h.ctx, oaTenant, token)
		if err == nil && !in.Active {
			err = errors.New("inactive")
		}
		return err
	})
}
