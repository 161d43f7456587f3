package engine_test

import (
	"sync"
	"testing"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
)

// TestRefusedOnAndOnResult: a refusal names the license whose error it reports (the
// candidate that passed the most checks), or none when no license covered the item, and
// OnResult sees every result Consume reports (the dashboard counts refusals with it).
func TestRefusedOnAndOnResult(t *testing.T) {
	var mu sync.Mutex
	var seen []engine.Result
	h := newHarness(t, func(o *engine.Options) {
		o.OnResult = func(tenant string, r engine.Result) {
			mu.Lock()
			seen = append(seen, r)
			mu.Unlock()
		}
	})
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
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 || seen[0].Err != nil || seen[1].RefusedOn != "L1" || seen[2].Err == nil {
		t.Errorf("OnResult saw %d results: %+v", len(seen), seen)
	}
}
