package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/store"
)

// Login tokens (DocuWare): a user's credential, made by one of their sessions, that opens a
// new session and reclaims the lingering seat of the session that made it.
const (
	UsageMulti  = "Multi"
	UsageSingle = "Single"

	// MaxLoginTokenLifetime bounds a login token's Lifetime. DocuWare's own applications
	// ask for 365 days; a leap year gets its extra day.
	MaxLoginTokenLifetime = 366 * 24 * time.Hour
	// DefaultLoginTokenLifetime applies when the request gives no Lifetime.
	DefaultLoginTokenLifetime = time.Hour
	// maxLoginTokensPerUser bounds what one user can make the store keep: past it the
	// oldest of their tokens are revoked.
	maxLoginTokensPerUser = 100
	maxTargetProducts     = 16
	maxProductName        = 128
)

// ErrNotAllowed refuses an operation the session may not perform (the reason is wrapped).
var ErrNotAllowed = errors.New("not allowed")

// LoginTokenRequest is the body of POST /session/login-token, already parsed.
type LoginTokenRequest struct {
	Products []string
	Usage    string // UsageMulti or UsageSingle
	Lifetime time.Duration
}

// loginTokenData is a login token's Data. The admin API shows it without seat_key.
type loginTokenData struct {
	Usage    string   `json:"usage"`
	Products []string `json:"products"`
	// License/SeatKey/Device name the seat of the session that made the token (empty when
	// that session held none); Session is that session's id, for audit.
	License string `json:"license,omitempty"`
	SeatKey string `json:"seat_key,omitempty"`
	Device  string `json:"device,omitempty"`
	Session string `json:"session,omitempty"`
	// Kind and Scopes bound the session the token opens: at most the scopes of the
	// credential that made it, and a kind that keeps a third-party client's authority
	// from turning into the user's own (see sessionKindFor). A token made before they
	// were recorded has no Kind and opens a session as a password login would.
	Kind   string   `json:"kind,omitempty"`
	Scopes []string `json:"scopes,omitempty"`
}

// mayMintLoginToken reports whether a session of this kind may make login tokens: only
// one the user opened interactively (a password, their cookie, a login token made by
// such a session, or an authorization code they consented to). A client_credentials
// session acts for a user without them, and a trusted external token is another
// system's credential: neither may turn itself into the user's interactive session.
func mayMintLoginToken(kind string) bool {
	switch kind {
	case domain.SessionPassword, domain.SessionLoginToken, domain.SessionAuthorizationCode:
		return true
	}
	return false
}

// ActsAsUser reports whether a session of this kind is the user's own sign-in, which the
// authorization endpoint may take as the user's consent to sign in to any client: a
// password login or a login token made by one. An authorization-code session is a
// third-party client's grant, a client_credentials session the client's own.
func ActsAsUser(kind string) bool {
	return kind == domain.SessionPassword || kind == domain.SessionLoginToken
}

// loginTokenKind is the kind of the session a login token opens: a token made by an
// authorization-code session opens an authorization-code session again (a third-party
// client's grant, which the authorization endpoint never takes as the user's own login);
// any other opens a login_token session.
func loginTokenKind(creator string) string {
	if creator == domain.SessionAuthorizationCode {
		return domain.SessionAuthorizationCode
	}
	return domain.SessionLoginToken
}

// NormalizeLoginTokenRequest checks and completes a login token request.
func NormalizeLoginTokenRequest(products []string, usage, lifetime string) (LoginTokenRequest, error) {
	var r LoginTokenRequest
	switch {
	case usage == "" || strings.EqualFold(usage, UsageMulti):
		r.Usage = UsageMulti
	case strings.EqualFold(usage, UsageSingle):
		r.Usage = UsageSingle
	default:
		//lint:ignore ST1005 the message begins with the seed's field name
		return r, fmt.Errorf("Usage must be Multi or Single, got %q", usage)
	}
	if len(products) > maxTargetProducts {
		return r, fmt.Errorf("TargetProducts has more than %d entries", maxTargetProducts)
	}
	for _, p := range products {
		if p == "" || len(p) > maxProductName {
			return r, fmt.Errorf("TargetProducts entries must be 1 to %d characters", maxProductName)
		}
		if !slices.Contains(r.Products, p) {
			r.Products = append(r.Products, p)
		}
	}
	if len(r.Products) == 0 {
		r.Products = []string{"PlatformService"}
	}
	r.Lifetime = DefaultLoginTokenLifetime
	if lifetime != "" {
		d, err := ParseTimeSpan(lifetime)
		if err != nil {
			//lint:ignore ST1005 the message begins with the seed's field name
			return r, fmt.Errorf("Lifetime: %v", err)
		}
		if d <= 0 || d > MaxLoginTokenLifetime {
			//lint:ignore ST1005 the message begins with the seed's field name
			return r, fmt.Errorf("Lifetime must be more than 0 and at most %d days", int(MaxLoginTokenLifetime/(24*time.Hour)))
		}
		r.Lifetime = d
	}
	return r, nil
}

