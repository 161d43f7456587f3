package engine

import (
	"sync"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
)

// fullFor is how long a license stays "recently full" after a refusal for want of a seat.
const fullFor = time.Second

// fullLicenses remembers, per process, the licenses a decision refused for want of a seat
// in the last fullFor, so that the next requests for a seat there are decided without the
// license lock first (attempt.refuseUnlocked). It is a hint: a stale entry costs one
// read-only decision, never a wrong answer.
type fullLicenses struct {
	mu sync.Mutex
	at map[[2]string]time.Time // by tenant, license: the last refusal
}

func (f *fullLicenses) recent(tenant, licenseID string, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	at, ok := f.at[[2]string{tenant, licenseID}]
	return ok && now.Sub(at) < fullFor
}

// note records what a decision on the license answered: a refusal for want of a seat
// marks it full, anything granted unmarks it.
func (f *fullLicenses) note(tenant, licenseID string, now time.Time, o *outcome) {
	full := o.err != nil && o.err.Code == domain.CodeQuotaExceeded
	if !full && o.err != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k := [2]string{tenant, licenseID}
	if !full {
		delete(f.at, k)
		return
	}
	if f.at == nil {
		f.at = map[[2]string]time.Time{}
	}
	// Entries of licenses no longer refused are dropped as others are written, so the
	// map holds about the licenses full now.
	if len(f.at) >= 1024 {
		for k, at := range f.at {
			if now.Sub(at) >= fullFor {
				delete(f.at, k)
			}
		}
	}
	f.at[k] = now
}
