// Package keys manages each tenant's JWT signing keys: it creates a tenant's first key once
// (atomically, whatever the number of processes racing for it), signs lease tokens with the
// active key, publishes the public JWK Set and rotates keys.
//
// Private keys are stored in the store as PKCS#8 PEM, unencrypted: the protection at rest is
// the store's own (disk or volume encryption of the SQLite file, PostgreSQL's storage and
// access control, encrypted backups). Anyone who can read the store can sign lease tokens.
//
// A key keeps the algorithm it was created with. Changing the configured algorithm takes
// effect at the tenant's next rotation, so tokens already issued keep verifying.
package keys

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/leasehold/leasehold/internal/store"
)

// Signing algorithms (the `signing.algorithm` setting).
const (
	RS256 = "RS256" // RSA 2048, the default (as the 10Duke seed)
	ES256 = "ES256" // ECDSA P-256
	EdDSA = "EdDSA" // Ed25519
)

// DefaultAlgorithm is used when none is configured.
const DefaultAlgorithm = RS256

// rsaBits is the size of generated RSA keys.
const rsaBits = 2048

// RefreshInterval bounds how long a process keeps using a cached key set without asking
// the store: a rotation made by another process is picked up within this long.
const RefreshInterval = time.Second

// ValidateAlgorithm reports whether alg is a supported signing algorithm ("" means the default).
func ValidateAlgorithm(alg string) error {
	switch alg {
	case "", RS256, ES256, EdDSA:
		return nil
	}
	return fmt.Errorf("unsupported signing algorithm %q (use RS256, ES256 or EdDSA)", alg)
}

// Manager hands out per-tenant signers and JWK Sets. It is safe for concurrent use.
type Manager struct {
	st  store.Store
	alg string
	// now is the process clock used only for cache freshness; key times come from the store.
	now func() time.Time

	mu      sync.Mutex
	tenants map[string]*tenantCache
}

// New returns a Manager that creates new keys with alg (RS256 when ""). An unsupported alg
// makes key creation fail; check it first with ValidateAlgorithm.
func New(st store.Store, alg string) *Manager {
	if alg == "" {
		alg = DefaultAlgorithm
	}
	return &Manager{st: st, alg: alg, now: time.Now, tenants: map[string]*tenantCache{}}
}

type tenantCache struct {
	mu    sync.Mutex // one reload at a time
	state atomic.Pointer[tenantState]
}

// tenantState is an immutable snapshot of a tenant's keys.
type tenantState struct {
	checked time.Time
	signer  *Signer
	jwks    []byte
	// parsed keeps every published key by kid so that a reload parses only new keys.
	parsed map[string]*parsedKey
}

type parsedKey struct {
	alg    string
	priv   crypto.Signer
	signer *Signer // built lazily for the active key only
}

// Signer signs with one tenant key. It is safe for concurrent use.
type Signer struct {
	kid string
	alg string
	js  jose.Signer
}

// KeyID is the key's `kid` (its RFC 7638 SHA-256 thumbprint).
func (s *Signer) KeyID() string { return s.kid }

// Algorithm is the key's JWS algorithm.
func (s *Signer) Algorithm() string { return s.alg }

// Sign returns the compact JWS of payload, with `alg`, `kid` and `typ: JWT` in its header.
// A []byte or json.RawMessage payload is signed as is; anything else is JSON-encoded.
func (s *Signer) Sign(payload any) (string, error) {
	var body []byte
	switch p := payload.(type) {
	case []byte:
		body = p
	case json.RawMessage:
		body = p
	default:
		var err error
		if body, err = json.Marshal(payload); err != nil {
			return "", fmt.Errorf("keys: encoding payload: %w", err)
		}
	}
	jws, err := s.js.Sign(body)
	if err != nil {
		return "", fmt.Errorf("keys: signing: %w", err)
	}
	return jws.CompactSerialize()
}

func (m *Manager) cache(tenant string) *tenantCache {
	m.mu.Lock()
	defer m.mu.Unlock()
	tc := m.tenants[tenant]
	if tc == nil {
		tc = &tenantCache{}
		m.tenants[tenant] = tc
	}
	return tc
}

