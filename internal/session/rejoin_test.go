package session

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/store/postgres"
	"github.com/leasehold/leasehold/internal/store/postgres/pgtest"
)

func (h *oaHarness) clientCredentials(scopes ...string) *Grant {
	h.t.Helper()
	g, err := h.m.ClientCredentials(h.ctx, oaTenant, h.client("conf"), scopes, "dev-1", netip.Addr{})
	if err != nil {
		h.t.Fatal(err)
	}
	return g
}

// seatLease is the session's seat lease (there is only one in these tests).
func (h *oaHarness) seatLease() domain.Lease {
	h.t.Helper()
	l := h.leases()
	if len(l) != 1 {
		h.t.Fatalf("%d leases, want 1: %+v", len(l), l)
	}
	return l[0]
}

// TestRejoinBeforeRefreshPoint: a client_credentials grant that rejoins a session before its
// refresh point inserts its two tokens and writes nothing else: the session row and its seat
// lease stay as they are, the tokens end by the session's deadline at the latest, and the
// session still ends at that deadline. Past the refresh point a rejoin extends the session
// and renews its lease, as before.
func TestRejoinBeforeRefreshPoint(t *testing.T) {
	h := newOAuthHarness(t, 0) // access 5 m, refresh window 20 m: the refresh point is at 16 m
	c := countManager(h.m)
	g1 := h.clientCredentials("all")
	s0, l0 := h.session(g1.Session.ID), h.seatLease()
	deadline := s0.ExpiresAt
	if !deadline.Equal(h.clock.Now().Add(20*time.Minute)) || !l0.ExpiresAt.Equal(deadline) {
		t.Fatalf("session %+v, lease %+v", s0, l0)
	}

	h.clock.Advance(10 * time.Minute)
	g2 := h.clientCredentials("all")
	if calls := c.lastCalls(); !maps.Equal(calls, map[string]int{"GetSession": 1, "InsertToken": 2}) {
		t.Fatalf("a rejoin before the refresh point called %v", calls)
	}
	if s := h.session(g1.Session.ID); g2.Session.ID != s0.ID || !sameSession(s, s0) {
		t.Fatalf("session rewritten: %+v, was %+v", s, s0)
	}
	if l := h.seatLease(); l.ID != l0.ID || !l.RenewedAt.Equal(l0.RenewedAt) || !l.ExpiresAt.Equal(l0.ExpiresAt) {
		t.Fatalf("lease renewed: %+v, was %+v", l, l0)
	}
	if g2.ExpiresIn != 300 || g2.RefreshToken == "" {
		t.Fatalf("grant: %+v", g2)
	}
	if in := h.introspect(g2.RefreshToken); !in.Active || !in.ExpiresAt.Equal(deadline) {
		t.Fatalf("the new refresh token outlives its session: %+v, session ends %v", in, deadline)
	}

	// At 15 m a full access token just fits. Past it the token would outlive the session,
	// so the rejoin extends the session (and renews its seat) rather than cut expires_in.
	h.clock.Advance(5 * time.Minute)
	g3 := h.clientCredentials("all")
	if g3.ExpiresIn != 300 || !h.session(g1.Session.ID).ExpiresAt.Equal(deadline) || c.lastCalls()["UpdateSession"] != 0 {
		t.Fatalf("grant at 15 m: %+v, calls %v", g3, c.lastCalls())
	}
	h.clock.Advance(30 * time.Second)
	g4 := h.clientCredentials("all")
	extended := h.clock.Now().Add(20 * time.Minute)
	if calls := c.lastCalls(); calls["UpdateSession"] != 1 || calls["InsertToken"] != 2 {
		t.Fatalf("a rejoin whose token would outlive the session called %v", calls)
	}
	if g4.ExpiresIn != 300 || !h.session(g1.Session.ID).ExpiresAt.Equal(extended) || !h.seatLease().ExpiresAt.Equal(extended) {
		t.Fatalf("grant at 15.5 m: %+v, session %+v", g4, h.session(g1.Session.ID))
	}

	// The refresh tokens of the rejoins before it still end at the old deadline.
	h.clock.Advance(deadline.Sub(h.clock.Now()) - time.Millisecond)
	if in := h.introspect(g2.RefreshToken); !in.Active {
		t.Fatal("refresh token inactive before its end")
	}
	h.clock.Advance(time.Millisecond)
	for _, tok := range []string{g1.RefreshToken, g2.RefreshToken, g3.RefreshToken} {
		if in := h.introspect(tok); in.Active {
			t.Fatal("a refresh token outlived the deadline it was issued with")
		}
	}
	if in := h.introspect(g4.RefreshToken); !in.Active {
		t.Fatal("the extended session's refresh token died with the old deadline")
	}

	// Nothing uses it any more: the session ends at its deadline, and its seat.
	h.clock.Advance(extended.Sub(h.clock.Now()))
	for _, tok := range []string{g4.AccessToken, g4.RefreshToken} {
		if in := h.introspect(tok); in.Active {
			t.Fatal("token active at the session's deadline")
		}
	}
	if _, err := h.m.Refresh(h.ctx, oaTenant, g4.RefreshToken, "conf", netip.Addr{}); !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("refresh after the deadline: %v", err)
	}
	if n, err := h.m.Sweep(h.ctx, 100); err != nil || n != 1 || len(h.leases()) != 0 {
		t.Fatalf("sweep: %d %v, %d leases", n, err, len(h.leases()))
	}

	// A new session; past its refresh point a rejoin extends it and renews the lease.
	g5 := h.clientCredentials("all")
	l5 := h.seatLease()
	h.clock.Advance(16*time.Minute + time.Millisecond)
	g6 := h.clientCredentials("all")
	calls := c.lastCalls()
	if calls["UpdateSession"] != 1 || calls["InsertToken"] != 2 {
		t.Fatalf("a rejoin past the refresh point called %v", calls)
	}
	want := h.clock.Now().Add(20 * time.Minute)
	s := h.session(g5.Session.ID)
	if g6.Session.ID != g5.Session.ID || !s.ExpiresAt.Equal(want) || !s.LastUsedAt.Equal(h.clock.Now()) {
		t.Fatalf("session not extended: %+v, want deadline %v", s, want)
	}
	if l := h.seatLease(); l.Root != l5.Root || !l.RenewedAt.Equal(h.clock.Now()) || !l.ExpiresAt.Equal(want) {
		t.Fatalf("lease not renewed: %+v", l)
	}
	if in := h.introspect(g6.RefreshToken); !in.ExpiresAt.Equal(want) {
		t.Fatalf("refresh token: %+v", in)
	}
}

