package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/session"
	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/store/postgres"
	"github.com/leasehold/leasehold/internal/store/postgres/pgtest"
	"github.com/leasehold/leasehold/internal/store/sqlite"
)

// TestMetricsCountSessionSeats: the engine reports session seats after commit like
// /authz leases, so a client_credentials grant and a password login are counted as grants,
// a refused login as a denial, a logoff as a release and an administrator's end as an end;
// and nothing a rolled-back transaction decided is counted. On both stores.
func TestMetricsCountSessionSeats(t *testing.T) {
	stores := map[string]func(t *testing.T) store.Store{
		"sqlite": func(t *testing.T) store.Store {
			st, err := sqlite.Open(filepath.Join(t.TempDir(), "leasehold.db"))
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
		"postgres": func(t *testing.T) store.Store {
			dsn := pgtest.FreshDatabase(t, "leasehold_metrics_")
			st, err := postgres.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			return st
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			t.Cleanup(func() { st.Close() })
			testMetricsCountSessionSeats(t, st)
		})
	}
}

func testMetricsCountSessionSeats(t *testing.T, st store.Store) {
	ctx := context.Background()
	const ten = "acme"
	put := func(tenant string, kind domain.Kind, id string, v any) {
		t.Helper()
		spec, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Update(ctx, func(tx store.Tx) error {
			return tx.PutObject(ctx, store.Object{Tenant: tenant, Kind: kind, ID: id, Spec: spec})
		}); err != nil {
			t.Fatal(err)
		}
	}
	policy := domain.DefaultSessionPolicy()
	policy.Item = "App"
	put("", domain.KindTenant, ten, domain.Tenant{Name: ten, Session: policy})
	put(ten, domain.KindOrganization, "org-1", domain.Organization{ID: "org-1"})
	for _, u := range []string{"alice", "bob", "carol"} {
		put(ten, domain.KindUser, u, domain.User{Username: u, PasswordHash: "x", Organization: "org-1", Enabled: true})
	}
	put(ten, domain.KindClient, "conf", domain.Client{ClientID: "conf", ClientSecretHash: "x", User: "alice", Enabled: true,
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"all"}})
	put(ten, domain.KindProduct, "App", domain.Product{Name: "App"})
	m := domain.DefaultLicenseModel()
	m.Name, m.Anchors, m.Linger = "seat", []string{"user"}, domain.Duration(time.Minute)
	put(ten, domain.KindModel, "seat", m)
	put(ten, domain.KindLicense, "L1", domain.License{ID: "L1", Product: "App", Model: "seat", Seats: 2,
		Owner: domain.Owner{Organization: "org-1"}, Active: true})

	cat := catalog.New(st)
	met := NewMetrics(nil)
	eng := engine.New(st, cat, engine.Options{Metrics: met})
	sessions := session.NewManager(st, cat, eng)
	snap, err := cat.Get(ctx, ten)
	if err != nil {
		t.Fatal(err)
	}
	count := func(name string, labels ...string) float64 {
		t.Helper()
		return counterValue(t, met, name, labels...)
	}
	grants := func() float64 { return count("leasehold_license_grants_total", "tenant", ten) }
	want := func(what string, got, want float64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}

	// A client_credentials grant (alice's seat) and a password login (bob's).
	cc, err := sessions.ClientCredentials(ctx, ten, snap.Clients["conf"], []string{"all"}, "", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	want("grants after a client_credentials grant", grants(), 1)
	bob, err := sessions.Login(ctx, ten, snap.Users["bob"], session.LoginOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want("grants after a password login", grants(), 2)

	// Both seats are held: carol's login is refused.
	_, err = sessions.Login(ctx, ten, snap.Users["carol"], session.LoginOptions{})
	var se *session.SeatError
	if !errors.As(err, &se) {
		t.Fatalf("carol's login = %v, want a SeatError", err)
	}
	want("grants after a refused login", grants(), 2)
	// The refusal itself is counted, though its transaction rolled back.
	want("denials after a refused login", count("leasehold_license_denials_total", "tenant", ten, "code", string(domain.CodeQuotaExceeded)), 1)

	// A logoff releases bob's seat (it lingers), an administrator's end ends alice's.
	if ended, err := sessions.End(ctx, ten, bob.Session.ID, true); err != nil || !ended {
		t.Fatalf("logoff = %v, %v", ended, err)
	}
	want("releases after a logoff", count("leasehold_license_releases_total", "tenant", ten, "event", domain.EventRelease), 1)
	if res, err := sessions.EndLease(ctx, ten, cc.Session.LeaseRoot, false); err != nil || !res.Freed {
		t.Fatalf("admin end of the client's seat lease = %+v, %v", res, err)
	}
	want("ends after an administrator's end", count("leasehold_license_releases_total", "tenant", ten, "event", domain.EventEnd), 1)

	// A seat granted in a transaction that then rolls back is never reported.
	before := grants()
	errLater := errors.New("a later step of the transaction failed")
	err = st.Update(ctx, func(tx store.Tx) error {
		g, err := eng.TakeSessionSeat(ctx, tx, snap, engine.SessionSeat{
			Tenant: ten, SessionID: "rolled-back", Caller: engine.Caller{User: "carol", Organization: "org-1", Licensed: true},
			Device: "d", Expiry: tx.Now().Add(time.Hour),
		})
		if err != nil {
			return err
		}
		if g.Lease == nil {
			return errors.New("no lease granted")
		}
		return errLater
	})
	if !errors.Is(err, errLater) {
		t.Fatalf("rolled-back Update = %v", err)
	}
	want("grants after a rolled-back grant", grants(), before)
	// The same grant, committed, is counted: the rollback is what kept it out.
	if _, err := sessions.Login(ctx, ten, snap.Users["carol"], session.LoginOptions{}); err != nil {
		t.Fatal(err)
	}
	want("grants after carol's login", grants(), before+1)
}

// counterValue reads a counter of m's registry with the given label pairs (0 when absent).
func counterValue(t *testing.T, m *Metrics, name string, labels ...string) float64 {
	t.Helper()
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, mt := range f.GetMetric() {
			have := map[string]string{}
			for _, lp := range mt.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metrics
				}
			}
			return mt.GetCounter().GetValue()
		}
	}
	return 0
}
