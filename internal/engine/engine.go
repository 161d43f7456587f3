package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"math"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/geoip"
	"github.com/leasehold/leasehold/internal/store"
)

// Metrics receives what the engine decided, counted one by one: an Observer of the
// engine's events (events.go) feeds it, after the transaction committed, on the goroutine
// that ran it. Implementations must be cheap and safe for concurrent use.
type Metrics interface {
	// OnGrant is called for every lease granted or renewed.
	OnGrant(tenant, licenseID, item string, renewal, overage bool)
	// OnDeny is called for every consumption refused with a license error.
	OnDeny(tenant, item string, code domain.ErrorCode)
	// OnRelease is called when a lease ends: event is domain.EventRelease, EventEnd or EventExpire.
	OnRelease(tenant, licenseID, event string)
}

// Options configure an Engine. The zero value is usable.
type Options struct {
	// Geo places client addresses for models with `countries`; nil means no database, so
	// such models answer unresolvedGeolocation.
	Geo     geoip.Locator
	Metrics Metrics
	// Observers receive every decision after its commit (Event), beside Metrics.
	Observers []Observer
	// TxObservers receive every decision inside its transaction, before commit.
	TxObservers []TxObserver
	Logger      *slog.Logger
	// HeartbeatPeriod is how often Run beats and sweeps (default 5s). Start treats the store
	// as unattended when no other process beat for twice this long.
	HeartbeatPeriod time.Duration
	// QueuePoll is how often a queued request retries on its own, to see seats freed by other
	// processes or by expiry (default 75ms).
	QueuePoll time.Duration
	// SweepBatch bounds the work of one Sweep (default 500 leases).
	SweepBatch int
}

// Engine decides license consumption. It is safe for concurrent use.
type Engine struct {
	st   store.Store
	cat  *catalog.Cache
	opts Options
	log  *slog.Logger

	observers []Observer

	mu       sync.Mutex
	compiled map[string]*compiled // by tenant

	q *queue
	// full: licenses recently refused for want of a seat (refusals without the lock).
	full fullLicenses
	// drained is closed by Drain: every wait for a seat ends at once.
	drained   chan struct{}
	drainOnce sync.Once
}

