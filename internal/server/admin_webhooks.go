package server

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// deliveryView is one row of GET …/webhooks/deliveries (SPEC §9).
type deliveryView struct {
	EventID    string     `json:"event_id"`
	Type       string     `json:"type"`
	Webhook    string     `json:"webhook"`
	URL        string     `json:"url"` // the webhook's current URL ("" once it is removed)
	Status     string     `json:"status"`
	Attempts   int        `json:"attempts"`
	LastStatus int        `json:"last_status,omitempty"`
	LastError  string     `json:"last_error,omitempty"`
	NextTry    *time.Time `json:"next_try,omitempty"` // pending only
	Created    time.Time  `json:"created"`
	Finished   *time.Time `json:"finished,omitempty"`
}

// deliveryList is GET …/webhooks/deliveries' answer.
type deliveryList struct {
	Deliveries []deliveryView `json:"deliveries"`
}

// deliveriesRetried is POST …/webhooks/deliveries/{event}/retry's answer: how many of the
// event's deliveries (one per webhook) are pending again.
type deliveriesRetried struct {
	OK         bool `json:"ok"`
	Deliveries int  `json:"deliveries"`
}

func (s *Server) adminListDeliveries(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			writeError(w, http.StatusBadRequest, "invalid_request", "limit must be 1 to 10000")
			return
		}
		limit = n
	}
	list, err := store.Read(r.Context(), s.deps.Store, func(tx store.Tx) ([]store.WebhookDelivery, error) {
		return tx.ListWebhookDeliveries(r.Context(), snap.Tenant.Name, limit)
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	out := make([]deliveryView, 0, len(list))
	for _, d := range list {
		v := deliveryView{EventID: d.EventID, Type: d.Type, Webhook: d.Webhook, Status: d.Status, Attempts: d.Attempts,
			LastStatus: d.LastStatus, LastError: d.LastError, Created: d.Created}
		if wh := snap.Webhooks[d.Webhook]; wh != nil {
			v.URL = wh.URL
		}
		if d.Status == store.WebhookPending {
			next := d.NextTry
			v.NextTry = &next
		}
		if !d.FinishedAt.IsZero() {
			f := d.FinishedAt
			v.Finished = &f
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, deliveryList{Deliveries: out})
}

// adminRetryDelivery makes an event's deliveries pending and due now, delivered or failed
// alike, retried for the longest retry_for of the tenant's webhooks.
func (s *Server) adminRetryDelivery(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	id := r.PathValue("event")
	if len(id) > 64 {
		writeError(w, http.StatusNotFound, "not_found", "no such event")
		return
	}
	retryFor := domain.DefaultWebhookRetry
	for _, wh := range snap.Webhooks {
		retryFor = max(retryFor, wh.RetryFor.D())
	}
	n, err := store.Write(r.Context(), s.deps.Store, func(tx store.Tx) (int, error) {
		return tx.RetryWebhookDelivery(r.Context(), snap.Tenant.Name, id, tx.Now(), tx.Now().Add(retryFor))
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if n == 0 {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no delivery of event %s", id))
		return
	}
	writeJSON(w, http.StatusOK, deliveriesRetried{OK: true, Deliveries: n})
}
