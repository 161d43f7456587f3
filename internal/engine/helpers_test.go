package engine_test

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
	"github.com/leasehold/leasehold/internal/geoip"
	"github.com/leasehold/leasehold/internal/geoip/geoiptest"
	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/store/sqlite"
)

const tenant = "acme"

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// clock is the store's injected clock; tests move it.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type harness struct {
	t     *testing.T
	ctx   context.Context
	st    store.Store
	cat   *catalog.Cache
	eng   *engine.Engine
	clock *clock
}

type option func(*engine.Options)

func withMetrics(m engine.Metrics) option { return func(o *engine.Options) { o.Metrics = m } }

// withGeo places 10.0.0.0/8 in Finland and 127.0.0.0/8 in the US; nothing else resolves.
func withGeo(t *testing.T) option {
	db, err := geoip.Open(geoiptest.Write(t, map[string]string{"10.0.0.0/8": "FI", "127.0.0.0/8": "US"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return func(o *engine.Options) { o.Geo = db }
}

// newHarness opens a fresh SQLite store (a temp file) with the tenant acme, organization
// org-1, users alice, bob, carol and dave (org-1), and product App {FeatA, FeatB}.
func newHarness(t *testing.T, opts ...option) *harness {
	t.Helper()
	c := &clock{now: t0}
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "leasehold.db"), sqlite.WithClock(c.Now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat := catalog.New(st)
	o := engine.Options{QueuePoll: 20 * time.Millisecond, HeartbeatPeriod: time.Second}
	for _, f := range opts {
		f(&o)
	}
	h := &harness{t: t, ctx: context.Background(), st: st, cat: cat, eng: engine.New(st, cat, o), clock: c}
	h.put("", domain.KindTenant, tenant, domain.Tenant{Name: tenant, Session: domain.DefaultSessionPolicy()})
	h.put(tenant, domain.KindOrganization, "org-1", domain.Organization{ID: "org-1", Name: "Acme"})
	h.put(tenant, domain.KindOrganization, "org-2", domain.Organization{ID: "org-2", Name: "Other"})
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		h.put(tenant, domain.KindUser, u, domain.User{Username: u, Organization: "org-1", Enabled: true})
	}
	h.put(tenant, domain.KindProduct, "App", domain.Product{Name: "App", Items: []string{"FeatA", "FeatB"}})
	return h
}

// put writes one catalog object as its JSON and makes the cache see it at once.
func (h *harness) put(ten string, kind domain.Kind, id string, v any) {
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
	if ten == "" {
		h.cat.Invalidate(id)
	} else {
		h.cat.Invalidate(ten)
	}
}

func (h *harness) model(m domain.LicenseModel) { h.put(tenant, domain.KindModel, m.Name, m) }

func (h *harness) license(l domain.License) { h.put(tenant, domain.KindLicense, l.ID, l) }

// model returns the default model named name, changed by f.
func model(name string, f func(m *domain.LicenseModel)) domain.LicenseModel {
	m := domain.DefaultLicenseModel()
	m.Name = name
	if f != nil {
		f(&m)
	}
	return m
}

// license returns an active license of org-1 for product App.
func license(id, modelName string, seats int, f func(l *domain.License)) domain.License {
	from, until := t0.Add(-24*time.Hour), t0.Add(365*24*time.Hour)
	l := domain.License{
		ID: id, Product: "App", Model: modelName, Seats: seats, Owner: domain.Owner{Organization: "org-1"},
		Entitlement: "ent-1", ValidFrom: &from, ValidUntil: &until, Active: true,
		Properties: map[string]string{"lang": "en"},
	}
	if f != nil {
		f(&l)
	}
	return l
}

// setup writes a model and one license L1 of it with seats seats.
func (h *harness) setup(seats int, f func(m *domain.LicenseModel)) {
	h.model(model("m", f))
	h.license(license("L1", "m", seats, nil))
}

func caller(user string) engine.Caller {
	return engine.Caller{User: user, Organization: "org-1", Licensed: true}
}

// req is a consumption of item by user, changed by the options.
func req(user, item string, opts ...func(*engine.Request)) engine.Request {
	r := engine.Request{
		Tenant: tenant, Caller: caller(user), Items: []engine.ItemRequest{{Name: item}}, DoConsume: true,
		ClientIP: netip.MustParseAddr("127.0.0.1"),
	}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func hw(v string) func(*engine.Request)      { return func(r *engine.Request) { r.HW = v } }
func process(v string) func(*engine.Request) { return func(r *engine.Request) { r.Process = v } }
func leaseID(v string) func(*engine.Request) { return func(r *engine.Request) { r.LeaseID = v } }
func version(v string) func(*engine.Request) { return func(r *engine.Request) { r.Version = v } }
func count(n int64) func(*engine.Request) {
	return func(r *engine.Request) { r.ConsumeCount, r.CountGiven = n, true }
}
func ip(a string) func(*engine.Request) {
	return func(r *engine.Request) { r.ClientIP = netip.MustParseAddr(a) }
}
func queue(d time.Duration) func(*engine.Request) { return func(r *engine.Request) { r.Queue = d } }
func check(r *engine.Request)                     { r.DoConsume = false }
func onLicense(id string) func(*engine.Request) {
	return func(r *engine.Request) { r.Filter.LicenseID = id }
}
func checkout(r *engine.Request) { r.Mode = domain.ModeCheckout }

// one consumes a single-item request and returns its result.
func (h *harness) one(r engine.Request) engine.Result {
	h.t.Helper()
	res, err := h.eng.Consume(h.ctx, r)
	if err != nil {
		h.t.Fatalf("Consume: %v", err)
	}
	if len(res) != 1 {
		h.t.Fatalf("Consume returned %d results, want 1", len(res))
	}
	return res[0]
}

// grant consumes and fails the test unless a lease was granted.
func (h *harness) grant(r engine.Request) *domain.Lease {
	h.t.Helper()
	res := h.one(r)
	if res.Err != nil {
		h.t.Fatalf("%s for %s: refused: %v", r.Items[0].Name, r.Caller.User, res.Err)
	}
	if res.Lease == nil {
		h.t.Fatalf("%s for %s: no lease", r.Items[0].Name, r.Caller.User)
	}
	return res.Lease
}

// refuse consumes and fails the test unless it was refused with code.
func (h *harness) refuse(r engine.Request, code domain.ErrorCode) *domain.LicenseError {
	h.t.Helper()
	res := h.one(r)
	if res.Err == nil {
		h.t.Fatalf("%s for %s: granted (lease %v), want %s", r.Items[0].Name, r.Caller.User, res.Lease != nil, code)
	}
	if res.Err.Code != code {
		h.t.Fatalf("%s for %s: %s (%s), want %s", r.Items[0].Name, r.Caller.User, res.Err.Code, res.Err.Technical, code)
	}
	return res.Err
}

func (h *harness) release(user string, ids ...string) []engine.ReleaseResult {
	h.t.Helper()
	res, err := h.eng.Release(h.ctx, tenant, caller(user), ids)
	if err != nil {
		h.t.Fatalf("Release: %v", err)
	}
	return res
}

func (h *harness) mustRelease(user, id string) {
	h.t.Helper()
	if r := h.release(user, id); r[0].Err != nil {
		h.t.Fatalf("release %s: %v", id, r[0].Err)
	}
}

func (h *harness) state(lic string) domain.LicenseState {
	h.t.Helper()
	var st *domain.LicenseState
	err := h.st.View(h.ctx, func(tx store.Tx) error {
		var err error
		st, err = tx.GetLicenseState(h.ctx, tenant, lic)
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return *st
}

// liveSeats counts the license's live and lingering seat rows, and checks that SeatsUsed
// (the seat counter less the expired rows) says the same.
func (h *harness) liveSeats(lic string) int {
	h.t.Helper()
	var n, used int
	err := h.st.View(h.ctx, func(tx store.Tx) error {
		var err error
		if n, err = tx.CountLiveSeats(h.ctx, tenant, lic, tx.Now()); err != nil {
			return err
		}
		used, err = engine.SeatsUsed(h.ctx, tx, tenant, lic, tx.Now())
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if used != n {
		h.t.Errorf("SeatsUsed(%s) = %d, but %d seat rows are live or lingering", lic, used, n)
	}
	return n
}

func (h *harness) seat(lic, key string) *domain.Seat {
	h.t.Helper()
	var s *domain.Seat
	err := h.st.View(h.ctx, func(tx store.Tx) error {
		var err error
		s, err = tx.GetSeat(h.ctx, tenant, lic, key)
		if errors.Is(err, domain.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		h.t.Fatalf("GetSeat: %v", err)
	}
	return s
}

func (h *harness) leases() []domain.Lease {
	h.t.Helper()
	var ls []domain.Lease
	err := h.st.View(h.ctx, func(tx store.Tx) error {
		var err error
		ls, err = tx.ListLeases(h.ctx, tenant, store.LeaseFilter{}, tx.Now())
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return ls
}

func (h *harness) usage() []domain.UsageEvent {
	h.t.Helper()
	var ev []domain.UsageEvent
	err := h.st.View(h.ctx, func(tx store.Tx) error {
		var err error
		ev, err = tx.ListUsage(h.ctx, tenant, time.Time{}, time.Time{})
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return ev
}

func (h *harness) events(kind string) int {
	n := 0
	for _, e := range h.usage() {
		if e.Event == kind {
			n++
		}
	}
	return n
}
