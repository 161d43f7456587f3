package session

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// countingStore is the Manager's store seen through a counter: how many transactions the
// Manager opens, and which session, token, lease and seat methods the last Update called
// (its last run: an Update's fn may run more than once).
type countingStore struct {
	store.Store
	views, updates atomic.Int64

	mu    sync.Mutex
	calls map[string]int
}

// countManager makes h's Manager use a countingStore over its store.
func countManager(m *Manager) *countingStore {
	c := &countingStore{Store: m.st}
	m.st = c
	return c
}

func (c *countingStore) View(ctx context.Context, fn func(tx store.Tx) error) error {
	c.views.Add(1)
	return c.Store.View(ctx, fn)
}

func (c *countingStore) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	c.updates.Add(1)
	return c.Store.Update(ctx, func(tx store.Tx) error {
		c.mu.Lock()
		c.calls = map[string]int{}
		c.mu.Unlock()
		return fn(&countingTx{Tx: tx, c: c})
	})
}

// lastCalls returns what the last Update called.
func (c *countingStore) lastCalls() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.calls)
}

func (c *countingStore) note(method string) {
	c.mu.Lock()
	c.calls[method]++
	c.mu.Unlock()
}

// countingTx notes the calls; every method it does not count is the wrapped Tx's, so the
// engine takes the same paths as without it.
type countingTx struct {
	store.Tx
	c *countingStore
}

func (t *countingTx) ExtendSeat(ctx context.Context, tenant, licenseID, key string, until time.Time) (bool, error) {
	t.c.note("ExtendSeat")
	return t.Tx.ExtendSeat(ctx, tenant, licenseID, key, until)
}

func (t *countingTx) GetSession(ctx context.Context, tenant, id string) (*domain.Session, error) {
	t.c.note("GetSession")
	return t.Tx.GetSession(ctx, tenant, id)
}

func (t *countingTx) InsertSession(ctx context.Context, s *domain.Session) error {
	t.c.note("InsertSession")
	return t.Tx.InsertSession(ctx, s)
}

func (t *countingTx) UpdateSession(ctx context.Context, s *domain.Session) error {
	t.c.note("UpdateSession")
	return t.Tx.UpdateSession(ctx, s)
}

func (t *countingTx) DeleteSession(ctx context.Context, tenant, id string) (bool, error) {
	t.c.note("DeleteSession")
	return t.Tx.DeleteSession(ctx, tenant, id)
}

func (t *countingTx) InsertToken(ctx context.Context, tk *domain.Token) error {
	t.c.note("InsertToken")
	return t.Tx.InsertToken(ctx, tk)
}

func (t *countingTx) DeleteToken(ctx context.Context, hash string) (bool, error) {
	t.c.note("DeleteToken")
	return t.Tx.DeleteToken(ctx, hash)
}

func (t *countingTx) LockLicense(ctx context.Context, tenant, licenseID string) (*domain.LicenseState, error) {
	t.c.note("LockLicense")
	return t.Tx.LockLicense(ctx, tenant, licenseID)
}

func (t *countingTx) SaveLicenseState(ctx context.Context, st *domain.LicenseState) error {
	t.c.note("SaveLicenseState")
	return t.Tx.SaveLicenseState(ctx, st)
}

func (t *countingTx) PutSeat(ctx context.Context, s *domain.Seat) error {
	t.c.note("PutSeat")
	return t.Tx.PutSeat(ctx, s)
}

func (t *countingTx) InsertLease(ctx context.Context, l *domain.Lease) error {
	t.c.note("InsertLease")
	return t.Tx.InsertLease(ctx, l)
}

func (t *countingTx) UpdateLease(ctx context.Context, l *domain.Lease) error {
	t.c.note("UpdateLease")
	return t.Tx.UpdateLease(ctx, l)
}

func (t *countingTx) LockLease(ctx context.Context, tenant, licenseID, seatKey, sessionKey string) (*domain.Lease, error) {
	t.c.note("LockLease")
	return t.Tx.LockLease(ctx, tenant, licenseID, seatKey, sessionKey)
}

func (t *countingTx) AppendUsage(ctx context.Context, events []domain.UsageEvent) error {
	t.c.note("AppendUsage")
	return t.Tx.AppendUsage(ctx, events)
}
