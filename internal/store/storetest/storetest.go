// Package storetest is the conformance suite every store.Store backend runs:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { ... })
//	}
//
// Besides the plain behaviour of every Tx method, the suite pins down the contract points
// store.go leaves implicit, so that every backend answers alike:
//
//   - "Not found" is domain.ErrNotFound for GetObject, GetSeat, FindLease,
//     GetLeaseBySessionKey, GetSession, GetToken, and for UpdateLease, UpdateSession and
//     RetireSigningKey of a missing row. Inserting a duplicate (signing key kid, lease root,
//     lease session key (tenant, license, session key), session id, token hash) fails with
//     domain.ErrConflict.
//   - PutObject keeps obj.UpdatedAt, or stamps tx.Now() when it is zero. Writing a tenant
//     object (Tenant "") bumps the catalog version of the tenant it names (obj.ID).
//     CatalogVersion is 0 for a tenant never written, and never goes back, not even through
//     DeleteTenantData (a cache must not mistake a recreated tenant for its old snapshot).
//   - DeleteTenantData also deletes the tenant object itself and the tenant's signing keys,
//     usage history, hw locks, sessions and tokens.
//   - ReapSeats does not touch license_state: the engine adjusts SeatsHeld itself.
//   - GetLeaseBySessionKey, FindLease and GetSeat return rows whether or not they expired;
//     ListLeases lists only live leases (ExpiresAt > now); ExpiredLeases and
//     ExpiredSessions are oldest first; ListObjects is ordered by id; ListUsage is ordered
//     by At, then insertion order.
//   - ListUsage covers from <= At < to, a zero from or to meaning unbounded.
//   - ListTokens and LeaseFilter (LicenseID, User, Client) treat an empty value as "any";
//     Limit 0 is no limit.
//   - PutSessionLease replaces a session's lease on the same item; DeleteSession and
//     DeleteTenantData delete the session leases with the sessions.
//   - CountSessionsByLease counts the stored sessions naming the lease root, expired or not
//     (the sweeper deletes expired ones).
//   - AfterCommit hooks run once per committed Update (never for a rolled-back or retried
//     attempt); LockKey serializes the Updates that take one key; ExtendSeat keeps the
//     later time and writes only when it must (capabilities.go).
//   - Webhook deliveries (webhooks.go): InsertWebhookDeliveries skips a row whose
//     (tenant, webhook, Dedup) exists when Dedup is not ""; ClaimWebhookDeliveries takes due
//     pending rows oldest first, counts an attempt and moves NextTry, and claims running at
//     once never take one row twice; RetryWebhookDelivery works on every row of the event
//     in its tenant; CancelWebhookDeliveries deletes pending rows only; SetLicenseExhausted
//     and MarkLicenseExpiring report only changes.
//   - Times come back in UTC with at least millisecond precision; durations are exact.
//
// open must return a new, empty store (several methods scan every tenant) and arrange for
// its Close with t.Cleanup. Tests use times relative to tx.Now(), so a backend may use the
// database clock.
package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// Run runs the whole suite, one subtest per area, each on a store of its own.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Objects", testObjects},
		{"CatalogVersion", testCatalogVersion},
		{"CatalogLock", testCatalogLock},
		{"DeleteTenantData", testDeleteTenantData},
		{"SigningKeys", testSigningKeys},
		{"SigningKeyRace", testSigningKeyRace},
		{"LicenseState", testLicenseState},
		{"Seats", testSeats},
		{"SeatQueries", testSeatQueries},
		{"LeaseChain", testLeaseChain},
		{"LeaseDerivedIDs", testLeaseDerivedIDs},
		{"LeaseQueries", testLeaseQueries},
		{"LeaseSessionKeyUnique", testLeaseSessionKeyUnique},
		{"HWLocks", testHWLocks},
		{"HWLockRace", testHWLockRace},
		{"Usage", testUsage},
		{"Heartbeat", testHeartbeat},
		{"Sessions", testSessions},
		{"Tokens", testTokens},
		{"SessionLeases", testSessionLeases},
		{"Atomicity", testAtomicity},
		{"AtomicityConcurrent", testAtomicityConcurrent},
		{"CanceledContext", testCanceledContext},
		{"ViewRejectsWrites", testViewRejectsWrites},
		{"Clock", testClock},
		{"SeatRaceDistinctKeys", testSeatRaceDistinctKeys},
		{"SeatRaceSameKeys", testSeatRaceSameKeys},
		{"AfterCommit", testAfterCommit},
		{"AfterCommitRetried", testAfterCommitRetried},
		{"Serial", testSerial},
		{"LockKey", testLockKey},
		{"ExtendSeat", testExtendSeat},
		{"UISessions", testUISessions},
		{"HeldSeats", testHeldSeats},
		{"UsageHours", testUsageHours},
		{"WebhookOutbox", testWebhookOutbox},
		{"WebhookClaimRace", testWebhookClaimRace},
		{"WebhookLicenseMarkers", testWebhookLicenseMarkers},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

