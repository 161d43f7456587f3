package store

import "context"

type lockHintKey struct{}

// WithLockHint returns ctx naming the lock that an Update run with it is expected to wait
// for: a license's state row (LicenseLock) or a key of Tx.LockKey. A backend that runs
// concurrent Updates in batches (PostgreSQL) runs the Updates naming one lock in one
// batch, one after the other, rather than in batches side by side that would each wait
// for another's commit to get that lock. It is a hint: it changes how Updates are
// grouped, never what they decide; a wrong one costs only speed.
//
// Why a context value and not a method: it must pass through every wrapper of a Store
// unchanged (webhook's, tests'), as the Update it rides on does.
func WithLockHint(ctx context.Context, lock string) context.Context {
	return context.WithValue(ctx, lockHintKey{}, lock)
}

// LockHint is the lock that ctx names (WithLockHint), or "".
func LockHint(ctx context.Context) string {
	lock, _ := ctx.Value(lockHintKey{}).(string)
	return lock
}

// LicenseLock names the lock of a license's state row (Tx.LockLicense) for WithLockHint.
func LicenseLock(tenant, licenseID string) string {
	return "license\x00" + tenant + "\x00" + licenseID
}
