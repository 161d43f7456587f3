package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// algorithms are the signature algorithms a Leasehold server signs with.
var algorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// minRefetch bounds how often an unknown kid makes the verifier fetch the JWK Set again,
// so that a stream of forged tokens cannot turn into a stream of requests.
const minRefetch = time.Second

// verifier checks lease JWTs against the tenant's JWK Set, cached and fetched again when a
// token names a kid the cache does not hold (a key rotation).
type verifier struct {
	fetch func(ctx context.Context) ([]byte, error) // nil: offline, the cached set only

	mu      sync.Mutex
	raw     []byte
	set     jose.JSONWebKeySet
	fetched time.Time
}

func (v *verifier) load(raw []byte) error {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return fmt.Errorf("leasehold: JWK Set: %w", err)
	}
	v.raw, v.set = raw, set
	return nil
}

// cached returns the JWK Set last loaded (for StateDir).
func (v *verifier) cached() []byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.raw
}

// refresh fetches the JWK Set now, unless it was fetched less than minRefetch ago.
func (v *verifier) refresh(ctx context.Context, force bool) error {
	if v.fetch == nil {
		return ErrOffline
	}
	if !force && !v.fetched.IsZero() && time.Since(v.fetched) < minRefetch {
		return nil
	}
	raw, err := v.fetch(ctx)
	if err != nil {
		return err
	}
	if err := v.load(raw); err != nil {
		return err
	}
	v.fetched = time.Now()
	return nil
}

// verify checks a compact JWS and returns its payload's claims.
func (v *verifier) verify(ctx context.Context, token string) (map[string]any, error) {
	jws, err := jose.ParseSignedCompact(token, algorithms)
	if err != nil {
		return nil, fmt.Errorf("leasehold: lease token: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("leasehold: lease token: want exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	v.mu.Lock()
	defer v.mu.Unlock()
	keys := v.set.Key(kid)
	if len(keys) == 0 {
		if err := v.refresh(ctx, v.raw == nil); err != nil {
			return nil, fmt.Errorf("leasehold: fetching the JWK Set for key %q: %w", kid, err)
		}
		keys = v.set.Key(kid)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("leasehold: lease token signed by unknown key %q", kid)
	}
	var lastErr error
	for _, k := range keys {
		payload, err := jws.Verify(k)
		if err != nil {
			lastErr = err
			continue
		}
		var claims map[string]any
		if err := json.Unmarshal(payload, &claims); err != nil {
			return nil, fmt.Errorf("leasehold: lease token payload: %w", err)
		}
		return claims, nil
	}
	return nil, fmt.Errorf("leasehold: lease token signature: %w", lastErr)
}
