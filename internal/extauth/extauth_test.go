package extauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/leasehold/leasehold/internal/domain"
)

type key struct {
	kid    string
	alg    jose.SignatureAlgorithm
	priv   any
	public jose.JSONWebKey
}

func newKey(t *testing.T, kid string, alg jose.SignatureAlgorithm) *key {
	t.Helper()
	var priv, pub any
	switch alg {
	case jose.RS256:
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		priv, pub = k, k.Public()
	case jose.ES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv, pub = k, k.Public()
	case jose.EdDSA:
		p, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv, pub = k, p
	}
	return &key{kid: kid, alg: alg, priv: priv, public: jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: string(alg), Use: "sig"}}
}

func (k *key) sign(t *testing.T, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if k.kid != "" {
		opts = opts.WithHeader("kid", k.kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func jwks(t *testing.T, keys ...*key) []byte {
	t.Helper()
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.public)
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func claims(extra map[string]any) map[string]any {
	c := map[string]any{"iss": "https://idp", "sub": "s1", "aud": "leasehold", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// jwksServer serves whatever set currently holds and counts the fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    []byte
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{body: body}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		_, _ = w.Write(s.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(b []byte) {
	s.mu.Lock()
	s.body = b
	s.mu.Unlock()
}

func TestVerifyFile(t *testing.T) {
	k := newKey(t, "k1", jose.RS256)
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwks(t, k), 0o600); err != nil {
		t.Fatal(err)
	}
	issuers := []domain.TrustedIssuer{{Issuer: "https://idp", JWKSFile: path, Audience: "leasehold", UserClaim: "preferred_username"}}
	v := New(Options{Now: func() time.Time { return now }})
	ctx := context.Background()

	id, err := v.Verify(ctx, issuers, k.sign(t, claims(map[string]any{"preferred_username": "alice"})))
	if err != nil || id.User != "alice" || id.Subject != "s1" || id.Issuer != "https://idp" || !id.Expiry.Equal(now.Add(time.Hour)) {
		t.Fatalf("good token: %+v %v", id, err)
	}
	other := newKey(t, "k1", jose.RS256)
	cases := map[string]string{
		"wrong aud":     k.sign(t, claims(map[string]any{"preferred_username": "a", "aud": "x"})),
		"expired":       k.sign(t, claims(map[string]any{"preferred_username": "a", "exp": now.Add(-time.Minute).Unix()})),
		"nbf":           k.sign(t, claims(map[string]any{"preferred_username": "a", "nbf": now.Add(time.Minute).Unix()})),
		"no exp":        k.sign(t, claims(map[string]any{"preferred_username": "a", "exp": nil})),
		"no sub":        k.sign(t, claims(map[string]any{"preferred_username": "a", "sub": nil})),
		"no user claim": k.sign(t, claims(nil)),
		"bad signature": other.sign(t, claims(map[string]any{"preferred_username": "a"})),
	}
	for name, tok := range cases {
		if _, err := v.Verify(ctx, issuers, tok); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Within the leeway, a just-expired token is still accepted.
	if _, err := v.Verify(ctx, issuers, k.sign(t, claims(map[string]any{"preferred_username": "a", "exp": now.Add(-10 * time.Second).Unix()}))); err != nil {
		t.Errorf("within leeway: %v", err)
	}
	for name, tok := range map[string]string{
		"other iss": k.sign(t, claims(map[string]any{"iss": "https://evil"})),
		"opaque":    "abcdef",
		"garbage":   "a.b.c",
	} {
		if _, err := v.Verify(ctx, issuers, tok); !errors.Is(err, ErrUntrusted) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// HMAC tokens (a JWKS is public) and alg none are refused outright.
	hs, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(strings.Repeat("k", 32))}, nil)
	hsTok, _ := jwt.Signed(hs).Claims(claims(nil)).Serialize()
	if _, err := v.Verify(ctx, issuers, hsTok); err == nil {
		t.Error("HS256 accepted")
	}
	none := "eyJhbGciOiJub25lIn0." + strings.Split(hsTok, ".")[1] + "."
	if _, err := v.Verify(ctx, issuers, none); err == nil {
		t.Error("alg none accepted")
	}
}

func TestVerifyURIRefetchOnUnknownKid(t *testing.T) {
	k1, k2 := newKey(t, "k1", jose.ES256), newKey(t, "k2", jose.EdDSA)
	srv := newJWKSServer(t, jwks(t, k1))
	clock := now
	var mu sync.Mutex
	v := New(Options{MinRefetch: time.Minute, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }})
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	issuers := []domain.TrustedIssuer{{Issuer: "https://idp", JWKSURI: srv.URL}}
	ctx := context.Background()
	for range 3 {
		if _, err := v.Verify(ctx, issuers, k1.sign(t, claims(nil))); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1 (cached)", n)
	}
	// The provider rotates to k2: the first token with the new kid triggers a re-read...
	srv.set(jwks(t, k1, k2))
	advance(2 * time.Minute)
	if _, err := v.Verify(ctx, issuers, k2.sign(t, claims(nil))); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	// ...but made-up kids cannot make it fetch more than once per MinRefetch.
	for i := range 5 {
		bogus := newKey(t, "bogus"+string(rune('a'+i)), jose.ES256)
		if _, err := v.Verify(ctx, issuers, bogus.sign(t, claims(nil))); !errors.Is(err, ErrInvalid) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after a burst of unknown kids right after a fetch, want 2", n)
	}
	advance(2 * time.Minute)
	for i := range 5 {
		bogus := newKey(t, "later"+string(rune('a'+i)), jose.ES256)
		_, _ = v.Verify(ctx, issuers, bogus.sign(t, claims(nil)))
	}
	if n := srv.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches after another burst a MinRefetch later, want 3", n)
	}
	// A failing provider keeps the known keys working.
	srv.set([]byte("not json"))
	advance(2 * time.Hour)
	if _, err := v.Verify(ctx, issuers, k1.sign(t, claims(map[string]any{"exp": clock.Add(time.Hour).Unix()}))); err != nil {
		t.Fatalf("known key while the provider fails: %v", err)
	}
}

func TestVerifyURIBounds(t *testing.T) {
	k := newKey(t, "k1", jose.RS256)
	big := newJWKSServer(t, []byte(`{"keys":[`+strings.Repeat(" ", 2<<20)+`]}`))
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	down := newJWKSServer(t, nil)
	down.Close()
	v := New(Options{HTTPClient: &http.Client{Timeout: 300 * time.Millisecond}})
	for name, uri := range map[string]string{"too large": big.URL, "slow": slow.URL, "down": down.URL} {
		start := time.Now()
		_, err := v.Verify(context.Background(), []domain.TrustedIssuer{{Issuer: "https://idp", JWKSURI: uri}}, k.sign(t, claims(map[string]any{"exp": time.Now().Add(time.Hour).Unix()})))
		if !errors.Is(err, ErrInvalid) || time.Since(start) > 3*time.Second {
			t.Errorf("%s: %v after %v", name, err, time.Since(start))
		}
	}
}

func TestParseJWKSSkipsOddKeys(t *testing.T) {
	k := newKey(t, "k1", jose.ES256)
	good, _ := json.Marshal(k.public)
	body := `{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"sym"},{"kty":"XYZ","kid":"odd"},` +
		`{"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},` + string(good) + `]}`
	keys, err := parseJWKS([]byte(body))
	if err != nil || len(keys) != 1 || keys[0].KeyID != "k1" {
		t.Fatalf("keys: %v %v", keys, err)
	}
	if _, err := parseJWKS([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)); err == nil {
		t.Fatal("a set of symmetric keys accepted")
	}
}

func TestLooksLikeJWT(t *testing.T) {
	for s, want := range map[string]bool{
		"a.b.c": true, "eyJ.eyJ.sig-_": true, "abc": false, "a.b": false, "a..c": false, "a.b.c.d": false,
		"a.b.c=": false, "a b.c.d": false, strings.Repeat("a", MaxTokenLen) + ".b.c": false,
	} {
		if got := LooksLikeJWT(s); got != want {
			t.Errorf("LooksLikeJWT(%.20q) = %v", s, got)
		}
	}
}
