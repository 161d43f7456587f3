package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/secret"
	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/store/sqlite"
)

const loginTenant = "acme"

type loginClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *loginClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *loginClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type loginHarness struct {
	t     *testing.T
	ctx   context.Context
	st    store.Store
	cat   *catalog.Cache
	m     *Manager
	clock *loginClock
	users map[string]*domain.User
}

// newLoginHarness: tenant acme with session item App (idle 10 m), a model with anchors
// [user, hw] and a 2 m linger, one license of 1 seat, users alice/bob (password "<name>-pw")
// and a disabled dave.
func newLoginHarness(t *testing.T) *loginHarness {
	t.Helper()
	c := &loginClock{now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "leasehold.db"), sqlite.WithClock(c.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat := catalog.New(st)
	eng := engine.New(st, cat, engine.Options{})
	h := &loginHarness{t: t, ctx: context.Background(), st: st, cat: cat, m: NewManager(st, cat, eng), clock: c, users: map[string]*domain.User{}}
	policy := domain.DefaultSessionPolicy()
	policy.Item = "App"
	policy.IdleTimeout = domain.Duration(10 * time.Minute)
	policy.MaxSessionsPerUser = 3
	h.put("", domain.KindTenant, loginTenant, domain.Tenant{Name: loginTenant, Session: policy})
	h.put(loginTenant, domain.KindOrganization, "org-1", domain.Organization{ID: "org-1"})
	for _, name := range []string{"alice", "bob", "dave"} {
		hash, err := secret.Hash(name + "-pw")
		if err != nil {
			t.Fatal(err)
		}
		u := domain.User{Username: name, PasswordHash: hash, Organization: "org-1", Enabled: name != "dave"}
		h.put(loginTenant, domain.KindUser, name, u)
		h.users[name] = &u
	}
	h.put(loginTenant, domain.KindProduct, "App", domain.Product{Name: "App"})
	m := domain.DefaultLicenseModel()
	m.Name, m.Anchors, m.Linger = "seat", []string{"user", "hw"}, domain.Duration(2*time.Minute)
	h.put(loginTenant, domain.KindModel, "seat", m)
	h.put(loginTenant, domain.KindLicense, "L1", domain.License{ID: "L1", Product: "App", Model: "seat", Seats: 1, Owner: domain.Owner{Organization: "org-1"}, Active: true})
	return h
}

func (h *loginHarness) put(ten string, kind domain.Kind, id string, v any) {
	h.t.Helper()
	spec, err := json.Marshal(v)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.st.Update(h.ctx, func(tx store.Tx) error {
		return tx.PutObject(h.ctx, store.Object{Tenant: ten, Kind: kind, ID: id, Spec: spec})
	}); err != nil {
		h.t.Fatal(err)
	}
	if ten == "" {
		h.cat.Invalidate(id)
	} else {
		h.cat.Invalidate(ten)
	}
}

func (h *loginHarness) login(user, device string) (*LoginGrant, error) {
	return h.m.Login(h.ctx, loginTenant, h.users[user], LoginOptions{Device: device})
}

func (h *loginHarness) mustLogin(user, device string) *LoginGrant {
	h.t.Helper()
	g, err := h.login(user, device)
	if err != nil {
		h.t.Fatalf("login %s on %s: %v", user, device, err)
	}
	return g
}

func (h *loginHarness) liveSeats() int {
	h.t.Helper()
	var n int
	if err := h.st.View(h.ctx, func(tx store.Tx) error {
		var err error
		n, err = tx.CountLiveSeats(h.ctx, loginTenant, "L1", tx.Now())
		return err
	}); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func wantSeatError(t *testing.T, err error, what string) {
	t.Helper()
	var se *SeatError
	if !errors.As(err, &se) {
		t.Fatalf("%s: got %v, want a SeatError", what, err)
	}
}

func TestCheckPassword(t *testing.T) {
	h := newLoginHarness(t)
	addr := netip.MustParseAddr("192.0.2.1")
	if u, err := h.m.CheckPassword(h.ctx, loginTenant, "alice", "alice-pw", addr); err != nil || u.Username != "alice" {
		t.Fatalf("good password: %v %v", u, err)
	}
	for _, c := range []struct{ user, pw string }{{"alice", "nope"}, {"nobody", "x"}, {"dave", "dave-pw"}, {"", ""}} {
		if _, err := h.m.CheckPassword(h.ctx, loginTenant, c.user, c.pw, addr); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("%s/%s: %v", c.user, c.pw, err)
		}
	}
}

func TestCheckPasswordThrottles(t *testing.T) {
	h := newLoginHarness(t)
	addr := netip.MustParseAddr("2001:db8::1")
	for range throttleUserFree {
		if _, err := h.m.CheckPassword(h.ctx, loginTenant, "bob", "wrong", addr); !errors.Is(err, ErrBadCredentials) {
			t.Fatal(err)
		}
	}
	var th *ThrottledError
	if _, err := h.m.CheckPassword(h.ctx, loginTenant, "bob", "bob-pw", addr); !errors.As(err, &th) || th.RetryAfterSeconds() < 1 {
		t.Fatalf("after %d failures: %v", throttleUserFree, err)
	}
	// Another user from the same /64 is not locked by bob's failures alone.
	if _, err := h.m.CheckPassword(h.ctx, loginTenant, "alice", "alice-pw", netip.MustParseAddr("2001:db8::2")); err != nil {
		t.Fatal(err)
	}
	// Nor is bob himself from an address that has not failed: guesses from one place
	// cannot keep a user out everywhere (lockout as a weapon).
	if _, err := h.m.CheckPassword(h.ctx, loginTenant, "bob", "bob-pw", netip.MustParseAddr("192.0.2.9")); err != nil {
		t.Fatalf("bob from another address: %v", err)
	}
}

// TestCheckPasswordThrottlesAddress: an address that fails for many users waits, whatever
// user it names next; other addresses do not.
func TestCheckPasswordThrottlesAddress(t *testing.T) {
	h := newLoginHarness(t)
	addr := netip.MustParseAddr("198.51.100.7")
	for i := range throttleAddrFree {
		if _, err := h.m.CheckPassword(h.ctx, loginTenant, fmt.Sprintf("guess-%d", i), "x", addr); !errors.Is(err, ErrBadCredentials) {
			t.Fatal(err)
		}
	}
	var th *ThrottledError
	if _, err := h.m.CheckPassword(h.ctx, loginTenant, "alice", "alice-pw", addr); !errors.As(err, &th) {
		t.Fatalf("after %d failures from one address: %v", throttleAddrFree, err)
	}
	if _, err := h.m.CheckPassword(h.ctx, loginTenant, "alice", "alice-pw", netip.MustParseAddr("198.51.100.8")); err != nil {
		t.Fatal(err)
	}
}

func TestLoginSessionAndCookie(t *testing.T) {
	h := newLoginHarness(t)
	g := h.mustLogin("alice", "")
	if !g.NewDevice || g.Device == "" || g.Cookie == "" || g.RefreshToken != "" || g.ExpiresIn <= 0 {
		t.Fatalf("grant: %+v", g)
	}
	p, err := h.m.AuthenticateCookie(h.ctx, "", g.Cookie, netip.Addr{})
	if err != nil || p.Session.ID != g.Session.ID || p.Session.Kind != domain.SessionPassword || !p.Session.Licensed {
		t.Fatalf("cookie: %+v %v", p, err)
	}
	// The cookie is not an access token, nor the access token a cookie.
	if _, err := h.m.Authenticate(h.ctx, "", g.Cookie, netip.Addr{}); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("cookie as bearer: %v", err)
	}
	if _, err := h.m.AuthenticateCookie(h.ctx, "", g.AccessToken, netip.Addr{}); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("bearer as cookie: %v", err)
	}
	if _, err := h.m.AuthenticateCookie(h.ctx, "other", g.Cookie, netip.Addr{}); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("cookie of another tenant: %v", err)
	}
	// The same device shares the seat; another device finds none (1 seat, [user, hw]).
	h.mustLogin("alice", g.Device)
	_, err = h.login("alice", "other-device")
	wantSeatError(t, err, "second device")
	// max_sessions_per_user (3) counts every live session.
	h.mustLogin("alice", g.Device)
	var le *SessionLimitError
	if _, err := h.login("alice", g.Device); !errors.As(err, &le) {
		t.Fatalf("fourth session: %v", err)
	}
	var ended []string
	h.m.SetEndHook(func(tenant, id string) { ended = append(ended, id) })
	if n, err := h.m.EndAll(h.ctx, loginTenant, "alice"); err != nil || n != 3 || len(ended) != 3 {
		t.Fatalf("EndAll: %d %v, hook saw %v", n, err, ended)
	}
	if _, err := h.m.AuthenticateCookie(h.ctx, "", g.Cookie, netip.Addr{}); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("cookie after the end: %v", err)
	}
}

