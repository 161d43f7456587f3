package client

import (
	"errors"
	"fmt"
	"time"
)

// LicenseError is a refusal by the license server: a consumption or check it answered with
// an error code, or a login it refused for lack of a seat.
type LicenseError struct {
	// Item is the licensed item asked for (for a refused login, the session's item when
	// known, else empty).
	Item string
	// Code is the 10Duke error key, such as "licenseQuotaExceeded", "noLicenseFound",
	// "leaseIdNotMatching" or "maxConcurrentSessionsExceed".
	Code string
	// Message is the server's human-readable explanation.
	Message string
}

// Error implements error.
func (e *LicenseError) Error() string {
	if e.Item == "" {
		return fmt.Sprintf("leasehold: license refused (%s): %s", e.Code, e.Message)
	}
	return fmt.Sprintf("leasehold: license for %q refused (%s): %s", e.Item, e.Code, e.Message)
}

// Is reports whether target is a *LicenseError with the same Code (or an empty Code), so
// that errors.Is(err, &client.LicenseError{Code: "licenseQuotaExceeded"}) works.
func (e *LicenseError) Is(target error) bool {
	t, ok := target.(*LicenseError)
	return ok && (t.Code == "" || t.Code == e.Code) && (t.Item == "" || t.Item == e.Item)
}

// ErrOffline is returned by an offline [Client] (one that [New] returned while the server
// could not be reached) for anything it cannot do from [Config.StateDir] alone.
var ErrOffline = errors.New("leasehold: offline: the server could not be reached and no kept lease answers this")

// ErrClosed is returned by a [Client] or [Lease] used after it was closed or released.
var ErrClosed = errors.New("leasehold: client closed")

// ErrChainBroken is the error of a [Lost] event whose cause is that the server answered a
// renewal with a new lease instead of the next one of the chain: the previous lease had
// ended (an administrator ended it, or it expired). A [Restored] event follows at once.
var ErrChainBroken = errors.New("leasehold: the lease ended on the server; a new lease was granted")

// ErrStateDirLocked is returned by [New] when another Client holds [Config.StateDir].
var ErrStateDirLocked = errors.New("leasehold: state directory is in use by another client")

// HTTPError is an unexpected answer of the server: a status the protocol does not foresee
// for the request, or a body that cannot be read.
type HTTPError struct {
	Op     string // what the client was doing, such as "consume" or "login"
	Status int    // the HTTP status, 0 when the body was the problem
	Body   string // the start of the body
}

// Error implements error.
func (e *HTTPError) Error() string {
	return fmt.Sprintf("leasehold: %s: HTTP %d: %s", e.Op, e.Status, e.Body)
}

// EventKind is what happened to a lease.
type EventKind int

// The kinds of [Event].
const (
	// Renewed: the lease was renewed; Lease.ID and Lease.Expiry are the new ones.
	Renewed EventKind = iota + 1
	// Retrying: a renewal failed (the server could not be reached, or answered with an
	// unexpected error); it is retried with backoff until the lease's expiry. The lease
	// is still valid. Err says why.
	Retrying
	// Lost: the lease is no longer held: a license error (Err is a *LicenseError), the
	// lease expired before a renewal succeeded, or the server granted a new lease in place
	// of the chain (Err is ErrChainBroken; a Restored event follows). The client keeps
	// trying to take the lease again.
	Lost
	// Restored: after Lost, a lease is held again (a new lease chain).
	Restored
)

// String returns "Renewed", "Retrying", "Lost" or "Restored".
func (k EventKind) String() string {
	switch k {
	case Renewed:
		return "Renewed"
	case Retrying:
		return "Retrying"
	case Lost:
		return "Lost"
	case Restored:
		return "Restored"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one change in a lease's life, delivered on [Lease.Events].
type Event struct {
	Kind    EventKind
	Err     error     // why, for Retrying and Lost
	LeaseID string    // the lease id after the event
	Expiry  time.Time // the lease's expiry after the event
	Time    time.Time // when it happened (local clock)
}

// String describes the event in one line.
func (e Event) String() string {
	s := fmt.Sprintf("%s lease=%s expiry=%s", e.Kind, e.LeaseID, e.Expiry.Format(time.RFC3339))
	if e.Err != nil {
		s += " err=" + e.Err.Error()
	}
	return s
}
