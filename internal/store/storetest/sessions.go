package storetest

import (
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// Nil and empty slices are the same value to every caller; a backend may return either.
func normSession(s domain.Session) domain.Session {
	if len(s.Scopes) == 0 {
		s.Scopes = nil
	}
	return s
}

func normToken(t domain.Token) domain.Token {
	if len(t.Scopes) == 0 {
		t.Scopes = nil
	}
	if len(t.Data) == 0 {
		t.Data = nil
	}
	return t
}

func getSession(t *testing.T, s store.Store, tenant, id string) (*domain.Session, error) {
	t.Helper()
	var out *domain.Session
	err := readErr(t, s, func(tx store.Tx) error {
		var err error
		out, err = tx.GetSession(t.Context(), tenant, id)
		return err
	})
	return out, err
}

func getToken(t *testing.T, s store.Store, hash string) (*domain.Token, error) {
	t.Helper()
	var out *domain.Token
	err := readErr(t, s, func(tx store.Tx) error {
		var err error
		out, err = tx.GetToken(t.Context(), hash)
		return err
	})
	return out, err
}

func insertSessions(t *testing.T, s store.Store, sessions ...domain.Session) {
	t.Helper()
	update(t, s, func(tx store.Tx) error {
		for i := range sessions {
			x := sessions[i]
			if err := tx.InsertSession(t.Context(), &x); err != nil {
				return err
			}
		}
		return nil
	})
}

func insertTokens(t *testing.T, s store.Store, tokens ...domain.Token) {
	t.Helper()
	update(t, s, func(tx store.Tx) error {
		for i := range tokens {
			x := tokens[i]
			if err := tx.InsertToken(t.Context(), &x); err != nil {
				return err
			}
		}
		return nil
	})
}

func sessionIDs(ss []domain.Session) []string {
	out := []string{}
	for _, s := range ss {
		out = append(out, s.Tenant+"/"+s.ID)
	}
	return out
}

func tokenHashes(ts []domain.Token) []string {
	out := []string{}
	for _, t := range ts {
		out = append(out, t.Hash)
	}
	sort.Strings(out)
	return out
}

func testSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := baseTime(t, s)
	_, err := getSession(t, s, "acme", "s1")
	wantNotFound(t, "GetSession of a missing session", err)

	s1 := domain.Session{ID: "s1", Tenant: "acme", Kind: domain.SessionPassword, User: "alice", Device: "dev-1",
		Scopes: []string{"all", "view"}, Licensed: true, Refreshable: true, NoIdle: true, LeaseLicense: "L1", LeaseRoot: "r1",
		CreatedAt: base, LastUsedAt: base.Add(time.Second), ExpiresAt: base.Add(20 * time.Minute)}
	s2 := domain.Session{ID: "s2", Tenant: "acme", Kind: domain.SessionExternal, User: "bob", Client: "app",
		ExtIssuer: "https://idp.example", ExtSubject: "sub-9", CreatedAt: base.Add(-time.Hour),
		LastUsedAt: base.Add(-30 * time.Minute), ExpiresAt: base.Add(-time.Minute), HardExpiry: base.Add(time.Hour)}
	s3 := domain.Session{ID: "s3", Tenant: "other", Kind: domain.SessionClientCredentials, User: "alice", Client: "c",
		Scopes: []string{}, CreatedAt: base, LastUsedAt: base, ExpiresAt: base.Add(-2 * time.Minute)}
	insertSessions(t, s, s1, s2, s3)

	for _, want := range []domain.Session{s1, s2, s3} {
		got, err := getSession(t, s, want.Tenant, want.ID)
		if err != nil {
			t.Fatalf("GetSession(%s): %v", want.ID, err)
		}
		same(t, "session "+want.ID, normSession(*got), normSession(want))
	}
	_, err = getSession(t, s, "other", "s1")
	wantNotFound(t, "GetSession from another tenant", err)
	err = s.Update(ctx, func(tx store.Tx) error { x := s1; return tx.InsertSession(ctx, &x) })
	wantConflict(t, "InsertSession of an existing id", err)

	s1.Scopes = []string{"view"}
	s1.LastUsedAt = base.Add(time.Minute)
	s1.ExpiresAt = base.Add(21 * time.Minute)
	s1.HardExpiry = base.Add(24 * time.Hour)
	s1.LeaseRoot = "r2"
	s1.Refreshable = false
	s1.NoIdle = false
	update(t, s, func(tx store.Tx) error { x := s1; return tx.UpdateSession(ctx, &x) })
	got, _ := getSession(t, s, "acme", "s1")
	same(t, "updated session", normSession(*got), normSession(s1))
	err = s.Update(ctx, func(tx store.Tx) error {
		x := s1
		x.ID = "missing"
		return tx.UpdateSession(ctx, &x)
	})
	wantNotFound(t, "UpdateSession of a missing session", err)

	list := func(f store.LeaseFilter) []domain.Session {
		return read(t, s, func(tx store.Tx) ([]domain.Session, error) { return tx.ListSessions(ctx, "acme", f) })
	}
	for _, c := range []struct {
		f    store.LeaseFilter
		want []string
	}{
		{store.LeaseFilter{}, []string{"acme/s1", "acme/s2"}},
		{store.LeaseFilter{User: "alice"}, []string{"acme/s1"}},
		{store.LeaseFilter{LicenseID: "L1"}, []string{"acme/s1"}},
		{store.LeaseFilter{LicenseID: "L1", User: "bob"}, []string{}},
		{store.LeaseFilter{Client: "app"}, []string{"acme/s2"}},
		{store.LeaseFilter{User: "alice", Client: "app"}, []string{}},
		{store.LeaseFilter{LeaseRoot: "r2"}, []string{"acme/s1"}},
		{store.LeaseFilter{LeaseRoot: "r1"}, []string{}},
	} {
		got := sessionIDs(list(c.f))
		sort.Strings(got)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("ListSessions(%+v) = %v, want %v", c.f, got, c.want)
		}
	}
	if got := list(store.LeaseFilter{Limit: 1}); len(got) != 1 {
		t.Errorf("ListSessions(limit 1) returned %d", len(got))
	}
	for _, x := range list(store.LeaseFilter{User: "alice"}) {
		same(t, "listed session", normSession(x), normSession(s1))
	}

	// Sessions sharing one seat lease.
	insertSessions(t, s,
		domain.Session{ID: "s4", Tenant: "acme", Kind: domain.SessionPassword, User: "alice", Licensed: true,
			LeaseLicense: "L1", LeaseRoot: "r2", CreatedAt: base, LastUsedAt: base, ExpiresAt: base.Add(time.Hour)},
		domain.Session{ID: "s5", Tenant: "other", Kind: domain.SessionPassword, User: "alice", Licensed: true,
			LeaseLicense: "L1", LeaseRoot: "r2", CreatedAt: base, LastUsedAt: base, ExpiresAt: base.Add(time.Hour)})
	byLease := func(root string) int {
		return read(t, s, func(tx store.Tx) (int, error) { return tx.CountSessionsByLease(ctx, "acme", root) })
	}
	if n := byLease("r2"); n != 2 {
		t.Errorf("CountSessionsByLease(r2) = %d, want 2 (s1, s4)", n)
	}
	if n := byLease("r1"); n != 0 {
		t.Errorf("CountSessionsByLease(r1) = %d, want 0 (s1 moved to r2)", n)
	}
	update(t, s, func(tx store.Tx) error { _, err := tx.DeleteSession(ctx, "acme", "s4"); return err })
	if n := byLease("r2"); n != 1 {
		t.Errorf("CountSessionsByLease(r2) after a delete = %d, want 1", n)
	}

	expired := func(now time.Time, limit int) []string {
		return sessionIDs(read(t, s, func(tx store.Tx) ([]domain.Session, error) { return tx.ExpiredSessions(ctx, now, limit) }))
	}
	if got, want := expired(base, 100), []string{"other/s3", "acme/s2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ExpiredSessions = %v, want oldest first %v", got, want)
	}
	if got, want := expired(base, 1), []string{"other/s3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ExpiredSessions(limit 1) = %v, want %v", got, want)
	}
	if got, want := expired(base.Add(-time.Minute), 100), []string{"other/s3", "acme/s2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ExpiredSessions(at s2's expiry) = %v, want %v", got, want)
	}
	if got := expired(base.Add(-3*time.Minute), 100); len(got) != 0 {
		t.Errorf("ExpiredSessions before any expiry = %v", got)
	}

	del := func(tenant, id string) bool {
		return write(t, s, func(tx store.Tx) (bool, error) { return tx.DeleteSession(ctx, tenant, id) })
	}
	if del("other", "s1") {
		t.Error("DeleteSession from another tenant = true")
	}
	if !del("acme", "s2") {
		t.Error("DeleteSession of an existing session = false")
	}
	if del("acme", "s2") {
		t.Error("DeleteSession of a deleted session = true")
	}
	_, err = getSession(t, s, "acme", "s2")
	wantNotFound(t, "GetSession after delete", err)
}

func testTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := baseTime(t, s)
	_, err := getToken(t, s, "h1")
	wantNotFound(t, "GetToken of a missing token", err)

	tok := func(hash, kind, session, family, user string, expires time.Duration) domain.Token {
		return domain.Token{Hash: hash, Tenant: "acme", Kind: kind, SessionID: session, FamilyID: family,
			ClientID: "app", User: user, Scopes: []string{"all", "offline_access"},
			CreatedAt: base, ExpiresAt: base.Add(expires)}
	}
	insertSessions(t, s,
		domain.Session{ID: "s1", Tenant: "acme", Kind: domain.SessionPassword, User: "alice", CreatedAt: base, LastUsedAt: base, ExpiresAt: base.Add(time.Hour)},
		domain.Session{ID: "s2", Tenant: "acme", Kind: domain.SessionPassword, User: "bob", CreatedAt: base, LastUsedAt: base, ExpiresAt: base.Add(time.Hour)})
	t1 := tok("h1", domain.TokenRefresh, "s1", "f1", "alice", 20*time.Minute)
	t2 := tok("h2", domain.TokenAccess, "s1", "f1", "alice", 20*time.Minute)
	t2.Scopes = nil
	t3 := tok("h3", domain.TokenRefresh, "s1", "f2", "alice", 20*time.Minute)
	t3.CreatedAt = base.Add(time.Second)
	t4 := tok("h4", domain.TokenLogin, "", "", "alice", 24*time.Hour)
	t4.Data = []byte(`{"usage":"Multi","products":["PlatformService"],"seat":"k"}`)
	t5 := tok("h5", domain.TokenAccess, "s2", "f3", "bob", 20*time.Minute)
	t6 := tok("h6", domain.TokenCode, "", "", "alice", -time.Second)
	t6.Data = []byte{0, 1, 2, 0xff}
	insertTokens(t, s, t1, t2, t3, t4, t5, t6)

	for _, want := range []domain.Token{t1, t2, t3, t4, t5, t6} {
		got, err := getToken(t, s, want.Hash)
		if err != nil {
			t.Fatalf("GetToken(%s): %v", want.Hash, err)
		}
		same(t, "token "+want.Hash, normToken(*got), normToken(want))
	}
	err = s.Update(ctx, func(tx store.Tx) error { x := t1; return tx.InsertToken(ctx, &x) })
	wantConflict(t, "InsertToken of an existing hash", err)

	list := func(kind, user string) []string {
		return tokenHashes(read(t, s, func(tx store.Tx) ([]domain.Token, error) { return tx.ListTokens(ctx, "acme", kind, user) }))
	}
	for _, c := range []struct {
		kind, user string
		want       []string
	}{
		{domain.TokenLogin, "alice", []string{"h4"}},
		{domain.TokenRefresh, "alice", []string{"h1", "h3"}},
		{domain.TokenLogin, "bob", []string{}},
		{"", "bob", []string{"h5"}},
		{domain.TokenAccess, "", []string{"h2", "h5"}},
	} {
		if got := list(c.kind, c.user); !reflect.DeepEqual(got, c.want) {
			t.Errorf("ListTokens(%q, %q) = %v, want %v", c.kind, c.user, got, c.want)
		}
	}
	if got := tokenHashes(read(t, s, func(tx store.Tx) ([]domain.Token, error) {
		return tx.ListTokens(ctx, "other", "", "")
	})); len(got) != 0 {
		t.Errorf("ListTokens of another tenant = %v", got)
	}

	delTokens := func(session, family string) int {
		return write(t, s, func(tx store.Tx) (int, error) { return tx.DeleteTokens(ctx, "acme", session, family) })
	}
	if n := delTokens("s1", "f1"); n != 2 {
		t.Errorf("DeleteTokens(s1, f1) = %d, want 2", n)
	}
	for hash, live := range map[string]bool{"h1": false, "h2": false, "h3": true, "h4": true, "h5": true} {
		_, err := getToken(t, s, hash)
		if live && err != nil {
			t.Errorf("token %s after DeleteTokens(s1, f1): %v", hash, err)
		} else if !live {
			wantNotFound(t, "token "+hash+" after DeleteTokens(s1, f1)", err)
		}
	}
	insertTokens(t, s, tok("h7", domain.TokenAccess, "s1", "f2", "alice", time.Minute))
	if n := delTokens("s1", ""); n != 2 {
		t.Errorf("DeleteTokens(s1, all) = %d, want 2 (h3, h7)", n)
	}
	if n := write(t, s, func(tx store.Tx) (int, error) { return tx.DeleteTokens(ctx, "other", "s2", "") }); n != 0 {
		t.Errorf("DeleteTokens from another tenant = %d, want 0", n)
	}

	delToken := func(hash string) bool {
		return write(t, s, func(tx store.Tx) (bool, error) { return tx.DeleteToken(ctx, hash) })
	}
	if !delToken("h4") {
		t.Error("DeleteToken of an existing token = false")
	}
	if delToken("h4") {
		t.Error("DeleteToken of a deleted token = true")
	}

	// DeleteSession takes its tokens with it.
	if !write(t, s, func(tx store.Tx) (bool, error) { return tx.DeleteSession(ctx, "acme", "s2") }) {
		t.Error("DeleteSession(s2) = false")
	}
	_, err = getToken(t, s, "h5")
	wantNotFound(t, "token of a deleted session", err)

	insertTokens(t, s,
		tok("e1", domain.TokenAccess, "", "", "x", -time.Minute),
		tok("e2", domain.TokenAccess, "", "", "x", -2*time.Minute),
		tok("e3", domain.TokenAccess, "", "", "x", 0),
		tok("live", domain.TokenAccess, "", "", "x", time.Second))
	expire := func(limit int) int {
		return write(t, s, func(tx store.Tx) (int, error) { return tx.DeleteExpiredTokens(ctx, base, limit) })
	}
	if n := expire(2); n != 2 {
		t.Errorf("DeleteExpiredTokens(limit 2) = %d, want 2", n)
	}
	if n := expire(100); n != 2 {
		t.Errorf("DeleteExpiredTokens = %d, want the 2 left (of h6, e1, e2, e3)", n)
	}
	if n := expire(100); n != 0 {
		t.Errorf("DeleteExpiredTokens again = %d, want 0", n)
	}
	for _, h := range []string{"h6", "e1", "e2", "e3"} {
		_, err := getToken(t, s, h)
		wantNotFound(t, "expired token "+h, err)
	}
	if _, err := getToken(t, s, "live"); err != nil {
		t.Errorf("live token after DeleteExpiredTokens: %v", err)
	}
}
