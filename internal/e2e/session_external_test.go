package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const externalConfig = `
listen: "{{LISTEN}}"
public_url: "{{URL}}"
store: "{{STORE}}"
admin_token: test-admin
documents: "{{DIR}}/documents"
tenants:
  - name: ext
    default: true
    session: {item: PlatformService}
    trusted_issuers:
      - {issuer: "https://idp.example", jwks_file: "{{DIR}}/jwks.json", audience: leasehold, user_claim: preferred_username}
      - {issuer: "https://idp2.example", jwks_uri: "{{JWKS}}", audience: leasehold}
    organizations: [{id: org-e}]
    users:
      - {username: alice, password: alice-pw, organization: org-e}
      - {username: sub-42, password: x-pw-long, organization: org-e}
      - {username: dave, password: dave-pw, organization: org-e, enabled: false}
    products: [{name: PlatformService, items: [AppFeature-XYZ]}]
    models: [{name: floating, anchors: [user, hw], sessions_per_seat: 5}]
    licenses: [{id: lic-e, product: PlatformService, model: floating, seats: 5, owner: {organization: org-e}}]
`

type testIssuer struct {
	iss    string
	kid    string
	signer jose.Signer
	jwk    jose.JSONWebKey
}

func newRSAIssuer(t *testing.T, iss, kid string) *testIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	return &testIssuer{iss: iss, kid: kid, signer: sig, jwk: jose.JSONWebKey{Key: key.Public(), KeyID: kid, Algorithm: "RS256", Use: "sig"}}
}

func newECIssuer(t *testing.T, iss, kid string) *testIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	return &testIssuer{iss: iss, kid: kid, signer: sig, jwk: jose.JSONWebKey{Key: key.Public(), KeyID: kid, Algorithm: "ES256", Use: "sig"}}
}

