package keys

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/store/sqlite"
)

var allAlgs = []string{RS256, ES256, EdDSA}

func openStore(t testing.TB) store.Store {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// verify checks token against the JWK Set and returns its claims and header kid.
func verify(t *testing.T, jwks []byte, token string) (map[string]any, string) {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatalf("JWKS does not parse: %v\n%s", err, jwks)
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
	if err != nil {
		t.Fatalf("token does not parse: %v", err)
	}
	h := jws.Signatures[0].Protected
	if h.KeyID == "" || h.Algorithm == "" {
		t.Fatalf("header lacks kid or alg: %+v", h)
	}
	if typ := h.ExtraHeaders[jose.HeaderType]; typ != "JWT" {
		t.Fatalf("typ = %v, want JWT", typ)
	}
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %s: %d keys in JWKS, want 1\n%s", h.KeyID, len(keys), jwks)
	}
	if !keys[0].IsPublic() || keys[0].Use != "sig" || keys[0].Algorithm != h.Algorithm {
		t.Fatalf("published key %s: public=%v use=%q alg=%q (token alg %q)", h.KeyID, keys[0].IsPublic(), keys[0].Use, keys[0].Algorithm, h.Algorithm)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("signature does not verify with the JWKS key: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatalf("payload: %v", err)
	}
	return claims, h.KeyID
}

func listKeys(t *testing.T, st store.Store, tenant string) []store.SigningKey {
	t.Helper()
	var keys []store.SigningKey
	err := st.View(context.Background(), func(tx store.Tx) error {
		var err error
		keys, err = tx.ListSigningKeys(context.Background(), tenant)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func kidsOf(t *testing.T, jwks []byte) []string {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	slices.Sort(kids)
	return kids
}

func TestSignVerifiesAgainstJWKS(t *testing.T) {
	for _, alg := range allAlgs {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			st := openStore(t)
			m := New(st, alg)
			s, err := m.Signer(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			if s.Algorithm() != alg {
				t.Fatalf("algorithm %q, want %q", s.Algorithm(), alg)
			}
			tok, err := s.Sign(map[string]any{"AppFeature-XYZ": true, "iss": "http://x/t/acme", "exp": 1675702153})
			if err != nil {
				t.Fatal(err)
			}
			jwks, err := m.JWKS(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			claims, kid := verify(t, jwks, tok)
			if kid != s.KeyID() || claims["AppFeature-XYZ"] != true || claims["exp"] != float64(1675702153) {
				t.Fatalf("kid %s (signer %s), claims %v", kid, s.KeyID(), claims)
			}
			// A pre-encoded payload is signed byte for byte.
			raw := []byte(`{"b":1,"a":2}`)
			tok, err = s.Sign(raw)
			if err != nil {
				t.Fatal(err)
			}
			jws, _ := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
			if got := jws.UnsafePayloadWithoutVerification(); string(got) != string(raw) {
				t.Fatalf("payload %s, want %s", got, raw)
			}

			keys := listKeys(t, st, "acme")
			if len(keys) != 1 || keys[0].Algorithm != alg || keys[0].KID != s.KeyID() {
				t.Fatalf("stored keys %+v", keys)
			}
			if string(keys[0].Private[:27]) != "-----BEGIN PRIVATE KEY-----" {
				t.Fatalf("stored key is not PKCS#8 PEM: %.40q", keys[0].Private)
			}
			// Another process (a fresh Manager) on the same store uses the same key.
			s2, err := New(st, alg).Signer(ctx, "acme")
			if err != nil || s2.KeyID() != s.KeyID() {
				t.Fatalf("second manager: kid %v err %v", s2, err)
			}
			// Tenants never share keys.
			other, err := m.Signer(ctx, "other")
			if err != nil || other.KeyID() == s.KeyID() {
				t.Fatalf("tenant other: %v, %v", other, err)
			}
		})
	}
}

func TestDefaultAlgorithmAndValidation(t *testing.T) {
	for _, alg := range []string{"", RS256, ES256, EdDSA} {
		if err := ValidateAlgorithm(alg); err != nil {
			t.Errorf("%q: %v", alg, err)
		}
	}
	for _, alg := range []string{"HS256", "rs256", "PS256", "none"} {
		if err := ValidateAlgorithm(alg); err == nil {
			t.Errorf("%q accepted", alg)
		}
	}
	st := openStore(t)
	s, err := New(st, "").Signer(context.Background(), "acme")
	if err != nil || s.Algorithm() != RS256 {
		t.Fatalf("default: %v %v", s, err)
	}
	if _, err := New(st, "HS256").Signer(context.Background(), "fresh"); err == nil {
		t.Fatal("unsupported algorithm created a key")
	}
}

// A key keeps its algorithm when the configuration changes; the next rotation switches.
func TestAlgorithmChangeTakesEffectAtRotation(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	s, err := New(st, EdDSA).Signer(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	m := New(st, ES256)
	s2, err := m.Signer(ctx, "acme")
	if err != nil || s2.KeyID() != s.KeyID() || s2.Algorithm() != EdDSA {
		t.Fatalf("after config change: %+v %v", s2, err)
	}
	if _, err := m.Rotate(ctx, "acme", time.Hour); err != nil {
		t.Fatal(err)
	}
	s3, err := m.Signer(ctx, "acme")
	if err != nil || s3.Algorithm() != ES256 {
		t.Fatalf("after rotation: %+v %v", s3, err)
	}
}

// Processes racing to create a tenant's first key end up with one key, used by all.
func TestFirstKeyRace(t *testing.T) {
	for _, alg := range allAlgs {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			st := openStore(t)
			const n = 8
			kids := make([]string, n)
			errs := make([]error, n)
			var start sync.WaitGroup
			start.Add(1)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					m := New(st, alg) // each goroutine is its own process
					start.Wait()
					s, err := m.Signer(ctx, "acme")
					if err != nil {
						errs[i] = err
						return
					}
					kids[i] = s.KeyID()
				}()
			}
			start.Done()
			wg.Wait()
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("goroutine %d: %v", i, errs[i])
				}
				if kids[i] != kids[0] {
					t.Fatalf("goroutine %d uses kid %s, goroutine 0 uses %s", i, kids[i], kids[0])
				}
			}
			if keys := listKeys(t, st, "acme"); len(keys) != 1 {
				t.Fatalf("%d keys stored, want 1", len(keys))
			}
		})
	}
}

