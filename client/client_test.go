package client

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"github.com/leasehold/leasehold/client/internal/testserver"
	"net/http"
	"strings"
	"testing"
	"time"
)

func ccConfig(s *testserver.Server, device string) Config {
	return Config{BaseURL: s.URL, ClientID: "app", ClientSecret: "s3cret", Device: device}
}

func appConfig(s *testserver.Server, clientID, device string) Config {
	return Config{BaseURL: s.URL, ClientID: clientID, ClientSecret: "s3cret", Device: device}
}

// entitlements calls GET /entitlements/licenses with tok and returns the status.
func entitlements(t *testing.T, s *testserver.Server, tok string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/entitlements/licenses", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func mustNew(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(testserver.Ctx(t), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func kid(t *testing.T, tok string) string {
	t.Helper()
	h, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(h, &v)
	return v.Kid
}

// TestRenewalChaining: a lease is renewed in the background at rfr, each renewal naming
// the current lease id (the model enforces chaining, so a renewal without it would be
// refused); the session's access token is refreshed too; Close frees every seat.
func TestRenewalChaining(t *testing.T) {
	t.Parallel()
	s := testserver.Shared(t)
	ctx := testserver.Ctx(t)
	c := mustNew(t, appConfig(s, "renew-app", "renew-1"))
	firstToken := c.AccessToken()
	l, err := c.Consume(ctx, "AppFeature-XYZ")
	if err != nil {
		t.Fatal(err)
	}
	if !l.Valid() || l.ID() == "" || l.License() != "lic-platform" {
		t.Fatalf("lease: valid=%v id=%q lic=%q", l.Valid(), l.ID(), l.License())
	}
	if d := time.Until(l.Expiry()); d < 4*time.Second || d > 7*time.Second {
		t.Fatalf("expiry in %s, want about 6s", d)
	}
	first := l.ID()
	prev := first
	for i := 0; i < 2; i++ {
		start := time.Now()
		ev := waitEvent(t, l, Renewed, 10*time.Second, Lost, Retrying)
		if took := time.Since(start); i > 0 && (took < 2*time.Second || took > 5500*time.Millisecond) {
			t.Errorf("renewal %d came after %s, want about 3s (rfr of a 6s lease at ratio 0.5)", i, took)
		}
		if ev.LeaseID == prev || chainRoot(ev.LeaseID) != chainRoot(first) {
			t.Fatalf("renewal %d: id %q after %q: not the next of the chain", i, ev.LeaseID, prev)
		}
		prev = ev.LeaseID
	}
	if c.AccessToken() == firstToken {
		t.Error("the session's access token (4s) was not refreshed")
	}
	ls := s.Leases(t, "renew-1")
	xyz := testserver.ItemLeases(ls, "AppFeature-XYZ")
	if len(xyz) != 1 || xyz[0].ID != l.ID() || xyz[0].Process != c.Process() {
		t.Fatalf("server's leases for the item: %+v (client holds %s)", xyz, l.ID())
	}
	if n := testserver.Seats(ls); n != 1 {
		t.Fatalf("seats held: %d, want 1 (session and item on one seat): %+v", n, ls)
	}
	// Asking again returns the lease already held.
	if again, err := c.Consume(ctx, "AppFeature-XYZ"); err != nil || again != l {
		t.Fatalf("second Consume: %v %v", again, err)
	}
	if _, err := c.Consume(ctx, "AppFeature-ABC"); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-l.Events(); ok {
		// Drain: the channel closes after the buffered events.
		for range l.Events() {
		}
	}
	if ls := s.Leases(t, "renew-1"); len(ls) != 0 {
		t.Fatalf("after Close: %+v", ls)
	}
	if ss := s.Sessions(t, "renew-1"); len(ss) != 0 {
		t.Fatalf("sessions after Close: %+v", ss)
	}
	if _, err := c.Consume(ctx, "AppFeature-XYZ"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Consume after Close: %v", err)
	}
	if err := l.Release(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Release after Close: %v", err)
	}
}

