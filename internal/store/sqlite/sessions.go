package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// ---- Sessions ----

const sessionCols = `tenant, id, kind, user, client, device, scopes, licensed, refreshable, lease_license, lease_root,
	ext_issuer, ext_subject, created_at, last_used_at, expires_at, hard_expiry, no_idle`

func sessionArgs(s *domain.Session) ([]any, error) {
	scopes, err := encScopes(s.Scopes)
	if err != nil {
		return nil, err
	}
	return []any{s.Tenant, s.ID, s.Kind, s.User, s.Client, s.Device, scopes, s.Licensed, s.Refreshable, s.LeaseLicense, s.LeaseRoot,
		s.ExtIssuer, s.ExtSubject, ms(s.CreatedAt), ms(s.LastUsedAt), ms(s.ExpiresAt), ms(s.HardExpiry), s.NoIdle}, nil
}

func scanSession(sc scanner) (domain.Session, error) {
	var s domain.Session
	var scopes sql.NullString
	var created, used, expires, hard int64
	err := sc.Scan(&s.Tenant, &s.ID, &s.Kind, &s.User, &s.Client, &s.Device, &scopes, &s.Licensed, &s.Refreshable, &s.LeaseLicense,
		&s.LeaseRoot, &s.ExtIssuer, &s.ExtSubject, &created, &used, &expires, &hard, &s.NoIdle)
	if err != nil {
		return s, err
	}
	s.CreatedAt, s.LastUsedAt, s.ExpiresAt, s.HardExpiry = fromMS(created), fromMS(used), fromMS(expires), fromMS(hard)
	s.Scopes, err = decScopes(scopes)
	return s, err
}

func scanSessions(rows *sql.Rows, op string) ([]domain.Session, error) {
	defer rows.Close()
	var out []domain.Session
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		out = append(out, s)
	}
	return out, wrap(op, rows.Err())
}

func (t *tx) InsertSession(ctx context.Context, s *domain.Session) error {
	if err := t.writable(ctx); err != nil {
		return err
	}
	args, err := sessionArgs(s)
	if err != nil {
		return wrap("insert session", err)
	}
	n, err := t.exec(ctx, `INSERT INTO sessions (`+sessionCols+`) VALUES (`+placeholders(18)+`) ON CONFLICT (tenant, id) DO NOTHING`, args...)
	if err != nil {
		return wrap("insert session", err)
	}
	if n == 0 {
		return fmt.Errorf("session %s/%s exists: %w", s.Tenant, s.ID, domain.ErrConflict)
	}
	return nil
}

func (t *tx) GetSession(ctx context.Context, tenant, id string) (*domain.Session, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	s, err := scanSession(t.row(ctx, `SELECT `+sessionCols+` FROM sessions WHERE tenant = ? AND id = ?`, tenant, id))
	if err != nil {
		return nil, notFound("get session", err)
	}
	return &s, nil
}

func (t *tx) UpdateSession(ctx context.Context, s *domain.Session) error {
	if err := t.writable(ctx); err != nil {
		return err
	}
	args, err := sessionArgs(s)
	if err != nil {
		return wrap("update session", err)
	}
	n, err := t.exec(ctx, `UPDATE sessions SET kind = ?, user = ?, client = ?, device = ?, scopes = ?, licensed = ?,
		refreshable = ?, lease_license = ?, lease_root = ?, ext_issuer = ?, ext_subject = ?, created_at = ?, last_used_at = ?, expires_at = ?,
		hard_expiry = ?, no_idle = ? WHERE tenant = ? AND id = ?`, append(args[2:], s.Tenant, s.ID)...)
	if err != nil {
		return wrap("update session", err)
	}
	if n == 0 {
		return domain.ErrNotFound
	}
	return nil
}