func TestLoginTokenReclaimsLingeringSeat(t *testing.T) {
	h := newLoginHarness(t)
	g := h.mustLogin("alice", "dev-1")
	p, err := h.m.AuthenticateCookie(h.ctx, "", g.Cookie, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	multi, _, err := h.m.CreateLoginToken(h.ctx, p, LoginTokenRequest{Usage: UsageMulti, Products: []string{"PlatformService"}, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.End(h.ctx, loginTenant, g.Session.ID, true); err != nil {
		t.Fatal(err)
	}
	_, err = h.login("bob", "dev-b")
	wantSeatError(t, err, "bob during the linger")
	_, err = h.login("alice", "dev-2")
	wantSeatError(t, err, "alice from a new device")

	// The token reclaims the seat from a third device.
	tg, err := h.m.TokenLogin(h.ctx, loginTenant, multi, LoginOptions{Device: "dev-3"})
	if err != nil {
		t.Fatalf("token login: %v", err)
	}
	if tg.Device != "dev-3" || tg.Session.Device != "dev-1" || tg.Session.Kind != domain.SessionLoginToken || h.liveSeats() != 1 {
		t.Fatalf("reclaim: device %s, session device %s, kind %s, %d seats", tg.Device, tg.Session.Device, tg.Session.Kind, h.liveSeats())
	}
	// Renewals of the reclaiming session find its seat: used past its refresh point, it is
	// extended, never given a second seat.
	h.clock.Advance(9 * time.Minute)
	p2, err := h.m.Authenticate(h.ctx, "", tg.AccessToken, netip.Addr{})
	if err != nil {
		t.Fatalf("use after 9 min: %v", err)
	}
	if !p2.Session.ExpiresAt.After(h.clock.Now().Add(9*time.Minute)) || h.liveSeats() != 1 {
		t.Fatalf("not extended (%v) or %d seats", p2.Session.ExpiresAt, h.liveSeats())
	}
	// While it holds the seat, the Multi token cannot seat another device.
	_, err = h.m.TokenLogin(h.ctx, loginTenant, multi, LoginOptions{Device: "dev-4"})
	wantSeatError(t, err, "second device on a Multi token")

	// Single: spent once it has opened a session, not when the login fails.
	single, _, err := h.m.CreateLoginToken(h.ctx, p2, LoginTokenRequest{Usage: UsageSingle, Products: []string{"PlatformService"}, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.m.TokenLogin(h.ctx, loginTenant, single, LoginOptions{Device: "dev-5"})
	wantSeatError(t, err, "single token while the seat is held")
	if _, err := h.m.End(h.ctx, loginTenant, tg.Session.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.TokenLogin(h.ctx, loginTenant, single, LoginOptions{Device: "dev-5"}); err != nil {
		t.Fatalf("single token after the logoff: %v", err)
	}
	if _, err := h.m.TokenLogin(h.ctx, loginTenant, single, LoginOptions{Device: "dev-5"}); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("single token twice: %v", err)
	}

	// Expired tokens fail; a password change (RevokeLoginTokensTx) revokes the rest.
	h.clock.Advance(2 * time.Hour)
	if _, err := h.m.TokenLogin(h.ctx, loginTenant, multi, LoginOptions{}); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("expired token: %v", err)
	}
}

func TestRevokeLoginTokens(t *testing.T) {
	h := newLoginHarness(t)
	g := h.mustLogin("alice", "dev-1")
	p, _ := h.m.AuthenticateCookie(h.ctx, "", g.Cookie, netip.Addr{})
	tok, _, err := h.m.CreateLoginToken(h.ctx, p, LoginTokenRequest{Usage: UsageMulti, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := h.st.Update(h.ctx, func(tx store.Tx) error {
		n, err = RevokeLoginTokensTx(h.ctx, tx, loginTenant, "alice")
		return err
	}); err != nil || n != 1 {
		t.Fatalf("revoked %d: %v", n, err)
	}
	if _, err := h.m.TokenLogin(h.ctx, loginTenant, tok, LoginOptions{}); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("revoked token: %v", err)
	}
}

func TestLoginTokensBoundedPerUser(t *testing.T) {
	h := newLoginHarness(t)
	g := h.mustLogin("alice", "dev-1")
	p, _ := h.m.AuthenticateCookie(h.ctx, "", g.Cookie, netip.Addr{})
	for range maxLoginTokensPerUser + 5 {
		if _, _, err := h.m.CreateLoginToken(h.ctx, p, LoginTokenRequest{Usage: UsageMulti, Lifetime: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	var list []domain.Token
	_ = h.st.View(h.ctx, func(tx store.Tx) error {
		var err error
		list, err = tx.ListTokens(h.ctx, loginTenant, domain.TokenLogin, "alice")
		return err
	})
	if len(list) != maxLoginTokensPerUser {
		t.Fatalf("%d login tokens kept, want %d", len(list), maxLoginTokensPerUser)
	}
}

func TestExternalSession(t *testing.T) {
	h := newLoginHarness(t)
	exp := h.clock.Now().Add(time.Hour)
	id := ExternalIdentity{Issuer: "https://idp", Subject: "s1", User: "alice", Expiry: exp}
	p, err := h.m.External(h.ctx, loginTenant, id, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Session.Kind != domain.SessionExternal || p.Session.ExtIssuer != "https://idp" || p.Session.ExtSubject != "s1" ||
		!p.Session.ExpiresAt.Equal(exp) || !p.Session.Licensed || h.liveSeats() != 1 {
		t.Fatalf("session: %+v, %d seats", p.Session, h.liveSeats())
	}
	// The same token again: the same session, nothing written.
	p2, err := h.m.External(h.ctx, loginTenant, id, netip.Addr{})
	if err != nil || p2.Session.ID != p.Session.ID {
		t.Fatalf("again: %v %v", p2, err)
	}
	// A newer token extends the session and its seat.
	id.Expiry = exp.Add(time.Hour)
	p3, err := h.m.External(h.ctx, loginTenant, id, netip.Addr{})
	if err != nil || p3.Session.ID != p.Session.ID || !p3.Session.ExpiresAt.Equal(id.Expiry) {
		t.Fatalf("newer: %+v %v", p3, err)
	}
	var lease *domain.Lease
	_ = h.st.View(h.ctx, func(tx store.Tx) error {
		lease, err = tx.FindLease(h.ctx, loginTenant, p3.Session.LeaseRoot)
		return err
	})
	if lease == nil || !lease.ExpiresAt.Equal(id.Expiry) {
		t.Fatalf("lease not extended: %+v", lease)
	}
	// Unknown or disabled users are refused; an expired token opens nothing.
	for _, u := range []string{"nobody", "dave"} {
		if _, err := h.m.External(h.ctx, loginTenant, ExternalIdentity{Issuer: "https://idp", Subject: u, User: u, Expiry: exp}, netip.Addr{}); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("user %s: %v", u, err)
		}
	}
	if _, err := h.m.External(h.ctx, loginTenant, ExternalIdentity{Issuer: "https://idp", Subject: "s2", User: "alice", Expiry: h.clock.Now().Add(-time.Second)}, netip.Addr{}); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("expired: %v", err)
	}
	// A logout refuses the tokens issued before it, not those issued after.
	id.IssuedAt = h.clock.Now().Add(-time.Minute)
	if err := h.m.Logout(h.ctx, p3); err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.External(h.ctx, loginTenant, id, netip.Addr{}); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("pre-logout token: %v", err)
	}
	id.IssuedAt = h.clock.Now().Add(time.Second)
	if _, err := h.m.External(h.ctx, loginTenant, id, netip.Addr{}); err != nil {
		t.Fatalf("post-logout token: %v", err)
	}
	// After the session's deadline, the next token opens a new life of it.
	h.clock.Advance(3 * time.Hour)
	id.Expiry = h.clock.Now().Add(time.Hour)
	p4, err := h.m.External(h.ctx, loginTenant, id, netip.Addr{})
	if err != nil || !p4.Session.CreatedAt.Equal(h.clock.Now()) {
		t.Fatalf("after expiry: %+v %v", p4, err)
	}
}