var errBoom = errors.New("storetest: deliberate failure")

// Assertions never run inside fn: a backend may run fn on another goroutine (SQLite's
// group-commit writer), where t.Fatal must not be called.

func update(t *testing.T, s store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	if err := s.Update(t.Context(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t *testing.T, s store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	if err := s.View(t.Context(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

// read returns what fn returns, read in a View.
func read[T any](t *testing.T, s store.Store, fn func(tx store.Tx) (T, error)) T {
	t.Helper()
	var v T
	view(t, s, func(tx store.Tx) error {
		var err error
		v, err = fn(tx)
		return err
	})
	return v
}

// write returns what fn returns, run in an Update.
func write[T any](t *testing.T, s store.Store, fn func(tx store.Tx) (T, error)) T {
	t.Helper()
	var v T
	update(t, s, func(tx store.Tx) error {
		var err error
		v, err = fn(tx)
		return err
	})
	return v
}

// readErr returns the error of fn run in a View.
func readErr(t *testing.T, s store.Store, fn func(tx store.Tx) error) error {
	t.Helper()
	return s.View(t.Context(), fn)
}

// baseTime is the store's current time at millisecond precision: every time the suite
// writes is relative to it, so it round-trips exactly through any backend.
func baseTime(t *testing.T, s store.Store) time.Time {
	t.Helper()
	return read(t, s, func(tx store.Tx) (time.Time, error) {
		return tx.Now().UTC().Truncate(time.Millisecond), nil
	})
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, domain.ErrNotFound) {
		t.Errorf("%s: err = %v, want domain.ErrNotFound", what, err)
	}
}

func wantConflict(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, domain.ErrConflict) {
		t.Errorf("%s: err = %v, want domain.ErrConflict", what, err)
	}
}

// same compares got with want and checks every time in got is UTC.
func same(t *testing.T, what string, got, want any) {
	t.Helper()
	if err := utcOnly(reflect.ValueOf(got), ""); err != nil {
		t.Errorf("%s: %v", what, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

var timeType = reflect.TypeFor[time.Time]()

func utcOnly(v reflect.Value, path string) error {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return utcOnly(v.Elem(), path)
		}
	case reflect.Struct:
		if v.Type() == timeType {
			tm := v.Interface().(time.Time)
			if !tm.IsZero() && tm.Location() != time.UTC {
				return fmt.Errorf("time %s is in %v, want UTC", path, tm.Location())
			}
			return nil
		}
		for i := range v.NumField() {
			if !v.Type().Field(i).IsExported() {
				continue
			}
			if err := utcOnly(v.Field(i), path+"."+v.Type().Field(i).Name); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if err := utcOnly(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.IsZero() && got.Location() != time.UTC {
		t.Errorf("%s: time in %v, want UTC", what, got.Location())
	}
	if !got.Equal(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}