func jwksOf(t *testing.T, issuers ...*testIssuer) []byte {
	t.Helper()
	set := jose.JSONWebKeySet{}
	for _, i := range issuers {
		set.Keys = append(set.Keys, i.jwk)
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// token signs claims; iss defaults to the issuer's, aud to leasehold, exp to +1 h.
func (i *testIssuer) token(t *testing.T, sub string, extra map[string]any) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{
		"iss": i.iss, "sub": sub, "aud": "leasehold",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	for k, v := range extra {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	raw, err := jwt.Signed(i.signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestSessionExternalIssuer: JWTs of trusted issuers (a JWKS file, a JWKS URL) open a
// session of (iss, sub) that can consume; a newer token extends it; wrong aud, iss,
// signature or an expired token is refused; /session/refresh explains itself.
func TestSessionExternalIssuer(t *testing.T) {
	dir := t.TempDir()
	idp := newRSAIssuer(t, "https://idp.example", "k1")
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), jwksOf(t, idp), 0o600); err != nil {
		t.Fatal(err)
	}
	idp2 := newECIssuer(t, "https://idp2.example", "e1")
	var fetches atomic.Int32
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwksOf(t, idp2))
	}))
	defer jwksSrv.Close()
	yaml := strings.ReplaceAll(externalConfig, "{{JWKS}}", jwksSrv.URL+"/jwks")
	ts := startAt(t, yaml, dir, "sqlite://"+filepath.Join(dir, "leasehold.db"))
	base := ts.URL

	// A token of the file issuer acting as alice (preferred_username) consumes.
	tok := idp.token(t, "user-1", map[string]any{"preferred_username": "alice"})
	got := authzJSON(t, base, tok, "AppFeature-XYZ&hw=h1")
	if got["AppFeature-XYZ"] != true {
		t.Fatalf("authz with an external token: %v", got)
	}
	sessions := func() []any {
		r := get(t, base+"/admin/v1/tenants/ext/sessions", "test-admin")
		list, _ := sessWant(t, "admin sessions", r, http.StatusOK)["sessions"].([]any)
		return list
	}
	if s := sessions(); len(s) != 1 || s[0].(map[string]any)["user"] != "alice" {
		t.Fatalf("sessions: %v", s)
	}
	first := sessions()[0].(map[string]any)
	// The same (iss, sub) with a newer token continues the session and extends it.
	newer := idp.token(t, "user-1", map[string]any{"preferred_username": "alice", "exp": time.Now().Add(2 * time.Hour).Unix()})
	sessWant(t, "newer token", get(t, base+"/entitlements/licenses", newer), http.StatusOK)
	s := sessions()
	if len(s) != 1 || s[0].(map[string]any)["id"] != first["id"] {
		t.Fatalf("a newer token opened another session: %v", s)
	}
	if a, b := first["expires_at"].(string), s[0].(map[string]any)["expires_at"].(string); a >= b {
		t.Fatalf("the session was not extended: %s -> %s", a, b)
	}
	// The older token, still valid, keeps working on the same session.
	sessWant(t, "older token", get(t, base+"/entitlements/licenses", tok), http.StatusOK)

	// The URL issuer; the user is sub (no user_claim).
	tok2 := idp2.token(t, "sub-42", nil)
	sessWant(t, "jwks_uri issuer", get(t, base+"/entitlements/licenses", tok2), http.StatusOK)
	sessWant(t, "jwks_uri issuer again", get(t, base+"/session/documents", tok2), http.StatusOK)
	if n := fetches.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1 (cached)", n)
	}
	if s := sessions(); len(s) != 2 {
		t.Fatalf("sessions: %v", s)
	}

	// Refusals.
	stranger := newRSAIssuer(t, "https://idp.example", "k1") // same iss and kid, another key
	for name, bad := range map[string]string{
		"wrong aud":     idp.token(t, "user-1", map[string]any{"preferred_username": "alice", "aud": "someone-else"}),
		"untrusted iss": idp.token(t, "user-1", map[string]any{"preferred_username": "alice", "iss": "https://evil.example"}),
		"expired":       idp.token(t, "user-1", map[string]any{"preferred_username": "alice", "exp": time.Now().Add(-time.Hour).Unix()}),
		"not yet valid": idp.token(t, "user-1", map[string]any{"preferred_username": "alice", "nbf": time.Now().Add(time.Hour).Unix()}),
		"no exp":        idp.token(t, "user-1", map[string]any{"preferred_username": "alice", "exp": nil}),
		"bad signature": stranger.token(t, "user-1", map[string]any{"preferred_username": "alice"}),
		"unknown user":  idp.token(t, "user-2", map[string]any{"preferred_username": "nobody"}),
		"disabled user": idp.token(t, "user-3", map[string]any{"preferred_username": "dave"}),
		"no user claim": idp.token(t, "user-4", nil),
		"unknown kid":   idp2.tokenWithKid(t, "nope", "sub-42"),
		"garbled":       "aaaa.bbbb.cccc",
		"tampered":      tok + "x",
	} {
		sessWant(t, name, get(t, base+"/entitlements/licenses", bad), http.StatusUnauthorized)
	}
	sessWant(t, "wrong tenant named", get(t, base+"/t/nope/entitlements/licenses", tok), http.StatusUnauthorized)

	// Refresh is the provider's business.
	for name, r := range map[string]response{
		"refreshToken": do(t, http.MethodPost, base+"/session/refresh", map[string]string{"Content-Type": "application/json"}, `{"refreshToken":"`+tok+`"}`),
		"bearer":       do(t, http.MethodPost, base+"/session/refresh", sessBearer(tok), ""),
	} {
		m := sessWant(t, "refresh with an external token ("+name+")", r, http.StatusBadRequest)
		if msg, _ := m["message"].(string); !strings.Contains(msg, "external OAuth2 provider") {
			t.Fatalf("refresh message: %v", m)
		}
	}
	// Logging out ends the (iss, sub) session and invalidates the tokens issued before it
	// (as webPDF: a logout invalidates the token); a token issued later opens a new one.
	sessWant(t, "logout", do(t, http.MethodPost, base+"/session/logout", sessBearer(newer), ""), http.StatusOK)
	if s := sessions(); len(s) != 1 {
		t.Fatalf("sessions after logout: %v", s)
	}
	sessWant(t, "token after logout", get(t, base+"/entitlements/licenses", newer), http.StatusUnauthorized)
	sessWant(t, "older token after logout", get(t, base+"/entitlements/licenses", tok), http.StatusUnauthorized)
	fresh := idp.token(t, "user-1", map[string]any{"preferred_username": "alice", "iat": time.Now().Add(time.Second).Unix()})
	sessWant(t, "token issued after logout", get(t, base+"/entitlements/licenses", fresh), http.StatusOK)
	if s := sessions(); len(s) != 2 {
		t.Fatalf("sessions after a new token: %v", s)
	}
	sessWant(t, "pre-logout token on the new session", get(t, base+"/entitlements/licenses", newer), http.StatusUnauthorized)
}

// tokenWithKid signs with the issuer's key but names another kid.
func (i *testIssuer) tokenWithKid(t *testing.T, kid, sub string) string {
	t.Helper()
	// The EC issuer's private key is not kept; sign with a fresh key under the given kid:
	// the verifier must refuse it whatever the key.
	other := newECIssuer(t, i.iss, kid)
	return other.token(t, sub, nil)
}
