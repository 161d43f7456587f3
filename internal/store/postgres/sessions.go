package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

const sessionColumns = `tenant, id, kind, user_name, client, device, scopes, licensed, refreshable,
	lease_license, lease_root, ext_issuer, ext_subject,
	created_at, last_used_at, expires_at, hard_expiry, no_idle`

func sessionArgs(s *domain.Session) []any {
	return []any{
		s.Tenant, s.ID, s.Kind, s.User, s.Client, s.Device, s.Scopes, s.Licensed, s.Refreshable,
		s.LeaseLicense, s.LeaseRoot, s.ExtIssuer, s.ExtSubject,
		ts(s.CreatedAt), ts(s.LastUsedAt), ts(s.ExpiresAt), nts(s.HardExpiry), s.NoIdle,
	}
}

func scanSession(r pgx.Row) (domain.Session, error) {
	var s domain.Session
	var hard *time.Time
	err := r.Scan(&s.Tenant, &s.ID, &s.Kind, &s.User, &s.Client, &s.Device, &s.Scopes, &s.Licensed, &s.Refreshable,
		&s.LeaseLicense, &s.LeaseRoot, &s.ExtIssuer, &s.ExtSubject,
		&s.CreatedAt, &s.LastUsedAt, &s.ExpiresAt, &hard, &s.NoIdle)
	s.CreatedAt, s.LastUsedAt, s.ExpiresAt = s.CreatedAt.UTC(), s.LastUsedAt.UTC(), s.ExpiresAt.UTC()
	s.HardExpiry = fromNull(hard)
	return s, err
}

func scanSessions(r pgx.Rows) (domain.Session, error) { return scanSession(r) }

// InsertSession inserts s, or reports domain.ErrConflict when its id exists. A concurrent
// insert of the same id makes this one wait for that transaction and then conflict, so
// racing first grants end in one session.
func (t *tx) InsertSession(ctx context.Context, s *domain.Session) error {
	tag, err := t.exec(ctx, "insert session",
		`INSERT INTO sessions (`+sessionColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
		ON CONFLICT DO NOTHING`, sessionArgs(s)...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: insert session %s: %w", s.ID, domain.ErrConflict)
	}
	return nil
}

func (t *tx) GetSession(ctx context.Context, tenant, id string) (*domain.Session, error) {
	rows, err := list(ctx, t, "get session",
		`SELECT `+sessionColumns+` FROM sessions WHERE tenant = $1 AND id = $2`, []any{tenant, id}, scanSessions)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, domain.ErrNotFound
	}
	return &rows[0], nil
}

func (t *tx) UpdateSession(ctx context.Context, s *domain.Session) error {
	tag, err := t.exec(ctx, "update session",
		`UPDATE sessions SET kind = $3, user_name = $4, client = $5, device = $6, scopes = $7, licensed = $8,
			refreshable = $9, lease_license = $10, lease_root = $11, ext_issuer = $12, ext_subject = $13,
			created_at = $14, last_used_at = $15, expires_at = $16, hard_expiry = $17, no_idle = $18
		WHERE tenant = $1 AND id = $2`, sessionArgs(s)...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: update session %s: %w", s.ID, domain.ErrNotFound)
	}
	return nil
}

func (t *tx) DeleteSession(ctx context.Context, tenant, id string) (bool, error) {
	tag, err := t.exec(ctx, "delete session",
		`WITH tk AS (DELETE FROM tokens WHERE tenant = $1 AND session_id = $2),
		sl AS (DELETE FROM session_leases WHERE tenant = $1 AND session_id = $2)
		DELETE FROM sessions WHERE tenant = $1 AND id = $2`, tenant, id)
	return err == nil && tag.RowsAffected() > 0, err
}

// ListSessions lists the tenant's sessions, oldest first.
func (t *tx) ListSessions(ctx context.Context, tenant string, f store.LeaseFilter) ([]domain.Session, error) {
	q := `SELECT ` + sessionColumns + ` FROM sessions WHERE tenant = $1`
	args := []any{tenant}
	q, args = filter(q, args, map[string]string{"lease_license": f.LicenseID, "user_name": f.User, "client": f.Client,
		"lease_root": f.LeaseRoot})
	q += ` ORDER BY created_at, id`
	q, args = limitTo(q, args, f.Limit)
	return list(ctx, t, "list sessions", q, args, scanSessions)
}

func (t *tx) PutSessionLease(ctx context.Context, l store.SessionLease) error {
	_, err := t.exec(ctx, "put session lease",
		`INSERT INTO session_leases (tenant, session_id, item, lease_root) VALUES ($1, $2, $3, $4)
		ON CONFLICT (tenant, session_id, item) DO UPDATE SET lease_root = excluded.lease_root`,
		l.Tenant, l.SessionID, l.Item, l.LeaseRoot)
	return err
}

func (t *tx) ListSessionLeases(ctx context.Context, tenant, sessionID string) ([]store.SessionLease, error) {
	return list(ctx, t, "list session leases",
		`SELECT item, lease_root FROM session_leases WHERE tenant = $1 AND session_id = $2 ORDER BY item`,
		[]any{tenant, sessionID}, func(rows pgx.Rows) (store.SessionLease, error) {
			l := store.SessionLease{Tenant: tenant, SessionID: sessionID}
			return l, rows.Scan(&l.Item, &l.LeaseRoot)
		})
}

func (t *tx) DeleteSessionLease(ctx context.Context, tenant, sessionID, item string) error {
	_, err := t.exec(ctx, "delete session lease",
		`DELETE FROM session_leases WHERE tenant = $1 AND session_id = $2 AND item = $3`, tenant, sessionID, item)
	return err
}

func (t *tx) CountSessionsByLease(ctx context.Context, tenant, leaseRoot string) (int, error) {
	if leaseRoot == "" {
		return 0, nil // sessions without a seat share nothing
	}
	var n int
	err := t.get(ctx, "count sessions by lease",
		`SELECT count(*) FROM sessions WHERE tenant = $1 AND lease_root = $2`, []any{tenant, leaseRoot}, &n)
	return n, err
}

func (t *tx) ExpiredSessions(ctx context.Context, now time.Time, n int) ([]domain.Session, error) {
	q, args := limitTo(`SELECT `+sessionColumns+` FROM sessions WHERE expires_at <= $1 ORDER BY expires_at, tenant, id`,
		[]any{ts(now)}, n)
	return list(ctx, t, "expired sessions", q, args, scanSessions)
}

// Tokens.

const tokenColumns = `hash, tenant, kind, session_id, family_id, client_id, user_name, scopes, created_at, expires_at, data`

func scanToken(r pgx.Rows) (domain.Token, error) {
	var k domain.Token
	err := r.Scan(&k.Hash, &k.Tenant, &k.Kind, &k.SessionID, &k.FamilyID, &k.ClientID, &k.User, &k.Scopes,
		&k.CreatedAt, &k.ExpiresAt, &k.Data)
	k.CreatedAt, k.ExpiresAt = k.CreatedAt.UTC(), k.ExpiresAt.UTC()
	return k, err
}

func (t *tx) InsertToken(ctx context.Context, k *domain.Token) error {
	tag, err := t.exec(ctx, "insert token",
		`INSERT INTO tokens (`+tokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT DO NOTHING`,
		k.Hash, k.Tenant, k.Kind, k.SessionID, k.FamilyID, k.ClientID, k.User, k.Scopes,
		ts(k.CreatedAt), ts(k.ExpiresAt), k.Data)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: insert token: %w", domain.ErrConflict)
	}
	return nil
}

