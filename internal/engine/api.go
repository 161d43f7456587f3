package engine

import (
	"net/netip"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
)

// Caller is who asks: taken from the access token, never from the request parameters.
type Caller struct {
	User         string // user name; for a client token without a user, the client id
	Organization string // the user's organization ("" when none)
	Client       string // OAuth2 client id ("" for password/cookie sessions)
	// Licensed is false when the token carries only free scopes: it may not consume (notAuthorized).
	Licensed bool
}

// ItemRequest is one licensed item of a request with its per-item options (`item=;leaseId=…`).
type ItemRequest struct {
	Name    string
	LeaseID string
	Filter  OwnerFilter
}

// OwnerFilter limits which licenses may be consumed (10Duke owner filters).
type OwnerFilter struct {
	OwnerOrganizationID string
	OwnerUserID         string
	EntitlementID       string
	LicenseID           string
}

// Request is one license consumption (or check) for one or more items.
type Request struct {
	Tenant    string
	Caller    Caller
	Items     []ItemRequest
	DoConsume bool   // false: check only, write nothing
	Mode      string // domain.ModeCache (default) or domain.ModeCheckout
	// ConsumeDuration is the requested lease length (0: the model's maximum).
	ConsumeDuration time.Duration
	// ConsumeCount draws from max_use_count; CountGiven says the parameter was present.
	ConsumeCount int64
	CountGiven   bool
	HW           string
	HWName       string
	Process      string
	ProcessName  string
	Version      string
	LeaseID      string      // applies to every item without its own leaseId
	Filter       OwnerFilter // applies to every item without its own filter
	ClientIP     netip.Addr
	// Queue is how long to wait, first come first served, for a seat to free instead of
	// answering licenseQuotaExceeded at once (0: do not wait).
	Queue time.Duration

	// Session seats. SessionID binds the lease to a session; Expiry (when not zero) is the
	// lease's exact expiry (the session's deadline) instead of the model's online maximum.
	// For a session lease lease_chaining is not enforced (the session knows its lease), a
	// renewal never shortens the lease (several sessions with one session key share it), and
	// use count / use time are not drawn. A session request whose LeaseID names the
	// session's live lease (any id of its chain, e.g. Session.LeaseRoot) extends that lease
	// whatever its anchors are now: a session that reclaimed a seat keeps it.
	SessionID string
	Expiry    time.Time
	// ReclaimSeat, when set, is the seat key of a lingering seat a login token may reclaim
	// (on license ReclaimLicense) instead of the caller's own anchors.
	ReclaimLicense string
	ReclaimSeat    string
}

// Result is the answer for one item: a lease (or, for doConsume=false, the license that
// would be consumed), or a license error.
type Result struct {
	Item    string
	Lease   *domain.Lease   // nil for a check (doConsume=false) or an error
	License *domain.License // the license granted or checked
	Err     *domain.LicenseError
	// Renewed is true when the answer extends (or, within chain_grace, repeats) an existing
	// lease rather than granting a new one.
	Renewed bool
	// RefusedOn is, for a refusal, the license whose error is reported ("" when no license
	// was a candidate), so that usage reports can count the refusal against it.
	RefusedOn string
	// seatsHeld and seatCap are, for a grant that took a new seat, the license's seat
	// counter after it (an upper bound: it may include expired rows) and floor(seats ×
	// overage), for the event (TxObserver: license.exhausted).
	seatsHeld, seatCap int
}

// ReleaseResult is the answer for one lease id of a release.
type ReleaseResult struct {
	ID  string
	Err *domain.LicenseError // nil when released
}