// Invalidate makes the next use of tenant's keys read the store (after a rotation or a
// deletion made through this process).
func (m *Manager) Invalidate(tenant string) {
	m.mu.Lock()
	tc := m.tenants[tenant]
	m.mu.Unlock()
	if tc == nil {
		return
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if st := tc.state.Load(); st != nil {
		stale := *st
		stale.checked = time.Time{}
		tc.state.Store(&stale)
	}
}

// state returns the tenant's current key snapshot, reloading it from the store when it is
// older than RefreshInterval, and creating the tenant's first key when it has none.
func (m *Manager) state(ctx context.Context, tenant string) (*tenantState, error) {
	tc := m.cache(tenant)
	st := tc.state.Load()
	if st != nil && m.now().Sub(st.checked) < RefreshInterval {
		return st, nil
	}
	if st != nil && !st.checked.IsZero() {
		// Someone else is already reloading: the snapshot we hold is at most a reload
		// old, so serve it rather than queue every request behind one store read.
		if !tc.mu.TryLock() {
			return st, nil
		}
	} else {
		tc.mu.Lock()
	}
	defer tc.mu.Unlock()
	if cur := tc.state.Load(); cur != nil && m.now().Sub(cur.checked) < RefreshInterval {
		return cur, nil
	}
	next, err := m.load(ctx, tenant, tc.state.Load())
	if err != nil {
		return nil, err
	}
	tc.state.Store(next)
	return next, nil
}

// load reads the tenant's keys, creating the first one if needed.
func (m *Manager) load(ctx context.Context, tenant string, prev *tenantState) (*tenantState, error) {
	checked := m.now()
	keys, now, err := m.list(ctx, tenant)
	if err != nil {
		return nil, err
	}
	if activeKey(keys) == nil {
		if err := m.createFirst(ctx, tenant); err != nil {
			return nil, err
		}
		// Whether we won the race or lost it, the active key is now the one in the store.
		if keys, now, err = m.list(ctx, tenant); err != nil {
			return nil, err
		}
		if activeKey(keys) == nil {
			return nil, fmt.Errorf("keys: tenant %q: no active signing key after creating one", tenant)
		}
	}

	next := &tenantState{checked: checked, parsed: map[string]*parsedKey{}}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for i := range keys {
		k := &keys[i]
		active := k.RetiredAt == nil
		if !active && (k.PublishUntil == nil || !k.PublishUntil.After(now)) {
			continue
		}
		pk := (*parsedKey)(nil)
		if prev != nil {
			pk = prev.parsed[k.KID]
		}
		if pk == nil {
			priv, err := parsePrivate(k)
			if err != nil {
				return nil, fmt.Errorf("keys: tenant %q key %s: %w", tenant, k.KID, err)
			}
			pk = &parsedKey{alg: k.Algorithm, priv: priv}
		}
		next.parsed[k.KID] = pk
		if active && next.signer == nil {
			if pk.signer == nil {
				s, err := newSigner(k.KID, pk.alg, pk.priv)
				if err != nil {
					return nil, fmt.Errorf("keys: tenant %q key %s: %w", tenant, k.KID, err)
				}
				// parsedKey is shared between snapshots; copy before setting the signer.
				pk = &parsedKey{alg: pk.alg, priv: pk.priv, signer: s}
				next.parsed[k.KID] = pk
			}
			next.signer = pk.signer
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{
			Key:       pk.priv.Public(),
			KeyID:     k.KID,
			Algorithm: pk.alg,
			Use:       "sig",
		})
	}
	if next.jwks, err = json.Marshal(set); err != nil {
		return nil, fmt.Errorf("keys: encoding JWKS: %w", err)
	}
	return next, nil
}

func (m *Manager) list(ctx context.Context, tenant string) ([]store.SigningKey, time.Time, error) {
	var keys []store.SigningKey
	var now time.Time
	err := m.st.View(ctx, func(tx store.Tx) error {
		var err error
		now = tx.Now()
		keys, err = tx.ListSigningKeys(ctx, tenant)
		return err
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("keys: listing keys of tenant %q: %w", tenant, err)
	}
	return keys, now, nil
}

// activeKey returns the first non-retired key (the store lists the active one first).
func activeKey(keys []store.SigningKey) *store.SigningKey {
	for i := range keys {
		if keys[i].RetiredAt == nil {
			return &keys[i]
		}
	}
	return nil
}

// createFirst inserts a new key only if the tenant still has no active key: processes
// racing here all generate a key, one insert wins and the others are discarded.
func (m *Manager) createFirst(ctx context.Context, tenant string) error {
	// Generated outside the transaction: RSA generation is slow and Update may retry fn.
	key, err := Generate(tenant, m.alg)
	if err != nil {
		return err
	}
	err = m.st.Update(ctx, func(tx store.Tx) error {
		key.CreatedAt = tx.Now()
		_, err := tx.InsertSigningKey(ctx, key, true)
		return err
	})
	if err != nil {
		return fmt.Errorf("keys: creating the first key of tenant %q: %w", tenant, err)
	}
	return nil
}

// Signer returns the signer of the tenant's active key, creating the key on first use.
func (m *Manager) Signer(ctx context.Context, tenant string) (*Signer, error) {
	st, err := m.state(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return st.signer, nil
}

// JWKS returns the tenant's public JWK Set: the active key and every retired key still
// within its PublishUntil. Like Signer, it creates the tenant's first key when it has none,
// so that clients can fetch the set before the first token is issued. The returned slice
// is shared: do not modify it.
func (m *Manager) JWKS(ctx context.Context, tenant string) ([]byte, error) {
	st, err := m.state(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return st.jwks, nil
}

// Rotate makes a new key of the configured algorithm the tenant's active key and retires
// the previous one, which stays in the JWKS for publishFor (the longest lease it can have
// signed). Retired keys whose publication has ended are deleted. It returns the new kid.
func (m *Manager) Rotate(ctx context.Context, tenant string, publishFor time.Duration) (string, error) {
	if publishFor < 0 {
		return "", fmt.Errorf("keys: negative publication period %s", publishFor)
	}
	key, err := Generate(tenant, m.alg)
	if err != nil {
		return "", err
	}
	err = m.st.Update(ctx, func(tx store.Tx) error {
		now := tx.Now()
		key.CreatedAt = now
		keys, err := tx.ListSigningKeys(ctx, tenant)
		if err != nil {
			return err
		}
		for _, k := range keys {
			switch {
			case k.RetiredAt == nil:
				if err := tx.RetireSigningKey(ctx, tenant, k.KID, now, now.Add(publishFor)); err != nil {
					return err
				}
			case k.PublishUntil == nil || !k.PublishUntil.After(now):
				if err := tx.DeleteSigningKey(ctx, tenant, k.KID); err != nil {
					return err
				}
			}
		}
		ok, err := tx.InsertSigningKey(ctx, key, true)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("an active key remained after retiring every active key")
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("keys: rotating the key of tenant %q: %w", tenant, err)
	}
	m.Invalidate(tenant)
	return key.KID, nil
}

// Generate makes a new key for tenant in the stored form (PKCS#8 PEM, kid = RFC 7638
// thumbprint). CreatedAt is left for the caller to set from the store's clock.
func Generate(tenant, alg string) (store.SigningKey, error) {
	if alg == "" {
		alg = DefaultAlgorithm
	}
	var priv crypto.Signer
	var err error
	switch alg {
	case RS256:
		priv, err = rsa.GenerateKey(rand.Reader, rsaBits)
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return store.SigningKey{}, ValidateAlgorithm(alg)
	}
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("keys: generating %s key: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("keys: encoding %s key: %w", alg, err)
	}
	kid, err := thumbprint(priv.Public())
	if err != nil {
		return store.SigningKey{}, err
	}
	return store.SigningKey{
		Tenant:    tenant,
		KID:       kid,
		Algorithm: alg,
		Private:   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
	}, nil
}

func thumbprint(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("keys: key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// parsePrivate decodes a stored key and checks that it fits its algorithm.
func parsePrivate(k *store.SigningKey) (crypto.Signer, error) {
	block, rest := pem.Decode(k.Private)
	if block == nil || block.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("private key is not one PKCS#8 PEM block")
	}
	// ParsePKCS8PrivateKey validates RSA keys and precomputes their CRT values, so every
	// signature afterwards uses the fast path.
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	switch key := key.(type) {
	case *rsa.PrivateKey:
		if k.Algorithm == RS256 {
			return key, nil
		}
	case *ecdsa.PrivateKey:
		if k.Algorithm == ES256 && key.Curve == elliptic.P256() {
			return key, nil
		}
	case ed25519.PrivateKey:
		if k.Algorithm == EdDSA {
			return key, nil
		}
	}
	return nil, fmt.Errorf("private key of type %T does not fit algorithm %q", key, k.Algorithm)
}

func newSigner(kid, alg string, priv crypto.Signer) (*Signer, error) {
	// go-jose puts the JSONWebKey's KeyID into the protected header as `kid`.
	js, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: jose.JSONWebKey{Key: priv, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return nil, err
	}
	return &Signer{kid: kid, alg: alg, js: js}, nil
}