// New returns an Engine over st, reading the configurable objects through cat.
func New(st store.Store, cat *catalog.Cache, opts Options) *Engine {
	if opts.HeartbeatPeriod <= 0 {
		opts.HeartbeatPeriod = 5 * time.Second
	}
	if opts.QueuePoll <= 0 {
		opts.QueuePoll = 75 * time.Millisecond
	}
	if opts.SweepBatch <= 0 {
		opts.SweepBatch = 500
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	observers := append([]Observer(nil), opts.Observers...)
	if opts.Metrics != nil {
		observers = append(observers, metricsObserver{opts.Metrics})
	}
	return &Engine{st: st, cat: cat, opts: opts, log: log, observers: observers, compiled: map[string]*compiled{}, q: newQueue(), drained: make(chan struct{})}
}

// compiledModel is a license model with its constraints parsed once per catalog version.
type compiledModel struct {
	m          *domain.LicenseModel
	constraint *semver.Constraints
	versionErr error
	prefixes   []netip.Prefix
	countries  map[string]bool
}

type compiled struct {
	version int64
	models  map[string]*compiledModel
}

var defaultModel = compileModel(func() *domain.LicenseModel { m := domain.DefaultLicenseModel(); return &m }(), nil)

func compileModel(m *domain.LicenseModel, log *slog.Logger) *compiledModel {
	cm := &compiledModel{m: m}
	if m.Version != "" {
		cm.constraint, cm.versionErr = semver.NewConstraint(m.Version)
		if cm.versionErr != nil && log != nil {
			log.Warn("license model has an invalid version constraint; every version is refused",
				"model", m.Name, "version", m.Version, "err", cm.versionErr)
		}
	}
	for _, r := range m.IPRanges {
		p, err := netip.ParsePrefix(strings.TrimSpace(r))
		if err != nil {
			// A bare address is a one-address range.
			a, aerr := netip.ParseAddr(strings.TrimSpace(r))
			if aerr != nil {
				if log != nil {
					log.Warn("license model has an invalid ip range; ignored", "model", m.Name, "range", r)
				}
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		cm.prefixes = append(cm.prefixes, p.Masked())
	}
	if len(m.Countries) > 0 {
		cm.countries = map[string]bool{}
		for _, c := range m.Countries {
			cm.countries[strings.ToUpper(strings.TrimSpace(c))] = true
		}
	}
	return cm
}

// compiledFor returns the compiled models of snap, compiling them when the tenant's catalog
// version moved.
func (e *Engine) compiledFor(tenant string, snap *catalog.Snapshot) *compiled {
	e.mu.Lock()
	c := e.compiled[tenant]
	e.mu.Unlock()
	if c != nil && c.version == snap.Version {
		return c
	}
	c = &compiled{version: snap.Version, models: make(map[string]*compiledModel, len(snap.Models))}
	for name, m := range snap.Models {
		c.models[name] = compileModel(m, e.log)
	}
	e.mu.Lock()
	if old := e.compiled[tenant]; old == nil || old.version <= c.version {
		e.compiled[tenant] = c
	}
	e.mu.Unlock()
	return c
}

// model returns the compiled model of lic. A license naming a missing model (the config
// validator refuses that, so only a concurrent admin edit can cause it) gets the defaults.
func (c *compiled) model(lic *domain.License) *compiledModel {
	if cm := c.models[lic.Model]; cm != nil {
		return cm
	}
	return defaultModel
}

// SeatKey is the seat key of license licenseID for anchor values given in the model's
// anchor order as name=value pairs.
func SeatKey(licenseID string, pairs ...string) string {
	var buf [256]byte
	b := append(buf[:0], licenseID...)
	for _, p := range pairs {
		// NUL cannot occur in a name or a parameter value, so keys cannot collide by
		// shifting characters between fields.
		b = append(append(b, 0), p...)
	}
	return hashKey(b)
}

// SessionKey is the session key of a seat key, an item and a process id.
func SessionKey(seatKey, item, process string) string {
	var buf [256]byte
	b := append(buf[:0], seatKey...)
	b = append(append(b, 0), item...)
	b = append(append(b, 0), process...)
	return hashKey(b)
}

// hashKey is the hex SHA-256 of b: one allocation (the string), since every request
// computes two keys.
func hashKey(b []byte) string {
	sum := sha256.Sum256(b)
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], sum[:])
	return string(out[:])
}

// anchorKeys computes the seat and session keys of req on lic; missing names the first
// anchor the request lacks. The seat key hashes what SeatKey(lic.ID, "anchor=value", …)
// does, built in place.
func anchorKeys(lic *domain.License, m *domain.LicenseModel, req *Request, item string) (seatKey, sessKey, missing string) {
	var buf [256]byte
	b := append(buf[:0], lic.ID...)
	for _, a := range m.Anchors {
		var v string
		switch a {
		case domain.AnchorUser:
			v = req.Caller.User
		case domain.AnchorClient:
			v = req.Caller.Client
		case domain.AnchorHW:
			v = req.HW
		case domain.AnchorProcess:
			v = req.Process
		case domain.AnchorVersion:
			v = req.Version
		default:
			continue // the config validator refuses unknown anchors
		}
		if v == "" {
			return "", "", a
		}
		b = append(append(append(append(b, 0), a...), '='), v...)
	}
	seatKey = hashKey(b)
	return seatKey, SessionKey(seatKey, item, req.Process), ""
}

// seatCap is floor(seats × overage); an overage below 1 is taken as 1.
func seatCap(lic *domain.License, m *domain.LicenseModel) int {
	o := m.Overage
	if o < 1 || math.IsNaN(o) || math.IsInf(o, 0) {
		o = 1
	}
	// The epsilon keeps 10 × 1.1 from flooring to 10 through float error.
	return int(math.Floor(float64(lic.Seats)*o + 1e-9))
}

func visible(lic *domain.License, c Caller) bool {
	return (lic.Owner.User != "" && lic.Owner.User == c.User) ||
		(lic.Owner.Organization != "" && lic.Owner.Organization == c.Organization)
}

func (f OwnerFilter) zero() bool { return f == OwnerFilter{} }

func (f OwnerFilter) match(lic *domain.License) bool {
	return (f.OwnerOrganizationID == "" || lic.Owner.Organization == f.OwnerOrganizationID) &&
		(f.OwnerUserID == "" || lic.Owner.User == f.OwnerUserID) &&
		(f.EntitlementID == "" || lic.Entitlement == f.EntitlementID) &&
		(f.LicenseID == "" || lic.ID == f.LicenseID)
}

// candidates are the licenses covering item that the caller may see, narrowed by the owner
// filters, in license id order.
func candidates(snap *catalog.Snapshot, req *Request, item ItemRequest) []*domain.License {
	f := item.Filter
	if f.zero() {
		f = req.Filter
	}
	var out []*domain.License
	for _, l := range snap.LicensesFor(item.Name) {
		if visible(l, req.Caller) && f.match(l) {
			out = append(out, l)
		}
	}
	return out
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

func maxTime(ts ...time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if t.After(m) {
			m = t
		}
	}
	return m
}

func notFound(err error) bool { return errors.Is(err, domain.ErrNotFound) }

// findLease is FindLease with "not found" as nil.
func findLease(ctx context.Context, tx store.Tx, tenant, id string) (*domain.Lease, error) {
	l, err := tx.FindLease(ctx, tenant, id)
	if notFound(err) {
		return nil, nil
	}
	return l, err
}

func getSeat(ctx context.Context, tx store.Tx, tenant, licenseID, key string) (*domain.Seat, error) {
	s, err := tx.GetSeat(ctx, tenant, licenseID, key)
	if notFound(err) {
		return nil, nil
	}
	return s, err
}

func leaseBySessionKey(ctx context.Context, tx store.Tx, tenant, licenseID, seatKey, sessKey string) (*domain.Lease, error) {
	l, err := tx.GetLeaseBySessionKey(ctx, tenant, licenseID, seatKey, sessKey)
	if notFound(err) {
		return nil, nil
	}
	return l, err
}

// lockLease is LockLease with "not found" as nil.
func lockLease(ctx context.Context, tx store.Tx, tenant, licenseID, seatKey, sessKey string) (*domain.Lease, error) {
	l, err := tx.LockLease(ctx, tenant, licenseID, seatKey, sessKey)
	if notFound(err) {
		return nil, nil
	}
	return l, err
}

func usage(l *domain.Lease, at time.Time, event string, d time.Duration) domain.UsageEvent {
	return domain.UsageEvent{
		Tenant: l.Tenant, At: at, LicenseID: l.LicenseID, Item: l.Item, User: l.User, Client: l.Client,
		HW: l.HW, HWName: l.HWName, LeaseID: l.ID, Event: event, Overage: l.Overage, Duration: d,
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