// TestTwoClientsOneDevice: each Client has its own process id, so two programs of one
// user on one device hold separate leases of one item, on one seat.
func TestTwoClientsOneDevice(t *testing.T) {
	t.Parallel()
	s := testserver.Shared(t)
	ctx := testserver.Ctx(t)
	cfgB := appConfig(s, "two-app", "two-1")
	cfgB.Tenant = "acme" // the default tenant, named: every route under /t/acme/
	a, b := mustNew(t, appConfig(s, "two-app", "two-1")), mustNew(t, cfgB)
	la, err := a.Consume(ctx, "AppFeature-XYZ")
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.Consume(ctx, "AppFeature-XYZ")
	if err != nil {
		t.Fatal(err)
	}
	if la.ID() == lb.ID() || a.Process() == b.Process() {
		t.Fatalf("one lease for two programs: %s %s", la.ID(), lb.ID())
	}
	ls := s.Leases(t, "two-1")
	if n := len(testserver.ItemLeases(ls, "AppFeature-XYZ")); n != 2 || testserver.Seats(ls) != 1 {
		t.Fatalf("want 2 item leases on 1 seat: %+v", ls)
	}
	if err := errors.Join(a.Close(ctx), b.Close(ctx)); err != nil {
		t.Fatal(err)
	}
	if ls := s.Leases(t, "two-1"); len(ls) != 0 {
		t.Fatalf("after Close: %+v", ls)
	}
}

// TestConcurrentConsume: goroutines consuming one item at once get the one lease (a
// second consumption racing the first would be refused under lease chaining).
func TestConcurrentConsume(t *testing.T) {
	t.Parallel()
	s := testserver.Shared(t)
	ctx := testserver.Ctx(t)
	c := mustNew(t, appConfig(s, "race-app", "race-1"))
	defer c.Close(ctx)
	leases := make(chan *Lease, 5)
	errs := make(chan error, 5)
	for i := 0; i < 5; i++ {
		go func() {
			l, err := c.Consume(ctx, "AppFeature-ABC")
			leases <- l
			errs <- err
		}()
	}
	var first *Lease
	for i := 0; i < 5; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		l := <-leases
		if first == nil {
			first = l
		}
		if l != first {
			t.Fatal("two leases for one item of one client")
		}
	}
	if n := len(testserver.ItemLeases(s.Leases(t, "race-1"), "AppFeature-ABC")); n != 1 {
		t.Fatalf("%d leases on the server", n)
	}
}

// TestRefusal: a refused consumption is a *LicenseError with the seed's error key; Check
// says the same without consuming; WithQueue waits for the seat to free.
func TestRefusal(t *testing.T) {
	t.Parallel()
	s := testserver.Shared(t)
	ctx := testserver.Ctx(t)
	a := mustNew(t, appConfig(s, "refuse-app", "refuse-a"))
	defer a.Close(ctx)
	b := mustNew(t, Config{BaseURL: s.URL, ClientID: "bob-app", ClientSecret: "s3cret", Device: "refuse-b"})
	defer b.Close(ctx)

	if ok, err := b.Check(ctx, "ReportDesigner"); !ok || err != nil {
		t.Fatalf("Check of a free seat: %v %v", ok, err)
	}
	la, err := a.Consume(ctx, "ReportDesigner")
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Consume(ctx, "ReportDesigner")
	var le *LicenseError
	if !errors.As(err, &le) || le.Code != "licenseQuotaExceeded" || le.Item != "ReportDesigner" || le.Message == "" {
		t.Fatalf("want licenseQuotaExceeded, got %#v (%v)", le, err)
	}
	if !errors.Is(err, &LicenseError{Code: "licenseQuotaExceeded"}) {
		t.Fatal("errors.Is by code")
	}
	ok, err := b.Check(ctx, "ReportDesigner")
	if ok || !errors.As(err, &le) || le.Code != "licenseQuotaExceeded" {
		t.Fatalf("Check: %v %v", ok, err)
	}
	if _, err := b.Consume(ctx, "NoSuchItem"); !errors.As(err, &le) || le.Code != "noLicenseFound" {
		t.Fatalf("unknown item: %v", err)
	}
	if ls := s.Leases(t, "refuse-b"); len(testserver.ItemLeases(ls, "ReportDesigner")) != 0 {
		t.Fatalf("a refused consumption holds a lease: %+v", ls)
	}

	// Queue: a's release frees the seat while b waits.
	go func() {
		time.Sleep(time.Second)
		_ = la.Release(ctx)
	}()
	lb, err := b.Consume(ctx, "ReportDesigner", WithQueue(15*time.Second))
	if err != nil {
		t.Fatalf("queued consumption: %v", err)
	}
	if !lb.Valid() {
		t.Fatal("queued lease not valid")
	}
}