func (t *tx) DeleteSession(ctx context.Context, tenant, id string) (bool, error) {
	if err := t.writable(ctx); err != nil {
		return false, err
	}
	if _, err := t.exec(ctx, `DELETE FROM tokens WHERE tenant = ? AND session_id = ?`, tenant, id); err != nil {
		return false, wrap("delete session", err)
	}
	if _, err := t.exec(ctx, `DELETE FROM session_leases WHERE tenant = ? AND session_id = ?`, tenant, id); err != nil {
		return false, wrap("delete session", err)
	}
	n, err := t.exec(ctx, `DELETE FROM sessions WHERE tenant = ? AND id = ?`, tenant, id)
	return n > 0, wrap("delete session", err)
}

func (t *tx) PutSessionLease(ctx context.Context, l store.SessionLease) error {
	if err := t.writable(ctx); err != nil {
		return err
	}
	_, err := t.exec(ctx, `INSERT INTO session_leases (tenant, session_id, item, lease_root) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant, session_id, item) DO UPDATE SET lease_root = excluded.lease_root`,
		l.Tenant, l.SessionID, l.Item, l.LeaseRoot)
	return wrap("put session lease", err)
}

func (t *tx) ListSessionLeases(ctx context.Context, tenant, sessionID string) ([]store.SessionLease, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `SELECT item, lease_root FROM session_leases WHERE tenant = ? AND session_id = ? ORDER BY item`, tenant, sessionID)
	if err != nil {
		return nil, wrap("list session leases", err)
	}
	defer rows.Close()
	var out []store.SessionLease
	for rows.Next() {
		l := store.SessionLease{Tenant: tenant, SessionID: sessionID}
		if err := rows.Scan(&l.Item, &l.LeaseRoot); err != nil {
			return nil, wrap("list session leases", err)
		}
		out = append(out, l)
	}
	return out, wrap("list session leases", rows.Err())
}

func (t *tx) DeleteSessionLease(ctx context.Context, tenant, sessionID, item string) error {
	if err := t.writable(ctx); err != nil {
		return err
	}
	_, err := t.exec(ctx, `DELETE FROM session_leases WHERE tenant = ? AND session_id = ? AND item = ?`, tenant, sessionID, item)
	return wrap("delete session lease", err)
}

func (t *tx) ListSessions(ctx context.Context, tenant string, f store.LeaseFilter) ([]domain.Session, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `SELECT `+sessionCols+` FROM sessions WHERE tenant = ?
		AND (? = '' OR lease_license = ?) AND (? = '' OR user = ?) AND (? = '' OR client = ?)
		AND (? = '' OR lease_root = ?)
		ORDER BY created_at, id LIMIT ?`,
		tenant, f.LicenseID, f.LicenseID, f.User, f.User, f.Client, f.Client, f.LeaseRoot, f.LeaseRoot, limit(f.Limit))
	if err != nil {
		return nil, wrap("list sessions", err)
	}
	return scanSessions(rows, "list sessions")
}

func (t *tx) CountSessionsByLease(ctx context.Context, tenant, leaseRoot string) (int, error) {
	if err := t.ready(ctx); err != nil {
		return 0, err
	}
	if leaseRoot == "" {
		return 0, nil // sessions without a seat share nothing
	}
	var n int
	err := t.row(ctx, `SELECT COUNT(*) FROM sessions WHERE tenant = ? AND lease_root = ?`, tenant, leaseRoot).Scan(&n)
	return n, wrap("count sessions by lease", err)
}

func (t *tx) ExpiredSessions(ctx context.Context, now time.Time, n int) ([]domain.Session, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `SELECT `+sessionCols+` FROM sessions WHERE expires_at <= ? ORDER BY expires_at LIMIT ?`, ms(now), limit(n))
	if err != nil {
		return nil, wrap("expired sessions", err)
	}
	return scanSessions(rows, "expired sessions")
}

// ---- Tokens ----

const tokenCols = `hash, tenant, kind, session_id, family_id, client_id, user, scopes, created_at, expires_at, data`