// The same race inside one Manager: concurrent first calls share one load.
func TestConcurrentSignersOneManager(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	m := New(st, EdDSA)
	var wg sync.WaitGroup
	kids := make([]string, 16)
	for i := range kids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := m.Signer(ctx, "acme")
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := s.Sign(map[string]int{"i": i}); err != nil {
				t.Error(err)
			}
			kids[i] = s.KeyID()
		}()
	}
	wg.Wait()
	for _, k := range kids {
		if k != kids[0] {
			t.Fatalf("kids differ: %v", kids)
		}
	}
}

func TestRotationKeepsOldKeyUntilPublishUntil(t *testing.T) {
	for _, alg := range allAlgs {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			st := openStore(t)
			m := New(st, alg)
			other := New(st, alg) // another process sharing the store
			s1, err := m.Signer(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			if o, err := other.Signer(ctx, "acme"); err != nil || o.KeyID() != s1.KeyID() {
				t.Fatalf("other process: %v %v", o, err)
			}
			old, err := s1.Sign(map[string]string{"n": "old"})
			if err != nil {
				t.Fatal(err)
			}

			const publishFor = 1500 * time.Millisecond
			kid2, err := m.Rotate(ctx, "acme", publishFor)
			if err != nil {
				t.Fatal(err)
			}
			rotated := time.Now()
			s2, err := m.Signer(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			if s2.KeyID() != kid2 || kid2 == s1.KeyID() {
				t.Fatalf("after rotation signer kid %s, Rotate returned %s, old %s", s2.KeyID(), kid2, s1.KeyID())
			}
			jwks, err := m.JWKS(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := kidsOf(t, jwks), sorted(s1.KeyID(), kid2); !slices.Equal(got, want) {
				t.Fatalf("JWKS kids %v, want %v", got, want)
			}
			verify(t, jwks, old)
			fresh, _ := s2.Sign(map[string]string{"n": "new"})
			verify(t, jwks, fresh)

			keys := listKeys(t, st, "acme")
			if len(keys) != 2 || keys[0].KID != kid2 || keys[0].RetiredAt != nil ||
				keys[1].RetiredAt == nil || keys[1].PublishUntil == nil ||
				keys[1].PublishUntil.Sub(*keys[1].RetiredAt) != publishFor {
				t.Fatalf("stored keys after rotation: %+v", keys)
			}

			// The other process switches within RefreshInterval, without being told.
			deadline := time.Now().Add(RefreshInterval + 500*time.Millisecond)
			for {
				o, err := other.Signer(ctx, "acme")
				if err != nil {
					t.Fatal(err)
				}
				if o.KeyID() == kid2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("other process still signs with %s after %s", o.KeyID(), RefreshInterval)
				}
				time.Sleep(50 * time.Millisecond)
			}

			// Past PublishUntil the old key leaves the JWKS (within a refresh).
			time.Sleep(time.Until(rotated.Add(publishFor + 100*time.Millisecond)))
			m.Invalidate("acme")
			jwks, err = m.JWKS(ctx, "acme")
			if err != nil {
				t.Fatal(err)
			}
			if got := kidsOf(t, jwks); !slices.Equal(got, []string{kid2}) {
				t.Fatalf("JWKS kids after PublishUntil %v, want [%s]", got, kid2)
			}
			// The next rotation deletes the key whose publication ended.
			kid3, err := m.Rotate(ctx, "acme", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			keys = listKeys(t, st, "acme")
			if len(keys) != 2 || keys[0].KID != kid3 || keys[1].KID != kid2 {
				t.Fatalf("stored keys after second rotation: %+v", keys)
			}
		})
	}
}

func TestRotateWithoutKeyAndBadPeriod(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	m := New(st, ES256)
	if _, err := m.Rotate(ctx, "acme", -time.Second); err == nil {
		t.Fatal("negative publication period accepted")
	}
	kid, err := m.Rotate(ctx, "acme", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.Signer(ctx, "acme")
	if err != nil || s.KeyID() != kid {
		t.Fatalf("signer %v err %v, want kid %s", s, err, kid)
	}
}

func TestParsePrivateRejectsMismatch(t *testing.T) {
	k, err := Generate("acme", EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	k.Algorithm = RS256
	if _, err := parsePrivate(&k); err == nil {
		t.Fatal("Ed25519 key accepted as RS256")
	}
	k.Private = []byte("not pem")
	if _, err := parsePrivate(&k); err == nil {
		t.Fatal("garbage accepted")
	}
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// BenchmarkSign measures one lease token signature (the hot path of /authz/.jwt).
func BenchmarkSign(b *testing.B) {
	payload := map[string]any{
		"exp": 1675702153, "AppFeature-XYZ": true, "iss": "https://leasehold.example/t/acme",
		"sub": "9ee24fec-2c53-4171-9285-2c9934e5b559", "jti": "269c9f73-229c-4895-bfc2-1827d20bc8d5",
		"iat": 1675701253, "lic": "870f46a4-1faa-4847-955b-14ee5f74f3fe", "ibb": 1672531200,
		"ibe": 1704067200, "rfr": 1675702093, "hw": "T29qb1RoYWU3aWV6MENoYWlkaWUyZXRoMWphMmFoQmUK",
		"licenseProperties": map[string]string{"lang": "en,es", "country": "us"},
	}
	raw, _ := json.Marshal(payload)
	for _, alg := range allAlgs {
		k, err := Generate("acme", alg)
		if err != nil {
			b.Fatal(err)
		}
		priv, err := parsePrivate(&k)
		if err != nil {
			b.Fatal(err)
		}
		s, err := newSigner(k.KID, alg, priv)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Sign(json.RawMessage(raw)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Sign(json.RawMessage(raw)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkManagerSigner measures the cached lookup every signed response pays.
func BenchmarkManagerSigner(b *testing.B) {
	ctx := context.Background()
	m := New(openStore(b), EdDSA)
	if _, err := m.Signer(ctx, "acme"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Signer(ctx, "acme"); err != nil {
			b.Fatal(err)
		}
	}
}