// ParseTimeSpan parses a .NET TimeSpan in its constant format, `[d.]hh:mm[:ss[.fffffff]]`,
// or a whole number of days `d`. Negative spans are refused.
func ParseTimeSpan(v string) (time.Duration, error) {
	bad := fmt.Errorf("%q is not a TimeSpan [d.]hh:mm:ss[.fffffff]", v)
	if v == "" || len(v) > 32 {
		return 0, bad
	}
	num := func(s string, max int64) (int64, bool) {
		if s == "" || len(s) > 8 {
			return 0, false
		}
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil && n <= max
	}
	if !strings.Contains(v, ":") {
		d, ok := num(v, maxTimeSpanDays)
		if !ok {
			return 0, bad
		}
		return time.Duration(d) * 24 * time.Hour, nil
	}
	var days int64
	rest := v
	if i := strings.IndexByte(v, '.'); i >= 0 && i < strings.IndexByte(v, ':') {
		d, ok := num(v[:i], maxTimeSpanDays)
		if !ok {
			return 0, bad
		}
		days, rest = d, v[i+1:]
	}
	var frac string
	if i := strings.IndexByte(rest, '.'); i >= 0 {
		rest, frac = rest[:i], rest[i+1:]
		if len(frac) == 0 || len(frac) > 7 {
			return 0, bad
		}
	}
	parts := strings.Split(rest, ":")
	if len(parts) < 2 || len(parts) > 3 || (frac != "" && len(parts) != 3) {
		return 0, bad
	}
	limits := []int64{23, 59, 59}
	units := []time.Duration{time.Hour, time.Minute, time.Second}
	d := time.Duration(days) * 24 * time.Hour
	for i, p := range parts {
		if len(p) > 2 {
			return 0, bad
		}
		n, ok := num(p, limits[i])
		if !ok {
			return 0, bad
		}
		d += time.Duration(n) * units[i]
	}
	if frac != "" {
		n, ok := num(frac, 9_999_999)
		if !ok {
			return 0, bad
		}
		for range 7 - len(frac) {
			n *= 10
		}
		d += time.Duration(n) * 100 // ticks of 100 ns
	}
	if d < 0 {
		return 0, bad // past time.Duration's range: the sum wrapped
	}
	return d, nil
}

// maxTimeSpanDays is the largest day count a time.Duration holds (106,751; .NET's TimeSpan
// goes to 10,675,199, which would wrap).
const maxTimeSpanDays = int64(math.MaxInt64 / int64(24*time.Hour))