// TestNewRefused: a login refused for lack of a seat is a *LicenseError from New.
func TestNewRefused(t *testing.T) {
	t.Parallel()
	s := testserver.Shared(t)
	ctx := testserver.Ctx(t)
	// Wrong credentials: an error, not a license error.
	if _, err := New(ctx, Config{BaseURL: s.URL, Username: "alice", Password: "wrong", Device: "nr-1"}); err == nil {
		t.Fatal("wrong password accepted")
	} else if le := (*LicenseError)(nil); errors.As(err, &le) {
		t.Fatalf("wrong password as a license error: %v", err)
	}
	// A tenant that does not exist.
	if _, err := New(ctx, Config{BaseURL: s.URL, Tenant: "nope", ClientID: "app", ClientSecret: "s3cret"}); err == nil {
		t.Fatal("unknown tenant accepted")
	}
}

// TestAdminEndsLease: an administrator ends the lease; the next renewal gets a new lease
// chain: Lost (ErrChainBroken), then Restored, on the same seat.
func TestAdminEndsLease(t *testing.T) {
	t.Parallel()
	s := testserver.Shared(t)
	ctx := testserver.Ctx(t)
	c := mustNew(t, appConfig(s, "end-app", "admin-end"))
	defer c.Close(ctx)
	l, err := c.Consume(ctx, "AppFeature-ABC")
	if err != nil {
		t.Fatal(err)
	}
	old := l.ID()
	s.Admin(t, http.MethodDelete, "/leases/"+old, nil)
	ev := waitEvent(t, l, Lost, 10*time.Second, Restored)
	if !errors.Is(ev.Err, ErrChainBroken) {
		t.Fatalf("Lost with %v, want ErrChainBroken", ev.Err)
	}
	waitEvent(t, l, Restored, 2*time.Second)
	if chainRoot(l.ID()) == chainRoot(old) || !l.Valid() {
		t.Fatalf("after Restored: id %s (old %s), valid %v", l.ID(), old, l.Valid())
	}
	ls := s.Leases(t, "admin-end")
	if abc := testserver.ItemLeases(ls, "AppFeature-ABC"); len(abc) != 1 || abc[0].ID != l.ID() || testserver.Seats(ls) != 1 {
		t.Fatalf("server's leases: %+v", ls)
	}
	// Then renewals go on along the new chain.
	ev = waitEvent(t, l, Renewed, 10*time.Second, Lost)
	if chainRoot(ev.LeaseID) != chainRoot(l.ID()) {
		t.Fatal("renewal off the new chain")
	}
}

// TestAdminEndsLeaseSeatTaken: an administrator ends the lease and another device takes
// the only seat: Lost with licenseQuotaExceeded; once the seat is free, Restored.
func TestAdminEndsLeaseSeatTaken(t *testing.T) {
	t.Parallel()
	s := testserver.Shared(t)
	ctx := testserver.Ctx(t)
	a := mustNew(t, appConfig(s, "taken-app", "taken-a"))
	defer a.Close(ctx)
	b := mustNew(t, appConfig(s, "bob-taken", "taken-b"))
	defer b.Close(ctx)
	la, err := a.Consume(ctx, "ChartDesigner")
	if err != nil {
		t.Fatal(err)
	}
	s.Admin(t, http.MethodDelete, "/leases/"+la.ID(), nil)
	lb, err := b.Consume(ctx, "ChartDesigner")
	if err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, la, Lost, 10*time.Second, Restored)
	var le *LicenseError
	if !errors.As(ev.Err, &le) || le.Code != "licenseQuotaExceeded" {
		t.Fatalf("Lost with %v", ev.Err)
	}
	if err := lb.Release(ctx); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, la, Restored, 20*time.Second)
	if !la.Valid() {
		t.Fatal("restored lease not valid")
	}
}

// TestKeyRotation: after the tenant's key is rotated, renewals are signed by the new key,
// which the client fetches (unknown kid) and verifies.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t)
	ctx := testserver.Ctx(t)
	c := mustNew(t, ccConfig(s, "rotate-1"))
	defer c.Close(ctx)
	l, err := c.Consume(ctx, "AppFeature-XYZ")
	if err != nil {
		t.Fatal(err)
	}
	before := kid(t, l.Token())
	s.Admin(t, http.MethodPost, "/keys/rotate", nil)
	waitEvent(t, l, Renewed, 10*time.Second, Lost, Retrying)
	after := kid(t, l.Token())
	if after == before || after == "" {
		t.Fatalf("kid %q before and %q after the rotation", before, after)
	}
	// A token signed by a key of no JWK Set is refused.
	forged := strings.Split(l.Token(), ".")
	forged[2] = base64.RawURLEncoding.EncodeToString([]byte("not a signature, not a signature, not a signature"))
	if _, err := c.ver.verify(ctx, strings.Join(forged, ".")); err == nil {
		t.Fatal("forged signature verified")
	}
}

