package gateway

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateways' own series, per gateway and route (SPEC section 8).
type metrics struct {
	requests *prometheus.CounterVec
	refusals *prometheus.CounterVec
	upstream *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leasehold_gateway_requests_total",
			Help: "Requests through a gateway, by tenant, gateway, route and status.",
		}, []string{"tenant", "gateway", "route", "code"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leasehold_gateway_license_refusals_total",
			Help: "Requests a gateway refused for want of a license, by license error code.",
		}, []string{"tenant", "gateway", "route", "license_error"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "leasehold_gateway_upstream_seconds",
			Help:    "Time from handing a request to the upstream to its response headers.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 60},
		}, []string{"tenant", "gateway", "route"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.refusals, m.upstream)
	}
	return m
}

func (m *metrics) observe(g *gateway, out *outcome, rec *recorder) {
	m.requests.WithLabelValues(g.tenant, g.spec.Name, out.route, strconv.Itoa(rec.status)).Inc()
	if out.refusal != "" {
		m.refusals.WithLabelValues(g.tenant, g.spec.Name, out.route, string(out.refusal)).Inc()
	}
	if !out.proxied.IsZero() && !rec.written.IsZero() && rec.written.After(out.proxied) {
		m.upstream.WithLabelValues(g.tenant, g.spec.Name, out.route).Observe(rec.written.Sub(out.proxied).Seconds())
	}
}