// CreateLoginToken makes a login token for the user of p's session. The token carries the
// seat of that session, so a token login can reclaim it after a logoff.
func (m *Manager) CreateLoginToken(ctx context.Context, p *Principal, r LoginTokenRequest) (string, time.Time, error) {
	snap, err := m.cat.Get(ctx, p.Tenant)
	if err != nil {
		return "", time.Time{}, err
	}
	user := p.Session.User
	if u := snap.Users[user]; u == nil || !u.Enabled {
		return "", time.Time{}, fmt.Errorf("%w: login tokens are for users; this session acts as no local user", ErrNotAllowed)
	}
	if !mayMintLoginToken(p.Session.Kind) {
		return "", time.Time{}, fmt.Errorf("%w: only a session the user signed in to (password, cookie, login token or authorization code) may make login tokens; this one is a %s session", ErrNotAllowed, p.Session.Kind)
	}
	// The credential's own scopes: an access token may carry fewer than its session.
	scopes := p.Session.Scopes
	if p.Token != nil && p.Token.Scopes != nil {
		scopes = p.Token.Scopes
	}
	scopes = append([]string{}, scopes...)
	plain, hash := m.tokens.New()
	var exp time.Time
	err = m.update(ctx, func(tx store.Tx) error {
		now := tx.Now()
		exp = now.Add(r.Lifetime)
		s, err := liveSession(ctx, tx, p.Tenant, p.Session.ID, now)
		if err != nil {
			return err
		}
		if s == nil {
			return ErrInvalidToken
		}
		if !mayMintLoginToken(s.Kind) {
			return fmt.Errorf("%w: this session may not make login tokens", ErrNotAllowed)
		}
		data := loginTokenData{Usage: r.Usage, Products: r.Products, Session: s.ID,
			Kind: loginTokenKind(s.Kind), Scopes: scopes}
		if s.LeaseRoot != "" {
			l, err := tx.FindLease(ctx, s.Tenant, s.LeaseRoot)
			if err != nil && !errors.Is(err, domain.ErrNotFound) {
				return err
			}
			if l != nil {
				data.License, data.SeatKey, data.Device = l.LicenseID, l.SeatKey, s.Device
			}
		}
		raw, err := json.Marshal(data)
		if err != nil {
			return err
		}
		if err := pruneLoginTokens(ctx, tx, p.Tenant, user, now); err != nil {
			return err
		}
		return tx.InsertToken(ctx, &domain.Token{
			Hash: hash, Tenant: p.Tenant, Kind: domain.TokenLogin, FamilyID: NewID(), User: user,
			CreatedAt: now, ExpiresAt: exp, Data: raw,
			// SessionID stays empty: the token belongs to the user and outlives the session
			// (ending a session deletes the tokens bound to it).
		})
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return plain, exp, nil
}

// pruneLoginTokens makes room for one more login token of user: expired ones go, then the
// oldest beyond maxLoginTokensPerUser.
func pruneLoginTokens(ctx context.Context, tx store.Tx, tenant, user string, now time.Time) error {
	list, err := tx.ListTokens(ctx, tenant, domain.TokenLogin, user)
	if err != nil {
		return err
	}
	live := list[:0]
	for _, t := range list {
		if !now.Before(t.ExpiresAt) {
			if _, err := tx.DeleteToken(ctx, t.Hash); err != nil {
				return err
			}
			continue
		}
		live = append(live, t)
	}
	sort.Slice(live, func(i, j int) bool { return live[i].CreatedAt.Before(live[j].CreatedAt) })
	for len(live) >= maxLoginTokensPerUser {
		if _, err := tx.DeleteToken(ctx, live[0].Hash); err != nil {
			return err
		}
		live = live[1:]
	}
	return nil
}

// TokenLogin opens a session with a login token: a new session of the token's user that
// reclaims the lingering seat of the session which made the token, or else takes a seat
// like a fresh login from the caller's own device. A Single token is spent in the same
// transaction. An unknown, expired or spent token, or one whose user is gone or disabled,
// is ErrInvalidToken.
func (m *Manager) TokenLogin(ctx context.Context, tenant, token string, o LoginOptions) (*LoginGrant, error) {
	if token == "" || len(token) > 512 {
		return nil, ErrInvalidToken
	}
	hash := m.tokens.Hash(token)
	var user string
	kind := domain.SessionLoginToken
	check := func(tx store.Tx, snap *catalog.Snapshot, now time.Time) (*engine.Reclaim, error) {
		t, err := tx.GetToken(ctx, hash)
		if errors.Is(err, domain.ErrNotFound) {
			return nil, ErrInvalidToken
		} else if err != nil {
			return nil, err
		}
		if t.Kind != domain.TokenLogin || t.Tenant != tenant || !now.Before(t.ExpiresAt) || t.User != user {
			return nil, ErrInvalidToken
		}
		var d loginTokenData
		if err := json.Unmarshal(t.Data, &d); err != nil {
			return nil, ErrInvalidToken
		}
		if d.Usage == UsageSingle {
			// Spent with the login it opens: if that fails, nothing is committed.
			if _, err := tx.DeleteToken(ctx, hash); err != nil {
				return nil, err
			}
		}
		if d.License == "" || d.SeatKey == "" {
			return nil, nil
		}
		return &engine.Reclaim{License: d.License, SeatKey: d.SeatKey, Device: d.Device}, nil
	}
	// The user is read first (outside the transaction) so that the session can be opened
	// for it; check refuses the token if it names another user by then.
	err := m.st.View(ctx, func(tx store.Tx) error {
		t, err := tx.GetToken(ctx, hash)
		if errors.Is(err, domain.ErrNotFound) {
			return ErrInvalidToken
		} else if err != nil {
			return err
		}
		if t.Kind != domain.TokenLogin || t.Tenant != tenant {
			return ErrInvalidToken
		}
		var d loginTokenData
		if err := json.Unmarshal(t.Data, &d); err != nil {
			return ErrInvalidToken
		}
		user = t.User
		if d.Kind != "" {
			// Never more than the credential that made the token (see loginTokenData).
			kind, o.Scopes = d.Kind, append([]string{}, d.Scopes...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	snap, err := m.cat.Get(ctx, tenant)
	if err != nil {
		return nil, err
	}
	if u := snap.Users[user]; u == nil || !u.Enabled {
		return nil, ErrInvalidToken
	}
	return m.openLogin(ctx, tenant, user, kind, o, check)
}

// RevokeClientTokensTx deletes every token of the sessions a client holds (its grants, and
// the authorization-code sessions users opened through it), so that a client disabled and
// enabled again does not bring its old tokens back to life. The sessions themselves end at
// their deadline, as unused sessions do, and free their seats then.
func RevokeClientTokensTx(ctx context.Context, tx store.Tx, tenant, client string) (int, error) {
	list, err := tx.ListSessions(ctx, tenant, store.LeaseFilter{Client: client})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range list {
		k, err := tx.DeleteTokens(ctx, tenant, s.ID, "")
		if err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

// RevokeLoginTokensTx deletes every login token of a user (a password change revokes them).
func RevokeLoginTokensTx(ctx context.Context, tx store.Tx, tenant, user string) (int, error) {
	list, err := tx.ListTokens(ctx, tenant, domain.TokenLogin, user)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range list {
		ok, err := tx.DeleteToken(ctx, t.Hash)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}