// TestKill9: the server is killed (SIGKILL) and restarted on the same store; the client
// retries the renewal with backoff (Retrying) and carries on along the same lease chain,
// on the same seat, with no Lost and no second seat. (DurableFeature's 20 s leases leave
// room for the restart on a loaded machine.)
func TestKill9(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t)
	ctx := testserver.Ctx(t)
	c := mustNew(t, ccConfig(s, "k9-1"))
	defer c.Close(ctx)
	l, err := c.Consume(ctx, "DurableFeature")
	if err != nil {
		t.Fatal(err)
	}
	root := chainRoot(l.ID())
	before := s.Leases(t, "k9-1")
	s.Kill()
	waitEvent(t, l, Retrying, 10*time.Second, Lost)
	if !l.Valid() {
		t.Fatal("lease invalid while the server is away (it has not expired)")
	}
	s.Start(t)
	ev := waitEvent(t, l, Renewed, 15*time.Second, Lost)
	if chainRoot(ev.LeaseID) != root {
		t.Fatalf("renewal after the restart left the chain: %s (root %s)", ev.LeaseID, root)
	}
	after := s.Leases(t, "k9-1")
	if len(testserver.ItemLeases(after, "DurableFeature")) != 1 || testserver.Seats(after) != testserver.Seats(before) || len(after) != len(before) {
		t.Fatalf("leases before the kill %+v, after the restart %+v", before, after)
	}
	if ss := s.Sessions(t, "k9-1"); len(ss) != 1 {
		t.Fatalf("sessions after the restart: %+v", ss)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if ls := s.Leases(t, "k9-1"); len(ls) != 0 {
		t.Fatalf("after Close: %+v", ls)
	}
}

