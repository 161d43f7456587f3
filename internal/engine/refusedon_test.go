package engine_test

import (
	"sync"
	"testing"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
)

type collect struct {
	mu     sync.Mutex
	events []engine.Event
}

func (c *collect) Observe(evs []engine.Event) {
	c.mu.Lock()
	c.events = append(c.events, evs...)
	c.mu.Unlock()
}

// TestRefusedOnAndDenyEvents: a refusal names the license whose error it reports (the
// candidate that passed the most checks), or none when no license covered the item, and
// its deny event carries that license (the dashboard counts refusals per license with it).
func TestRefusedOnAndDenyEvents(t *testing.T) {
	var c collect
	h := newHarness(t, func(o *engine.Options) { o.Observers = append(o.Observers, &c) })
	h.model(model("m", nil))
	h.license(license("L1", "m", 1, nil))
	h.license(license("L2", "m", 1, func(l *domain.License) { l.Active = false }))
	h.grant(req("alice", "FeatA"))
	r := h.one(req("bob", "FeatA"))
	if r.Err == nil || r.Err.Code != domain.CodeQuotaExceeded || r.RefusedOn != "L1" {
		t.Errorf("quota refusal: code %v, RefusedOn %q, want licenseQuotaExceeded on L1", r.Err, r.RefusedOn)
	}
	if r := h.one(req("bob", "Nothing")); r.Err == nil || r.RefusedOn != "" {
		t.Errorf("noLicenseFound: %v, RefusedOn %q, want none", r.Err, r.RefusedOn)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var kinds, lics []string
	for _, ev := range c.events {
		kinds, lics = append(kinds, ev.Kind), append(lics, ev.LicenseID)
	}
	if len(c.events) != 3 || kinds[0] != domain.EventGrant || kinds[1] != domain.EventDeny || lics[1] != "L1" ||
		kinds[2] != domain.EventDeny || lics[2] != "" {
		t.Errorf("events: kinds %v licenses %v", kinds, lics)
	}
}