func scanToken(sc scanner) (domain.Token, error) {
	var tk domain.Token
	var scopes sql.NullString
	var created, expires int64
	err := sc.Scan(&tk.Hash, &tk.Tenant, &tk.Kind, &tk.SessionID, &tk.FamilyID, &tk.ClientID, &tk.User, &scopes,
		&created, &expires, &tk.Data)
	if err != nil {
		return tk, err
	}
	tk.CreatedAt, tk.ExpiresAt = fromMS(created), fromMS(expires)
	tk.Scopes, err = decScopes(scopes)
	return tk, err
}

func (t *tx) InsertToken(ctx context.Context, tk *domain.Token) error {
	if err := t.writable(ctx); err != nil {
		return err
	}
	scopes, err := encScopes(tk.Scopes)
	if err != nil {
		return wrap("insert token", err)
	}
	n, err := t.exec(ctx, `INSERT INTO tokens (`+tokenCols+`) VALUES (`+placeholders(11)+`) ON CONFLICT (hash) DO NOTHING`,
		tk.Hash, tk.Tenant, tk.Kind, tk.SessionID, tk.FamilyID, tk.ClientID, tk.User, scopes, ms(tk.CreatedAt), ms(tk.ExpiresAt), tk.Data)
	if err != nil {
		return wrap("insert token", err)
	}
	if n == 0 {
		return fmt.Errorf("token exists: %w", domain.ErrConflict)
	}
	return nil
}

func (t *tx) GetToken(ctx context.Context, hash string) (*domain.Token, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	tk, err := scanToken(t.row(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = ?`, hash))
	if err != nil {
		return nil, notFound("get token", err)
	}
	return &tk, nil
}

func (t *tx) DeleteToken(ctx context.Context, hash string) (bool, error) {
	if err := t.writable(ctx); err != nil {
		return false, err
	}
	n, err := t.exec(ctx, `DELETE FROM tokens WHERE hash = ?`, hash)
	return n > 0, wrap("delete token", err)
}

func (t *tx) DeleteTokens(ctx context.Context, tenant, sessionID, familyID string) (int, error) {
	if err := t.writable(ctx); err != nil {
		return 0, err
	}
	if sessionID == "" {
		// Tokens without a session (login tokens, codes) belong to no session's family.
		return 0, nil
	}
	var n int64
	var err error
	if familyID == "" {
		n, err = t.exec(ctx, `DELETE FROM tokens WHERE tenant = ? AND session_id = ?`, tenant, sessionID)
	} else {
		n, err = t.exec(ctx, `DELETE FROM tokens WHERE tenant = ? AND session_id = ? AND family_id = ?`, tenant, sessionID, familyID)
	}
	return int(n), wrap("delete tokens", err)
}

func (t *tx) ListTokens(ctx context.Context, tenant, kind, user string) ([]domain.Token, error) {
	if err := t.ready(ctx); err != nil {
		return nil, err
	}
	rows, err := t.query(ctx, `SELECT `+tokenCols+` FROM tokens WHERE tenant = ? AND (? = '' OR kind = ?) AND (? = '' OR user = ?)
		ORDER BY created_at, hash`, tenant, kind, kind, user, user)
	if err != nil {
		return nil, wrap("list tokens", err)
	}
	defer rows.Close()
	var out []domain.Token
	for rows.Next() {
		tk, err := scanToken(rows)
		if err != nil {
			return nil, wrap("list tokens", err)
		}
		out = append(out, tk)
	}
	return out, wrap("list tokens", rows.Err())
}

func (t *tx) DeleteExpiredTokens(ctx context.Context, now time.Time, n int) (int, error) {
	if err := t.writable(ctx); err != nil {
		return 0, err
	}
	deleted, err := t.exec(ctx, `DELETE FROM tokens WHERE hash IN
		(SELECT hash FROM tokens WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)`, ms(now), limit(n))
	return int(deleted), wrap("delete expired tokens", err)
}
