package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/store/postgres"
	"github.com/leasehold/leasehold/internal/store/postgres/pgtest"
	"github.com/leasehold/leasehold/internal/store/sqlite"
)

// TestRenewWithoutLicenseLock hammers one license with renewals (which run under their
// lease lock alone on PostgreSQL), some of them shortening, releases and grants of leases
// sharing seats (two items per anchor), and sweeps, from many goroutines at once; then
// every live lease must have its seat held at least until its exp, and the license's seat
// counter must cover its seats. On SQLite, and on PostgreSQL when LEASEHOLD_TEST_POSTGRES
// is set.
func TestRenewWithoutLicenseLock(t *testing.T) {
	for _, be := range []struct {
		name string
		open func(t *testing.T) store.Store
	}{
		{"sqlite", func(t *testing.T) store.Store {
			st, err := sqlite.Open(filepath.Join(t.TempDir(), "leasehold.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		}},
		{"postgres", func(t *testing.T) store.Store { return openPostgres(t) }},
	} {
		t.Run(be.name, func(t *testing.T) { hammer(t, be.open(t)) })
	}
}

func hammer(t *testing.T, st store.Store) {
	ctx := context.Background()
	put := func(tenant string, kind domain.Kind, id string, v any) {
		if err := putObject(ctx, st, tenant, kind, id, v); err != nil {
			t.Fatal(err)
		}
	}
	put("", domain.KindTenant, "acme", domain.Tenant{Name: "acme", Session: domain.DefaultSessionPolicy()})
	put("acme", domain.KindOrganization, "org-1", domain.Organization{ID: "org-1", Name: "Acme"})
	put("acme", domain.KindUser, "alice", domain.User{Username: "alice", Organization: "org-1", Enabled: true})
	put("acme", domain.KindProduct, "App", domain.Product{Name: "App", Items: []string{"FeatA", "FeatB"}})
	m := domain.DefaultLicenseModel()
	m.Name, m.Anchors, m.Linger, m.SessionsPerSeat = "m", []string{"user", "hw"}, domain.Duration(time.Minute), 2
	put("acme", domain.KindModel, m.Name, m)
	put("acme", domain.KindLicense, "L1", domain.License{ID: "L1", Product: "App", Model: "m", Seats: 1000,
		Owner: domain.Owner{Organization: "org-1"}, Active: true})
	eng := engine.New(st, catalog.New(st), engine.Options{})
	caller := engine.Caller{User: "alice", Organization: "org-1", Licensed: true}
	request := func(hw, item string, d time.Duration) engine.Request {
		return engine.Request{Tenant: "acme", Caller: caller, Items: []engine.ItemRequest{{Name: item}},
			DoConsume: true, HW: hw, ConsumeDuration: d}
	}

	deadline := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(g), 1))
			for time.Now().Before(deadline) {
				hw := fmt.Sprint("hw-", rnd.IntN(3))
				item := []string{"FeatA", "FeatB"}[rnd.IntN(2)]
				var err error
				switch p := rnd.IntN(100); {
				case p < 75: // grant or renew, half of them shorter than the last
					d := []time.Duration{time.Minute, 10 * time.Minute}[rnd.IntN(2)]
					var res []engine.Result
					if res, err = eng.Consume(ctx, request(hw, item, d)); err == nil && res[0].Err != nil {
						err = res[0].Err
					}
				case p < 95:
					var res []engine.Result
					if res, err = eng.Consume(ctx, request(hw, item, time.Minute)); err == nil && res[0].Lease != nil {
						_, err = eng.Release(ctx, "acme", caller, []string{res[0].Lease.ID})
					}
				default:
					_, err = eng.Sweep(ctx)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	err := st.View(ctx, func(tx store.Tx) error {
		now := tx.Now()
		leases, err := tx.ListLeases(ctx, "acme", store.LeaseFilter{}, now)
		if err != nil {
			return err
		}
		for _, l := range leases {
			seat, err := tx.GetSeat(ctx, "acme", l.LicenseID, l.SeatKey)
			if errors.Is(err, domain.ErrNotFound) {
				return fmt.Errorf("live lease %s has no seat", l.ID)
			} else if err != nil {
				return err
			}
			if seat.HeldUntil.Before(l.ExpiresAt) {
				return fmt.Errorf("seat of live lease %s held until %v, before the lease's exp %v", l.ID, seat.HeldUntil, l.ExpiresAt)
			}
		}
		ls, err := tx.GetLicenseState(ctx, "acme", "L1")
		if err != nil {
			return err
		}
		live, err := tx.CountLiveSeats(ctx, "acme", "L1", now)
		if err != nil {
			return err
		}
		if ls.SeatsHeld < live || live > 3 {
			return fmt.Errorf("seats_held %d, live seats %d (3 anchors)", ls.SeatsHeld, live)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func putObject(ctx context.Context, st store.Store, tenant string, kind domain.Kind, id string, v any) error {
	spec, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return st.Update(ctx, func(tx store.Tx) error {
		return tx.PutObject(ctx, store.Object{Tenant: tenant, Kind: kind, ID: id, Spec: spec})
	})
}

// TestFullLicenseRefusesWithoutItsLock: on PostgreSQL, once a license has refused for want
// of a seat, the next refusals there are answered while another transaction holds its
// lock; a seat freed since is still granted (the hint never refuses by itself).
func TestFullLicenseRefusesWithoutItsLock(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.FreshDatabase(t, "leasehold_engine_")
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	put := func(tenant string, kind domain.Kind, id string, v any) {
		if err := putObject(ctx, st, tenant, kind, id, v); err != nil {
			t.Fatal(err)
		}
	}
	put("", domain.KindTenant, "acme", domain.Tenant{Name: "acme", Session: domain.DefaultSessionPolicy()})
	put("acme", domain.KindOrganization, "org-1", domain.Organization{ID: "org-1", Name: "Acme"})
	for _, u := range []string{"alice", "bob", "carol"} {
		put("acme", domain.KindUser, u, domain.User{Username: u, Organization: "org-1", Enabled: true})
	}
	put("acme", domain.KindProduct, "App", domain.Product{Name: "App", Items: []string{"FeatA"}})
	m := domain.DefaultLicenseModel()
	m.Name, m.Anchors, m.Linger = "m", []string{"user"}, 0
	put("acme", domain.KindModel, m.Name, m)
	put("acme", domain.KindLicense, "L1", domain.License{ID: "L1", Product: "App", Model: "m", Seats: 1,
		Owner: domain.Owner{Organization: "org-1"}, Active: true})
	eng := engine.New(st, catalog.New(st), engine.Options{})
	consume := func(ctx context.Context, user string) (engine.Result, error) {
		res, err := eng.Consume(ctx, engine.Request{Tenant: "acme", DoConsume: true,
			Caller: engine.Caller{User: user, Organization: "org-1", Licensed: true}, Items: []engine.ItemRequest{{Name: "FeatA"}}})
		if err != nil {
			return engine.Result{}, err
		}
		return res[0], nil
	}
	held, err := consume(ctx, "alice")
	if err != nil || held.Lease == nil {
		t.Fatalf("alice: %+v %v", held, err)
	}
	if r, err := consume(ctx, "bob"); err != nil || r.Err == nil || r.Err.Code != domain.CodeQuotaExceeded {
		t.Fatalf("bob, license full: %+v %v", r, err)
	}

	// Another connection holds the license's lock, as a long decision would.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	lock, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, `SELECT 1 FROM license_state WHERE tenant = 'acme' AND license_id = 'L1' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	wait, cancel := context.WithTimeout(ctx, 3*time.Second)
	r, err := consume(wait, "carol")
	cancel()
	if err != nil || r.Err == nil || r.Err.Code != domain.CodeQuotaExceeded {
		t.Fatalf("carol, license full and locked elsewhere: %+v %v; want a refusal without waiting for the lock", r, err)
	}
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	if _, err := eng.Release(ctx, "acme", engine.Caller{User: "alice", Organization: "org-1", Licensed: true}, []string{held.Lease.ID}); err != nil {
		t.Fatal(err)
	}
	if r, err := consume(ctx, "carol"); err != nil || r.Lease == nil {
		t.Fatalf("carol, a seat free again: %+v %v", r, err)
	}
}
