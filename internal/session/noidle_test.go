package session

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

// TestLoginNoIdle: a NoIdle session (DocuWare's cookie logon) outlives idle_timeout and keeps
// its one seat for cookie_max_age, through the sweeper and through its own extensions; an
// ordinary session idles out.
func TestLoginNoIdle(t *testing.T) {
	h := newLoginHarness(t) // idle_timeout 10 m, one seat on [user, hw], default cookie_max_age (20 years)
	year := 365 * 24 * time.Hour

	plain := h.mustLogin("alice", "d0")
	if plain.Session.NoIdle {
		t.Fatal("an ordinary login is NoIdle")
	}
	h.clock.Advance(11 * time.Minute)
	if _, err := h.m.AuthenticateCookie(h.ctx, "", plain.Cookie, netip.Addr{}); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("an ordinary session past idle_timeout: %v", err)
	}

	g, err := h.m.Login(h.ctx, loginTenant, h.users["alice"], LoginOptions{Device: "d1", NoIdle: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := g.Session.ExpiresAt.Sub(g.Session.CreatedAt), 175200*time.Hour; got != want {
		t.Fatalf("NoIdle session lives %v, want cookie_max_age %v", got, want)
	}
	for _, step := range []time.Duration{11 * time.Minute, year, 16 * year} {
		h.clock.Advance(step)
		if _, err := h.m.Sweep(h.ctx, 100); err != nil {
			t.Fatal(err)
		}
		// Past 80 % of its window (the last step) authenticating extends it: the extension
		// must keep the policy, which therefore has to survive the store.
		p, err := h.m.AuthenticateCookie(h.ctx, "", g.Cookie, netip.Addr{})
		if err != nil {
			t.Fatalf("NoIdle session after %v more: %v", step, err)
		}
		if !p.Session.NoIdle || !p.Session.ExpiresAt.After(h.clock.Now().Add(3*year)) {
			t.Fatalf("NoIdle session after %v more: %+v", step, p.Session)
		}
		if n := h.liveSeats(); n != 1 {
			t.Fatalf("NoIdle session after %v more holds %d seats", step, n)
		}
		if _, err := h.login("bob", "d2"); err == nil {
			t.Fatal("bob took a seat the NoIdle session holds")
		}
	}
	// Logoff ends it like any other.
	p, err := h.m.AuthenticateCookie(h.ctx, "", g.Cookie, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.m.Logout(h.ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := h.m.AuthenticateCookie(h.ctx, "", g.Cookie, netip.Addr{}); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("NoIdle session after its logoff: %v", err)
	}
}