func (t *tx) GetToken(ctx context.Context, hash string) (*domain.Token, error) {
	rows, err := list(ctx, t, "get token", `SELECT `+tokenColumns+` FROM tokens WHERE hash = $1`, []any{hash}, scanToken)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, domain.ErrNotFound
	}
	return &rows[0], nil
}

func (t *tx) DeleteToken(ctx context.Context, hash string) (bool, error) {
	tag, err := t.exec(ctx, "delete token", `DELETE FROM tokens WHERE hash = $1`, hash)
	return err == nil && tag.RowsAffected() > 0, err
}

func (t *tx) DeleteTokens(ctx context.Context, tenant, sessionID, familyID string) (int, error) {
	q := `DELETE FROM tokens WHERE tenant = $1 AND session_id = $2`
	args := []any{tenant, sessionID}
	if familyID != "" {
		q += ` AND family_id = $3`
		args = append(args, familyID)
	}
	tag, err := t.exec(ctx, "delete tokens", q, args...)
	return int(tag.RowsAffected()), err
}

// ListTokens lists the tenant's tokens of kind held by user ("" matches any), oldest first.
func (t *tx) ListTokens(ctx context.Context, tenant, kind, user string) ([]domain.Token, error) {
	q := `SELECT ` + tokenColumns + ` FROM tokens WHERE tenant = $1`
	args := []any{tenant}
	q, args = filter(q, args, map[string]string{"user_name": user, "kind": kind})
	q += ` ORDER BY created_at, hash`
	return list(ctx, t, "list tokens", q, args, scanToken)
}

func (t *tx) DeleteExpiredTokens(ctx context.Context, now time.Time, n int) (int, error) {
	sub, args := limitTo(`SELECT hash FROM tokens WHERE expires_at <= $1 ORDER BY expires_at`, []any{ts(now)}, n)
	tag, err := t.exec(ctx, "delete expired tokens", `DELETE FROM tokens WHERE hash IN (`+sub+`)`, args...)
	return int(tag.RowsAffected()), err
}
