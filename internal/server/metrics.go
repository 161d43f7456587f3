package server

import (
	"context"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/store"
)

// Metrics is the Prometheus instrumentation. It also receives the engine's decisions
// (it implements engine.Metrics, fed by the engine's post-commit events), so grants,
// denials and ends are counted wherever they happen: /authz, sessions of every kind, the
// admin API, the sweeper.
type Metrics struct {
	reg      *prometheus.Registry
	latency  *prometheus.HistogramVec
	grants   *prometheus.CounterVec
	denials  *prometheus.CounterVec
	releases *prometheus.CounterVec

	// observers caches the latency histogram's child per route and status: the vector's
	// own lookup hashes the label values (and the status must first be formatted) on every
	// request. Copy on write, as the set stops growing once each route has answered.
	observers  atomic.Pointer[map[routeStatus]prometheus.Observer]
	observerMu sync.Mutex
}

type routeStatus struct {
	method, route string
	status        int
}

// NewMetrics registers Leasehold's metrics on reg (nil: a new registry). Seats held are read
// from the store at scrape time once the server is built.
func NewMetrics(reg *prometheus.Registry) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		reg: reg,
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "leasehold_http_request_duration_seconds",
			Help:    "HTTP request latency by method, route and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"method", "route", "code"}),
		grants: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leasehold_license_grants_total",
			Help: "License leases granted or renewed, by tenant.",
		}, []string{"tenant"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leasehold_license_denials_total",
			Help: "License checks refused, by error code.",
		}, []string{"tenant", "code"}),
		releases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leasehold_license_releases_total",
			Help: "Leases ended, by tenant and how (release, end, expire).",
		}, []string{"tenant", "event"}),
	}
	reg.MustRegister(m.latency, m.grants, m.denials, m.releases)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where the other HTTP fronts (the gateways) register their metrics, so that
// /metrics serves them too.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func (m *Metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *Metrics) observe(method, route string, status int, d time.Duration) {
	m.observer(method, route, status).Observe(d.Seconds())
}

// observer's method label is one of the methods the server answers, or "other": a client
// must not be able to grow the label set.
func (m *Metrics) observer(method, route string, status int) prometheus.Observer {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		method = "other"
	}
	k := routeStatus{method, route, status}
	if cur := m.observers.Load(); cur != nil {
		if o, ok := (*cur)[k]; ok {
			return o
		}
	}
	m.observerMu.Lock()
	defer m.observerMu.Unlock()
	var next map[routeStatus]prometheus.Observer
	if cur := m.observers.Load(); cur != nil {
		if o, ok := (*cur)[k]; ok {
			return o
		}
		next = maps.Clone(*cur)
	} else {
		next = map[routeStatus]prometheus.Observer{}
	}
	o := m.latency.WithLabelValues(method, route, strconv.Itoa(status))
	next[k] = o
	m.observers.Store(&next)
	return o
}

func (m *Metrics) OnGrant(tenant, licenseID, item string, renewal, overage bool) {
	m.grants.WithLabelValues(tenant).Inc()
}

func (m *Metrics) OnDeny(tenant, item string, code domain.ErrorCode) {
	m.denials.WithLabelValues(tenant, string(code)).Inc()
}

func (m *Metrics) OnRelease(tenant, licenseID, event string) {
	m.releases.WithLabelValues(tenant, event).Inc()
}

var _ engine.Metrics = (*Metrics)(nil)

// seatCollector reports the seats held per license at scrape time, read from the store so
// that every process of a cluster reports the same truth.
type seatCollector struct{ deps Deps }

var seatsDesc = prometheus.NewDesc("leasehold_seats_held", "Seats held now (live or lingering) per license.",
	[]string{"tenant", "license"}, nil)
var seatsMaxDesc = prometheus.NewDesc("leasehold_seats", "Seats a license grants.",
	[]string{"tenant", "license"}, nil)

func (c *seatCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- seatsDesc
	ch <- seatsMaxDesc
}

// maxLicensesScraped bounds the work of one scrape.
const maxLicensesScraped = 10000

func (c *seatCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tenants, err := c.deps.Catalog.Tenants(ctx)
	if err != nil {
		return
	}
	n := 0
	for _, t := range tenants {
		snap, err := c.deps.Catalog.Get(ctx, t.Name)
		if err != nil {
			continue
		}
		_ = c.deps.Store.View(ctx, func(tx store.Tx) error {
			now := tx.Now()
			for id, l := range snap.Licenses {
				if n++; n > maxLicensesScraped {
					return nil
				}
				held, err := engine.SeatsUsed(ctx, tx, t.Name, id, now)
				if err != nil {
					return err
				}
				ch <- prometheus.MustNewConstMetric(seatsDesc, prometheus.GaugeValue, float64(held), t.Name, id)
				ch <- prometheus.MustNewConstMetric(seatsMaxDesc, prometheus.GaugeValue, float64(l.Seats), t.Name, id)
			}
			return nil
		})
	}
}
