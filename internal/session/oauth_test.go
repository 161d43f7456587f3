package session

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/store/sqlite"
)

const oaTenant = "acme"

type oaClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *oaClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *oaClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type oaHarness struct {
	t      testing.TB
	ctx    context.Context
	st     store.Store
	cat    *catalog.Cache
	m      *Manager
	clock  *oaClock
	policy domain.SessionPolicy
}

// newOAuthHarness: tenant acme with session item App (refresh_token_ttl 20 m, access 5 m),
// a 5-seat license anchored on the user, user alice, a confidential client "conf" (all,
// offline_access; refresh with client credentials) and a public client "pub".
func newOAuthHarness(t testing.TB, grace time.Duration) *oaHarness {
	t.Helper()
	return newOAuthHarnessOn(t, grace, func(now func() time.Time) (store.Store, error) {
		return sqlite.Open(filepath.Join(t.TempDir(), "leasehold.db"), sqlite.WithClock(now))
	})
}

// newOAuthHarnessOn is newOAuthHarness on the store open returns (its clock is now).
func newOAuthHarnessOn(t testing.TB, grace time.Duration, open func(now func() time.Time) (store.Store, error)) *oaHarness {
	t.Helper()
	c := &oaClock{now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	st, err := open(c.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat := catalog.New(st)
	eng := engine.New(st, cat, engine.Options{})
	h := &oaHarness{t: t, ctx: context.Background(), st: st, cat: cat, m: NewManager(st, cat, eng), clock: c}
	h.policy = domain.DefaultSessionPolicy()
	h.policy.Item = "App"
	h.policy.AccessTokenTTL = domain.Duration(5 * time.Minute)
	h.policy.RefreshTokenTTL = domain.Duration(20 * time.Minute)
	h.policy.RefreshGrace = domain.Duration(grace)
	h.put("", domain.KindTenant, oaTenant, domain.Tenant{Name: oaTenant, Session: h.policy})
	h.put(oaTenant, domain.KindOrganization, "org-1", domain.Organization{ID: "org-1"})
	h.put(oaTenant, domain.KindUser, "alice", domain.User{Username: "alice", PasswordHash: "x", Organization: "org-1", Enabled: true})
	h.put(oaTenant, domain.KindClient, "conf", domain.Client{ClientID: "conf", ClientSecretHash: "x", User: "alice", Enabled: true,
		RedirectURIs: []string{"https://app.example/cb"}, GrantTypes: []string{"authorization_code", "client_credentials", "refresh_token"},
		Scopes: []string{"all", "view", ScopeOffline}, RefreshWithClientCredentials: true})
	h.put(oaTenant, domain.KindClient, "pub", domain.Client{ClientID: "pub", Enabled: true,
		RedirectURIs: []string{"https://app.example/cb"}, GrantTypes: []string{"authorization_code", "refresh_token"},
		Scopes: []string{"all", ScopeOffline}})
	h.put(oaTenant, domain.KindProduct, "App", domain.Product{Name: "App"})
	m := domain.DefaultLicenseModel()
	m.Name, m.Anchors, m.Linger = "seat", []string{"user"}, domain.Duration(2*time.Minute)
	h.put(oaTenant, domain.KindModel, "seat", m)
	h.put(oaTenant, domain.KindLicense, "L1", domain.License{ID: "L1", Product: "App", Model: "seat", Seats: 5, Owner: domain.Owner{Organization: "org-1"}, Active: true})
	return h
}

func (h *oaHarness) put(ten string, kind domain.Kind, id string, v any) {
	h.t.Helper()
	spec, err := json.Marshal(v)
	if err != nil {
		h.t.Fatal(err)
	}
	err = h.st.Update(h.ctx, func(tx store.Tx) error {
		return tx.PutObject(h.ctx, store.Object{Tenant: ten, Kind: kind, ID: id, Spec: spec})
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.cat.Invalidate(ten)
	if ten == "" {
		h.cat.Invalidate(id)
	}
}

func (h *oaHarness) client(id string) *domain.Client {
	h.t.Helper()
	snap, err := h.cat.Get(h.ctx, oaTenant)
	if err != nil {
		h.t.Fatal(err)
	}
	return snap.Clients[id]
}

// codeGrant runs an authorization code flow for alice with PKCE.
func (h *oaHarness) codeGrant(client string, scopes ...string) *Grant {
	h.t.Helper()
	verifier := "v-" + NewID() + NewID()
	code, err := h.m.IssueCode(h.ctx, oaTenant, CodeRequest{ClientID: client, RedirectURI: "https://app.example/cb",
		RedirectGiven: true, Challenge: S256(verifier), Scopes: scopes, User: "alice", Device: "dev-1"})
	if err != nil {
		h.t.Fatal(err)
	}
	g, err := h.m.ExchangeCode(h.ctx, oaTenant, h.client(client), CodeExchange{Code: code, RedirectURI: "https://app.example/cb", Verifier: verifier})
	if err != nil {
		h.t.Fatal(err)
	}
	return g
}

func (h *oaHarness) live(access string) bool {
	h.t.Helper()
	_, err := h.m.Authenticate(h.ctx, oaTenant, access, netip.Addr{})
	if err != nil && !errors.Is(err, ErrInvalidToken) {
		h.t.Fatal(err)
	}
	return err == nil
}

func (h *oaHarness) session(id string) *domain.Session {
	h.t.Helper()
	var s *domain.Session
	err := h.st.View(h.ctx, func(tx store.Tx) error {
		var err error
		s, err = tx.GetSession(h.ctx, oaTenant, id)
		if errors.Is(err, domain.ErrNotFound) {
			s, err = nil, nil
		}
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

func (h *oaHarness) leases() []domain.Lease {
	h.t.Helper()
	var list []domain.Lease
	err := h.st.View(h.ctx, func(tx store.Tx) error {
		var err error
		list, err = tx.ListLeases(h.ctx, oaTenant, store.LeaseFilter{}, tx.Now())
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return list
}

func wantInvalidGrant(t *testing.T, err error, what string) {
	t.Helper()
	if !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("%s: want invalid_grant, got %v", what, err)
	}
}

func TestCodeExpiresAndIsBound(t *testing.T) {
	h := newOAuthHarness(t, 0)
	verifier := "v-" + NewID() + NewID()
	issue := func() string {
		code, err := h.m.IssueCode(h.ctx, oaTenant, CodeRequest{ClientID: "pub", RedirectURI: "https://app.example/cb",
			Challenge: S256(verifier), Scopes: []string{"all"}, User: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	code := issue()
	h.clock.Advance(CodeTTL)
	_, err := h.m.ExchangeCode(h.ctx, oaTenant, h.client("pub"), CodeExchange{Code: code, Verifier: verifier})
	wantInvalidGrant(t, err, "expired code")

	// redirect_uri was not given in the authorization request: it may be omitted, but a
	// given one must still match.
	code = issue()
	_, err = h.m.ExchangeCode(h.ctx, oaTenant, h.client("pub"), CodeExchange{Code: code, RedirectURI: "https://other.example/", Verifier: verifier})
	wantInvalidGrant(t, err, "other redirect_uri")
	_, err = h.m.ExchangeCode(h.ctx, oaTenant, h.client("conf"), CodeExchange{Code: code, Verifier: verifier})
	wantInvalidGrant(t, err, "another client")
	_, err = h.m.ExchangeCode(h.ctx, "other", h.client("pub"), CodeExchange{Code: code, Verifier: verifier})
	if err == nil {
		t.Fatal("redeemed in another tenant")
	}
	g, err := h.m.ExchangeCode(h.ctx, oaTenant, h.client("pub"), CodeExchange{Code: code, Verifier: verifier})
	if err != nil {
		t.Fatal(err)
	}
	if g.RefreshToken != "" || g.Session.Device == "" || !g.Session.Licensed || g.Session.LeaseRoot == "" {
		t.Fatalf("grant: %+v session %+v", g, g.Session)
	}
	// The browser's device becomes the seat's hw: none given, one is made.
	if l := h.leases(); len(l) != 1 || l[0].HW != g.Session.Device {
		t.Fatalf("leases: %+v", l)
	}
}

// TestCodeConcurrentExchange: of concurrent exchanges of one code exactly one succeeds, and
// the losers' attempts (seen as reuse) revoke what it issued.
func TestCodeConcurrentExchange(t *testing.T) {
	h := newOAuthHarness(t, 0)
	verifier := "v-" + NewID() + NewID()
	code, err := h.m.IssueCode(h.ctx, oaTenant, CodeRequest{ClientID: "pub", RedirectURI: "https://app.example/cb",
		Challenge: S256(verifier), Scopes: []string{"all"}, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	grants := make(chan *Grant, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, err := h.m.ExchangeCode(h.ctx, oaTenant, h.client("pub"), CodeExchange{Code: code, Verifier: verifier})
			if err == nil {
				grants <- g
			} else if !errors.Is(err, ErrInvalidGrant) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	close(grants)
	n := 0
	for g := range grants {
		n++
		if h.live(g.AccessToken) {
			t.Fatal("a reused code's tokens survived")
		}
	}
	if n != 1 {
		t.Fatalf("%d exchanges succeeded", n)
	}
	if l := h.leases(); len(l) != 0 {
		t.Fatalf("the revoked session left %d leases", len(l))
	}
}

// TestRefreshSlidesSessionAndSeat: each refresh moves the session's deadline and its seat
// lease to now + refresh_token_ttl; without one the session ends.
func TestRefreshSlidesSessionAndSeat(t *testing.T) {
	h := newOAuthHarness(t, 0)
	g := h.codeGrant("conf", "all", ScopeOffline)
	if g.RefreshToken == "" || !g.Session.Refreshable {
		t.Fatalf("grant: %+v", g)
	}
	refresh := g.RefreshToken
	for range 3 {
		h.clock.Advance(15 * time.Minute)
		ng, err := h.m.Refresh(h.ctx, oaTenant, refresh, "conf", netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		if ng.Session.ID != g.Session.ID || ng.ExpiresIn != 300 {
			t.Fatalf("refresh: %+v", ng)
		}
		want := h.clock.Now().Add(20 * time.Minute)
		if s := h.session(g.Session.ID); s == nil || !s.ExpiresAt.Equal(want) {
			t.Fatalf("session deadline: %+v, want %v", s, want)
		}
		if l := h.leases(); len(l) != 1 || !l[0].ExpiresAt.Equal(want) {
			t.Fatalf("seat lease: %+v, want exp %v", l, want)
		}
		refresh = ng.RefreshToken
	}
	h.clock.Advance(20 * time.Minute)
	_, err := h.m.Refresh(h.ctx, oaTenant, refresh, "conf", netip.Addr{})
	wantInvalidGrant(t, err, "refresh after the window")
	// Another client may not use it, nor the session API.
	g = h.codeGrant("conf", "all", ScopeOffline)
	_, err = h.m.Refresh(h.ctx, oaTenant, g.RefreshToken, "pub", netip.Addr{})
	wantInvalidGrant(t, err, "another client")
	_, err = h.m.Refresh(h.ctx, oaTenant, g.RefreshToken, "", netip.Addr{})
	wantInvalidGrant(t, err, "session API")
	_, err = h.m.Refresh(h.ctx, oaTenant, g.AccessToken, "conf", netip.Addr{})
	wantInvalidGrant(t, err, "an access token")
	// Narrowing the access token's scope; the refresh token keeps the grant.
	ng, err := h.m.RefreshScopes(h.ctx, oaTenant, g.RefreshToken, "conf", []string{"all"}, netip.Addr{})
	if err != nil || len(ng.Scopes) != 1 {
		t.Fatalf("narrowed: %+v %v", ng, err)
	}
	if _, err := h.m.RefreshScopes(h.ctx, oaTenant, ng.RefreshToken, "conf", []string{"view"}, netip.Addr{}); !errors.Is(err, ErrInvalidScope) {
		t.Fatalf("widened: %v", err)
	}
	in, err := h.m.Introspect(h.ctx, oaTenant, ng.RefreshToken)
	if err != nil || !in.Active || len(in.Scopes) != 2 {
		t.Fatalf("refresh token after narrowing: %+v %v", in, err)
	}
}

// TestRefreshClientCredentialsFamilies: the families of a client_credentials session are
// revoked one by one; the session ends with its last.
func TestRefreshClientCredentialsFamilies(t *testing.T) {
	h := newOAuthHarness(t, 0)
	conf := h.client("conf")
	g1, err := h.m.ClientCredentials(h.ctx, oaTenant, conf, []string{"all"}, "", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	g2, err := h.m.ClientCredentials(h.ctx, oaTenant, conf, []string{"all"}, "", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if g1.Session.ID != g2.Session.ID || g1.RefreshToken == "" {
		t.Fatal("client credentials did not rejoin")
	}
	// Rotation kills the family's access token (issued without a record of it).
	r1, err := h.m.Refresh(h.ctx, oaTenant, g1.RefreshToken, "conf", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if h.live(g1.AccessToken) || !h.live(r1.AccessToken) || !h.live(g2.AccessToken) {
		t.Fatal("rotation killed the wrong tokens")
	}
	// Replaying family 1's old token revokes family 1 only.
	_, err = h.m.Refresh(h.ctx, oaTenant, g1.RefreshToken, "conf", netip.Addr{})
	wantInvalidGrant(t, err, "replay")
	if h.live(r1.AccessToken) || !h.live(g2.AccessToken) || h.session(g1.Session.ID) == nil {
		t.Fatal("family 1 revocation")
	}
	// Family 2 rotated, then replayed: the session's last family dies, and the session.
	if _, err := h.m.Refresh(h.ctx, oaTenant, g2.RefreshToken, "conf", netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	_, err = h.m.Refresh(h.ctx, oaTenant, g2.RefreshToken, "conf", netip.Addr{})
	wantInvalidGrant(t, err, "replay 2")
	if h.session(g1.Session.ID) != nil {
		t.Fatal("session survived its last family")
	}
	if l := h.leases(); len(l) != 0 {
		t.Fatalf("%d leases left", len(l))
	}
}

// TestRefreshConcurrentWithinGrace: racing retries of one refresh token within the grace all
// get a pair, and exactly one pair survives.
func TestRefreshConcurrentWithinGrace(t *testing.T) {
	h := newOAuthHarness(t, 10*time.Second)
	g := h.codeGrant("conf", "all", ScopeOffline)
	grants := concurrentGrants(t, 8, func(int) (*Grant, error) {
		return h.m.Refresh(h.ctx, oaTenant, g.RefreshToken, "conf", netip.Addr{})
	})
	live := 0
	for _, ng := range grants {
		if h.live(ng.AccessToken) {
			live++
		}
	}
	if len(grants) != 8 || live != 1 {
		t.Fatalf("%d grants, %d live access tokens", len(grants), live)
	}
	var tokens []domain.Token
	if err := h.st.View(h.ctx, func(tx store.Tx) error {
		var err error
		tokens, err = tx.ListTokens(h.ctx, oaTenant, domain.TokenRefresh, "alice")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	plain := 0
	for _, tk := range tokens {
		if !isMarker(&tk) {
			plain++
		}
	}
	if plain != 1 {
		t.Fatalf("%d live refresh tokens in the family", plain)
	}
}

// TestRevokeAndIntrospect covers the manager side of RFC 7009 and RFC 7662.
func TestRevokeAndIntrospect(t *testing.T) {
	h := newOAuthHarness(t, 0)
	g := h.codeGrant("conf", "all", ScopeOffline)
	in, err := h.m.Introspect(h.ctx, oaTenant, g.AccessToken)
	if err != nil || !in.Active || !in.Seat || in.User != "alice" || in.ClientID != "conf" || in.Kind != domain.TokenAccess {
		t.Fatalf("introspect: %+v %v", in, err)
	}
	if in, _ := h.m.Introspect(h.ctx, "other", g.AccessToken); in.Active {
		t.Fatal("introspected in another tenant")
	}
	if err := h.m.Revoke(h.ctx, oaTenant, g.RefreshToken, "pub"); !errors.Is(err, ErrForeignToken) {
		t.Fatalf("foreign revoke: %v", err)
	}
	if err := h.m.Revoke(h.ctx, oaTenant, "unknown", "conf"); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Revoke(h.ctx, oaTenant, g.AccessToken, "conf"); err != nil {
		t.Fatal(err)
	}
	if h.live(g.AccessToken) || h.session(g.Session.ID) == nil {
		t.Fatal("access token revocation")
	}
	ended := ""
	h.m.SetEndHook(func(_, id string) { ended = id })
	if err := h.m.Revoke(h.ctx, oaTenant, g.RefreshToken, "conf"); err != nil {
		t.Fatal(err)
	}
	if h.session(g.Session.ID) != nil || ended != g.Session.ID {
		t.Fatal("refresh token revocation did not end the session")
	}
	if in, _ := h.m.Introspect(h.ctx, oaTenant, g.RefreshToken); in.Active {
		t.Fatal("revoked refresh token is active")
	}
	// Revoking the last credential of a session (no refresh token) ends it too.
	g = h.codeGrant("conf", "all")
	if err := h.m.Revoke(h.ctx, oaTenant, g.AccessToken, "conf"); err != nil {
		t.Fatal(err)
	}
	if h.session(g.Session.ID) != nil || len(h.leases()) != 0 {
		t.Fatal("a session without credentials survived")
	}
}

// TestBrowserLoginTakesNoSeat: the authorization endpoint's cookie session holds no seat
// and authenticates as a cookie.
func TestBrowserLoginTakesNoSeat(t *testing.T) {
	h := newOAuthHarness(t, 0)
	snap, _ := h.cat.Get(h.ctx, oaTenant)
	lg, err := h.m.BrowserLogin(h.ctx, oaTenant, snap.Users["alice"], "")
	if err != nil || lg.Cookie == "" || lg.Device == "" || !lg.NewDevice || lg.Grant != nil {
		t.Fatalf("%+v %v", lg, err)
	}
	cookie, device := lg.Cookie, lg.Device
	if l := h.leases(); len(l) != 0 {
		t.Fatalf("%d leases", len(l))
	}
	p, err := h.m.AuthenticateCookie(h.ctx, oaTenant, cookie, netip.Addr{})
	if err != nil || p.Session.User != "alice" || p.Session.Licensed || p.Session.Device != device {
		t.Fatalf("cookie: %+v %v", p, err)
	}
}
