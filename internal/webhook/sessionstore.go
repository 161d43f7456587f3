package webhook

import (
	"context"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// SessionStore wraps the session manager's store so that every session it inserts writes
// session.started, and every one it deletes session.ended (with domain.EndReason of the
// call's context), in the same transaction. Nothing else changes: the wrapped
// transactions pass every other call through.
func (o *Outbox) SessionStore(st store.Store) store.Store {
	return &sessionStore{Store: st, o: o}
}

type sessionStore struct {
	store.Store
	o *Outbox
}

func (s *sessionStore) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	return s.Store.Update(ctx, func(tx store.Tx) error { return fn(&sessionTx{Tx: tx, o: s.o}) })
}

type sessionTx struct {
	store.Tx
	o *Outbox
}

func (t *sessionTx) InsertSession(ctx context.Context, s *domain.Session) error {
	if err := t.Tx.InsertSession(ctx, s); err != nil {
		return err
	}
	return t.o.write(ctx, t.Tx, s.Tenant, domain.EventSessionStarted,
		SessionData{Session: s.ID, User: s.User, Client: s.Client}, "")
}

func (t *sessionTx) DeleteSession(ctx context.Context, tenant, id string) (bool, error) {
	if len(t.o.subscribed(tenant, domain.EventSessionEnded)) == 0 {
		return t.Tx.DeleteSession(ctx, tenant, id)
	}
	s, err := t.Tx.GetSession(ctx, tenant, id)
	if err != nil {
		// Missing: nothing to delete, nothing ended (DeleteSession answers false).
		return t.Tx.DeleteSession(ctx, tenant, id)
	}
	deleted, err := t.Tx.DeleteSession(ctx, tenant, id)
	if err != nil || !deleted {
		return deleted, err
	}
	return true, t.o.write(ctx, t.Tx, tenant, domain.EventSessionEnded,
		SessionData{Session: s.ID, User: s.User, Client: s.Client, Reason: domain.EndReason(ctx)}, "")
}
