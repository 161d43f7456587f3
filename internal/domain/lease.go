package domain

import "time"

// Consumption modes (10Duke consumptionMode).
const (
	ModeCache    = "cache"    // online
	ModeCheckout = "checkout" // offline
)

// LicenseState is the mutable, per-license row that serializes every seat decision on that
// license: the store locks it (row lock or single writer) for the length of a grant.
type LicenseState struct {
	Tenant    string
	LicenseID string
	// SeatsHeld counts seat rows of the license, including ones whose HeldUntil has passed
	// but that no sweep has removed yet; the engine reaps those before refusing a seat.
	SeatsHeld int
	UseCount  int64
	UseTime   time.Duration
}

// Seat is one unit of a license's seats, held by an anchor key. While any lease on it is
// live, HeldUntil is the latest lease expiry; after the last lease is released it is the
// end of the linger (Lingering true). A seat whose HeldUntil has passed counts for nothing.
type Seat struct {
	Tenant    string
	LicenseID string
	Key       string // seat key: hash of the license id and the anchor values
	User      string // the user (or client) that took it, for reservations and reports
	HeldUntil time.Time
	Lingering bool
	Overage   bool
}

// Lease is one grant of a licensed item to a session key. ID is the current lease id (the
// JWT `jti`); each renewal gives it a new ID chained to the previous one.
type Lease struct {
	ID string
	// Root is the first lease id of the chain; it names the lease for its whole life.
	Root       string
	Tenant     string
	LicenseID  string
	Item       string
	SeatKey    string
	SessionKey string

	User        string // user name, or client id for client tokens without a user
	Client      string
	HW          string
	HWName      string
	Process     string
	ProcessName string
	Version     string

	Mode      string
	IssuedAt  time.Time // first grant of the chain
	RenewedAt time.Time // this lease id's iat
	ExpiresAt time.Time
	RefreshAt time.Time

	// PrevID is the lease id this one replaced; it is accepted again until PrevUntil (chain_grace).
	PrevID    string
	PrevUntil time.Time

	Overage bool
	// UseTimeReserved is the use time charged to the license for this lease so far; a release
	// refunds the part after the release.
	UseTimeReserved time.Duration
	// SessionID is set when the lease is a session's seat (a lease on the tenant's session item).
	SessionID string

	// ChainSeq counts the renewals that gave the lease a new id; ChainKey derives and checks
	// those ids (chainid.go). Neither ever leaves the server.
	ChainSeq int64
	ChainKey []byte
}

// Live reports whether the lease counts at time now.
func (l *Lease) Live(now time.Time) bool { return now.Before(l.ExpiresAt) }

// UsageEvent is one row of the consumption history behind /admin/v1/usage.
type UsageEvent struct {
	Tenant    string
	At        time.Time
	LicenseID string
	Item      string
	User      string
	Client    string
	HW        string
	HWName    string // the name given with hw=ID;name=NAME (SPEC §3.1: kept for reports)
	LeaseID   string
	Event     string // grant, renew, release, expire, deny, end
	Code      ErrorCode
	Overage   bool
	Duration  time.Duration // lease time granted (grant/renew) or refunded (release)
}

// Usage event kinds.
const (
	EventGrant   = "grant"
	EventRenew   = "renew"
	EventRelease = "release"
	EventEnd     = "end" // ended by an administrator or with its session
	EventDeny    = "deny"
	EventExpire  = "expire" // removed by the sweeper after its exp passed
)