// TestOfflineCheckout: a checkout lease is kept in StateDir; with the server gone, New
// returns an offline client whose Consume hands it out.
func TestOfflineCheckout(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t)
	ctx := testserver.Ctx(t)
	dir := t.TempDir()
	cfg := ccConfig(s, "offline-1")
	cfg.StateDir = dir
	c := mustNew(t, cfg)
	if _, err := New(ctx, cfg); !errors.Is(err, ErrStateDirLocked) {
		t.Fatalf("a second client on the same StateDir: %v", err)
	}
	l, err := c.Consume(ctx, "AppFeature-XYZ", WithCheckout(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if !l.Checkout() || time.Until(l.Expiry()) < 29*time.Minute {
		t.Fatalf("checkout lease until %s", l.Expiry())
	}
	id := l.ID()
	if _, err := c.Consume(ctx, "AppFeature-ABC"); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Close released the online lease, not the checkout one.
	ls := s.Leases(t, "offline-1")
	if len(ls) != 1 || ls[0].ID != id || ls[0].Mode != "checkout" {
		t.Fatalf("after Close: %+v", ls)
	}
	s.Kill()

	off, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("offline New: %v", err)
	}
	if !off.Offline() {
		t.Fatal("not offline")
	}
	kept, err := off.Consume(ctx, "AppFeature-XYZ")
	if err != nil {
		t.Fatal(err)
	}
	if kept.ID() != id || !kept.Valid() || !kept.Checkout() {
		t.Fatalf("kept lease: %s valid=%v", kept.ID(), kept.Valid())
	}
	if ok, err := off.Check(ctx, "AppFeature-XYZ"); !ok || err != nil {
		t.Fatalf("offline Check: %v %v", ok, err)
	}
	if _, err := off.Consume(ctx, "AppFeature-ABC"); !errors.Is(err, ErrOffline) {
		t.Fatalf("offline Consume of an item not kept: %v", err)
	}
	if err := off.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Back online: the kept lease is renewed on its own chain, and Release ends it.
	s.Start(t)
	on := mustNew(t, cfg)
	defer on.Close(ctx)
	back, err := on.Consume(ctx, "AppFeature-XYZ", WithCheckout(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if chainRoot(back.ID()) != chainRoot(id) {
		t.Fatalf("online again: lease %s, kept %s", back.ID(), id)
	}
	if err := back.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if ls := s.Leases(t, "offline-1"); len(testserver.ItemLeases(ls, "AppFeature-XYZ")) != 0 {
		t.Fatalf("after Release: %+v", ls)
	}
	st, _ := (&stateDir{dir: dir}).read()
	if len(st.Leases) != 0 {
		t.Fatalf("released lease still kept: %+v", st.Leases)
	}
}

// TestResumeAfterCrash: a program with a StateDir dies without Close; started again, it
// resumes its session and renews its lease: no second session, no second seat.
func TestResumeAfterCrash(t *testing.T) {
	t.Parallel()
	s := testserver.Shared(t)
	ctx := testserver.Ctx(t)
	cfg := Config{BaseURL: s.URL, Username: "alice", Password: "alice-pw", Device: "resume-1", StateDir: t.TempDir()}
	c := mustNew(t, cfg)
	l, err := c.Consume(ctx, "AppFeature-XYZ")
	if err != nil {
		t.Fatal(err)
	}
	sess := s.Sessions(t, "resume-1")
	if len(sess) != 1 {
		t.Fatalf("sessions: %+v", sess)
	}
	id, proc := l.ID(), c.Process()
	c.abandon() // as kill -9: no release, no logoff

	c2 := mustNew(t, cfg)
	defer c2.Close(ctx)
	if c2.Process() != proc {
		t.Fatalf("process id %s, kept %s", c2.Process(), proc)
	}
	if ss := s.Sessions(t, "resume-1"); len(ss) != 1 || ss[0].ID != sess[0].ID {
		t.Fatalf("sessions after the restart: %+v, before %+v", ss, sess)
	}
	l2, err := c2.Consume(ctx, "AppFeature-XYZ")
	if err != nil {
		t.Fatal(err)
	}
	if chainRoot(l2.ID()) != chainRoot(id) {
		t.Fatalf("lease %s after the restart, %s before: a new chain", l2.ID(), id)
	}
	ls := s.Leases(t, "resume-1")
	if len(testserver.ItemLeases(ls, "AppFeature-XYZ")) != 1 || testserver.Seats(ls) != 1 {
		t.Fatalf("leases: %+v", ls)
	}
	if err := c2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if ls := s.Leases(t, "resume-1"); len(ls) != 0 {
		t.Fatalf("after Close: %+v", ls)
	}
	if ss := s.Sessions(t, "resume-1"); len(ss) != 0 {
		t.Fatalf("sessions after Close: %+v", ss)
	}
}

// TestSessionEnded: an administrator ends the session; the client's refresh is refused,
// so it re-opens the session (with its login token for a password session, with client
// credentials otherwise) onto the same seat, and its lease goes on.
func TestSessionEnded(t *testing.T) {
	t.Parallel()
	s := testserver.Shared(t)
	for _, tt := range []struct {
		name string
		cfg  Config
	}{
		{"password", Config{BaseURL: s.URL, Username: "bob", Password: "bob-pw", Device: "ended-1"}},
		{"client credentials", appConfig(s, "end-cc-app", "ended-2")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testserver.Ctx(t)
			device := tt.cfg.Device
			c := mustNew(t, tt.cfg)
			defer c.Close(ctx)
			l, err := c.Consume(ctx, "AppFeature-ABC")
			if err != nil {
				t.Fatal(err)
			}
			ss := s.Sessions(t, device)
			if len(ss) != 1 {
				t.Fatalf("sessions: %+v", ss)
			}
			before := c.AccessToken()
			s.Admin(t, http.MethodDelete, "/sessions/"+ss[0].ID, nil)
			if code := entitlements(t, s, before); code != http.StatusUnauthorized {
				t.Fatalf("the ended session's token still works: %d", code)
			}
			deadline := time.Now().Add(15 * time.Second)
			for {
				// (A client's client-credentials session keeps its id when re-opened.)
				now := s.Sessions(t, device)
				if tok := c.AccessToken(); len(now) == 1 && tok != before && entitlements(t, s, tok) == http.StatusOK {
					break
				}
				if len(now) > 1 {
					t.Fatalf("two sessions: %+v", now)
				}
				if time.Now().After(deadline) {
					t.Fatalf("session not re-opened: %+v", now)
				}
				time.Sleep(200 * time.Millisecond)
			}
			waitEvent(t, l, Renewed, 10*time.Second, Retrying)
			if ls := s.Leases(t, device); testserver.Seats(ls) != 1 {
				t.Fatalf("seats: %+v", ls)
			}
		})
	}
}
