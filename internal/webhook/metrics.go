package webhook

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/leasehold/leasehold/internal/store"
)

// Metrics are the webhooks' Prometheus metrics: events written by type, delivery
// attempts by outcome, and the queue depth (pending rows of every process, read from the
// store when scraped).
type Metrics struct {
	events     *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	dropped    prometheus.Counter
}

// NewMetrics registers the metrics on reg (nil: a registry of their own).
func NewMetrics(reg *prometheus.Registry) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leasehold_webhook_events_total", Help: "Webhook events written to the outbox, by type (one per event, whatever the number of webhooks).",
		}, []string{"type"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leasehold_webhook_deliveries_total", Help: "Webhook delivery attempts, by outcome (delivered, retry, failed, removed).",
		}, []string{"outcome"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "leasehold_webhook_denials_dropped_total", Help: "lease.denied events dropped because the writer's queue was full (best effort).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.events, m.deliveries, m.dropped)
	}
	return m
}

func (m *Metrics) event(typ string) { m.events.WithLabelValues(typ).Inc() }
func (m *Metrics) droppedDenial()   { m.dropped.Inc() }

// queueDepth reports the pending deliveries when scraped.
type queueDepth struct {
	st   store.Store
	desc *prometheus.Desc
}

// RegisterQueueDepth adds leasehold_webhook_queue_depth to reg, read from st when scraped.
func RegisterQueueDepth(reg *prometheus.Registry, st store.Store) {
	reg.MustRegister(&queueDepth{st: st, desc: prometheus.NewDesc("leasehold_webhook_queue_depth",
		"Webhook deliveries pending (not yet delivered nor failed), in every process.", nil, nil)})
}

func (q *queueDepth) Describe(ch chan<- *prometheus.Desc) { ch <- q.desc }

func (q *queueDepth) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := store.Read(ctx, q.st, func(tx store.Tx) (int, error) {
		return tx.CountPendingWebhookDeliveries(ctx)
	})
	if err != nil {
		ch <- prometheus.NewInvalidMetric(q.desc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue, float64(n))
}