// TestRejoinWritesWhatChanges: before the refresh point a rejoin still writes the session
// when it changes it: other scopes, a free-scope session that now takes a seat, or a client
// whose refresh setting changed (the deadline policy).
func TestRejoinWritesWhatChanges(t *testing.T) {
	h := newOAuthHarness(t, 0)
	c := countManager(h.m)
	g := h.clientCredentials("view") // a free scope: no seat
	if g.Session.Licensed || len(h.leases()) != 0 {
		t.Fatalf("free-scope session: %+v", g.Session)
	}
	h.clock.Advance(time.Minute)
	h.clientCredentials("view")
	if calls := c.lastCalls(); calls["UpdateSession"] != 0 {
		t.Fatalf("same scopes: %v", calls)
	}

	h.clock.Advance(time.Minute)
	g = h.clientCredentials("all") // licensed now: takes its seat
	s := h.session(g.Session.ID)
	if !s.Licensed || s.LeaseRoot == "" || !slices.Equal(s.Scopes, []string{"all"}) || len(h.leases()) != 1 {
		t.Fatalf("session after a licensed rejoin: %+v, %d leases", s, len(h.leases()))
	}
	if in := h.introspect(g.AccessToken); !in.Seat {
		t.Fatalf("introspection: %+v", in)
	}

	h.clock.Advance(time.Minute)
	g = h.clientCredentials("all", ScopeOffline)
	if s := h.session(g.Session.ID); !slices.Equal(s.Scopes, []string{"all", ScopeOffline}) || !s.LastUsedAt.Equal(h.clock.Now()) {
		t.Fatalf("scopes not rewritten: %+v", s)
	}

	h.clock.Advance(time.Minute)
	conf := *h.client("conf")
	conf.RefreshWithClientCredentials = false
	h.put(oaTenant, domain.KindClient, "conf", conf)
	g, err := h.m.ClientCredentials(h.ctx, oaTenant, &conf, []string{"all", ScopeOffline}, "", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if calls := c.lastCalls(); calls["UpdateSession"] != 1 || g.RefreshToken != "" {
		t.Fatalf("refresh setting changed: %v, %+v", calls, g)
	}
}

// TestRejoinKeepsCache: a rejoin that only adds tokens leaves the token cache as it was (its
// entries stay true), and the cached answers match the store.
func TestRejoinKeepsCache(t *testing.T) {
	h := newOAuthHarness(t, 0)
	c := countManager(h.m)
	g1 := h.clientCredentials("all")
	h.warm(g1.AccessToken)
	h.introspect(g1.RefreshToken)
	g2 := h.clientCredentials("all")
	p := h.wantHit(g1.AccessToken)
	h.wantIntrospectHit(c, g1.RefreshToken)
	if s := h.session(g1.Session.ID); !sameSession(p.Session, s) || g2.Session.ID != s.ID {
		t.Fatalf("cached session %+v, stored %+v", p.Session, s)
	}
	if !h.live(g2.AccessToken) {
		t.Fatal("the rejoin's token refused")
	}
}

// TestClientCredentialsConcurrent: concurrent first grants of one client, and the rejoins
// racing with them, end in one session and one seat, and every token they issued works; on
// SQLite and, with LEASEHOLD_TEST_POSTGRES, on PostgreSQL (READ COMMITTED, real concurrency).
func TestClientCredentialsConcurrent(t *testing.T) {
	for name, open := range harnessStores {
		t.Run(name, func(t *testing.T) {
			h := open(t)
			for round := range 2 { // first grants, then rejoins (before the refresh point)
				grants := concurrentGrants(t, 16, func(int) (*Grant, error) {
					return h.m.ClientCredentials(h.ctx, oaTenant, h.client("conf"), []string{"all"}, "", netip.Addr{})
				})
				if len(grants) != 16 {
					t.Fatalf("round %d: %d grants", round, len(grants))
				}
				for _, g := range grants {
					if g.Session.ID != grants[0].Session.ID || !h.live(g.AccessToken) {
						t.Fatalf("round %d: grant %+v", round, g)
					}
				}
				h.seatLease()
				h.clock.Advance(time.Minute)
			}
		})
	}
}

// concurrentGrants runs grant(0) … grant(n-1) at once and returns the grants they made (a
// nil grant with no error is an action that grants nothing); an error fails the test.
func concurrentGrants(t *testing.T, n int, grant func(i int) (*Grant, error)) []*Grant {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var grants []*Grant
	for i := range n {
		wg.Go(func() {
			g, err := grant(i)
			if err != nil {
				t.Error(err)
				return
			}
			if g != nil {
				mu.Lock()
				grants = append(grants, g)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return grants
}

// harnessStores opens an OAuth harness on SQLite and, with LEASEHOLD_TEST_POSTGRES, on a
// fresh PostgreSQL database (READ COMMITTED, real concurrency).
var harnessStores = map[string]func(t *testing.T) *oaHarness{
	"sqlite": func(t *testing.T) *oaHarness { return newOAuthHarness(t, 0) },
	"postgres": func(t *testing.T) *oaHarness {
		dsn := newPostgres(t)
		return newOAuthHarnessOn(t, 0, func(now func() time.Time) (store.Store, error) {
			return postgres.Open(context.Background(), dsn, postgres.WithClock(now))
		})
	},
}

// newPostgres creates a fresh database (pgtest: the test is skipped without
// LEASEHOLD_TEST_POSTGRES) and returns its connection string.
func newPostgres(t *testing.T) string {
	t.Helper()
	return pgtest.FreshDatabase(t, "leasehold_session_")
}

func sameSession(a, b *domain.Session) bool {
	return a.ID == b.ID && slices.Equal(a.Scopes, b.Scopes) && a.Licensed == b.Licensed && a.LeaseRoot == b.LeaseRoot &&
		a.LeaseLicense == b.LeaseLicense && a.LastUsedAt.Equal(b.LastUsedAt) && a.ExpiresAt.Equal(b.ExpiresAt) &&
		a.Refreshable == b.Refreshable && a.Device == b.Device && a.HardExpiry.Equal(b.HardExpiry)
}

// BenchmarkClientCredentialsRejoin: a client asking again and again for tokens of its live
// session (before its refresh point, which is at 16 m here).
func BenchmarkClientCredentialsRejoin(b *testing.B) {
	h := newOAuthHarness(b, 0)
	conf := h.client("conf")
	if _, err := h.m.ClientCredentials(h.ctx, oaTenant, conf, []string{"all"}, "dev-1", netip.Addr{}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.m.ClientCredentials(h.ctx, oaTenant, conf, []string{"all"}, "dev-1", netip.Addr{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEndByLease: ending a session's seat lease (the admin API) ends the sessions holding
// it, and the seat is free at once; any id of the lease's chain names it. An id of no
// session lease is left to the engine.
func TestEndByLease(t *testing.T) {
	h := newOAuthHarness(t, 0)
	g := h.clientCredentials("all")
	l := h.seatLease()
	if ok, err := h.m.EndByLease(h.ctx, oaTenant, "no-such-lease"); ok || err != nil {
		t.Fatalf("EndByLease of an unknown id = %v, %v", ok, err)
	}
	if !h.live(g.AccessToken) {
		t.Fatal("session ended by an unknown lease id")
	}
	if ok, err := h.m.EndByLease(h.ctx, oaTenant, l.ID); !ok || err != nil {
		t.Fatalf("EndByLease = %v, %v", ok, err)
	}
	if h.live(g.AccessToken) {
		t.Fatal("the session outlived its seat lease")
	}
	if n := len(h.leases()); n != 0 {
		t.Fatalf("%d leases left, want the seat freed", n)
	}
	if ok, _ := h.m.EndByLease(h.ctx, oaTenant, l.ID); ok {
		t.Fatal("EndByLease of an ended lease reported a session lease")
	}
}

// TestClientCredentialsRacingEnd: a client's session ended while grants rejoin it. A grant
// that read the session before the end committed must not leave tokens behind for the
// deleted session: the client's session id is deterministic, so the next grant would
// bring such tokens back to life although the end (a logoff, an admin's DELETE) revoked
// every token of the session. After each race the session is ended once more and opened
// anew: no token issued before that may work.
func TestClientCredentialsRacingEnd(t *testing.T) {
	for name, open := range harnessStores {
		t.Run(name, func(t *testing.T) {
			h := open(t)
			conf := h.client("conf")
			for round := range 15 {
				first, err := h.m.ClientCredentials(h.ctx, oaTenant, conf, []string{"all"}, "", netip.Addr{})
				if err != nil {
					t.Fatal(err)
				}
				// The ninth goroutine ends the session while the others grant.
				grants := concurrentGrants(t, 9, func(i int) (*Grant, error) {
					if i == 4 {
						_, err := h.m.End(h.ctx, oaTenant, first.Session.ID, false)
						return nil, err
					}
					return h.m.ClientCredentials(h.ctx, oaTenant, conf, []string{"all"}, "", netip.Addr{})
				})
				tokens := []string{first.AccessToken}
				for _, g := range grants {
					tokens = append(tokens, g.AccessToken)
				}
				if _, err := h.m.End(h.ctx, oaTenant, first.Session.ID, false); err != nil {
					t.Fatal(err)
				}
				if _, err := h.m.ClientCredentials(h.ctx, oaTenant, conf, []string{"all"}, "", netip.Addr{}); err != nil {
					t.Fatal(err)
				}
				for _, tok := range tokens {
					if h.live(tok) {
						t.Fatalf("round %d: a token issued before the session ended works in the next session", round)
					}
				}
				if _, err := h.m.End(h.ctx, oaTenant, first.Session.ID, false); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
