package extauth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/leasehold/leasehold/internal/domain"
)

// Trusted-issuer tokens come from anyone who can send a Bearer header; only a token signed
// by a trusted issuer's key, naming that issuer, unexpired, for our audience, may be
// accepted. The fuzz targets use a fixed Ed25519 key (static JWKS file) and a fixed clock.

var fuzzPriv = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

type fuzzSetup struct {
	v       *Verifier
	issuers []domain.TrustedIssuer
	pub     ed25519.PublicKey
}

func newFuzzSetup(f *testing.F) *fuzzSetup {
	pub := fuzzPriv.Public().(ed25519.PublicKey)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: "k1", Algorithm: string(jose.EdDSA), Use: "sig"}}}
	b, err := json.Marshal(set)
	if err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(f.TempDir(), "jwks.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		f.Fatal(err)
	}
	return &fuzzSetup{
		v: New(Options{Now: func() time.Time { return now }}),
		issuers: []domain.TrustedIssuer{
			{Issuer: "https://idp", JWKSFile: path, Audience: "leasehold", UserClaim: "preferred_username"},
			{Issuer: "https://plain", JWKSFile: path},
		},
		pub: pub,
	}
}

// signPayload signs payload as it is (any bytes) with the fixed key.
func signPayload(tb testing.TB, payload []byte, kid string) string {
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: fuzzPriv}, opts)
	if err != nil {
		tb.Fatal(err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := obj.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

func seedPayloads() [][]byte {
	var out [][]byte
	add := func(extra map[string]any) {
		b, _ := json.Marshal(claims(extra))
		out = append(out, b)
	}
	add(map[string]any{"preferred_username": "alice"})
	add(map[string]any{"preferred_username": "alice", "aud": []string{"x", "leasehold"}, "nbf": now.Unix()})
	add(map[string]any{"iss": "https://plain", "aud": nil})
	add(map[string]any{"preferred_username": "alice", "exp": now.Add(-time.Minute).Unix()})
	add(map[string]any{"preferred_username": "alice", "exp": 1e300})
	add(map[string]any{"preferred_username": "alice", "exp": float64(now.Unix()) + 0.5})
	add(map[string]any{"preferred_username": 7})
	add(map[string]any{"preferred_username": "alice", "aud": "x"})
	add(map[string]any{"preferred_username": "alice", "sub": ""})
	add(map[string]any{"preferred_username": "alice", "nbf": now.Add(time.Hour).Unix()})
	add(map[string]any{"iss": "https://evil", "preferred_username": "alice"})
	out = append(out, []byte(`{"iss":"https://plain","sub":"s1","exp":9999999999,"ISS":"https://evil"}`),
		[]byte(`{"iss":"https://evil","iss":"https://plain","sub":"s","exp":1780000000}`), []byte(`[]`), []byte(`null`))
	return out
}

// acceptedOK is the oracle for a token Verify accepted: an independent reading of its
// payload must show a trusted issuer, a subject, an exp not past (leeway included), our
// audience where one is configured, and the user claim where one is configured.
func (s *fuzzSetup) acceptedOK(t *testing.T, payload []byte, id *Identity) {
	t.Helper()
	var c map[string]json.RawMessage
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatalf("accepted a payload that is not a JSON object: %q", payload)
	}
	str := func(k string) string {
		var v string
		if json.Unmarshal(c[k], &v) != nil {
			return ""
		}
		return v
	}
	var ti *domain.TrustedIssuer
	for i := range s.issuers {
		if s.issuers[i].Issuer == str("iss") {
			ti = &s.issuers[i]
		}
	}
	if ti == nil || id.Issuer != ti.Issuer {
		t.Fatalf("accepted iss %s as %q", c["iss"], id.Issuer)
	}
	if sub := str("sub"); sub == "" || id.Subject != sub {
		t.Fatalf("accepted sub %s as %q", c["sub"], id.Subject)
	}
	var exp float64
	if json.Unmarshal(c["exp"], &exp) != nil || math.IsInf(exp, 0) {
		t.Fatalf("accepted exp %s", c["exp"])
	}
	if float64(now.Add(-DefaultLeeway).Unix()) > exp || id.Expiry.Unix() != int64(exp) {
		t.Fatalf("accepted exp %s (now %d) as %v", c["exp"], now.Unix(), id.Expiry)
	}
	if nbf, ok := c["nbf"]; ok {
		var n float64
		if json.Unmarshal(nbf, &n) != nil || n > float64(now.Add(DefaultLeeway).Unix()) {
			t.Fatalf("accepted nbf %s (now %d)", nbf, now.Unix())
		}
	}
	if ti.Audience != "" {
		var one string
		var many []string
		if !(json.Unmarshal(c["aud"], &one) == nil && one == ti.Audience) &&
			!(json.Unmarshal(c["aud"], &many) == nil && containsString(many, ti.Audience)) {
			t.Fatalf("accepted aud %s", c["aud"])
		}
	}
	if ti.UserClaim != "" {
		if u := str(ti.UserClaim); u == "" || id.User != u {
			t.Fatalf("accepted %s %s as user %q", ti.UserClaim, c[ti.UserClaim], id.User)
		}
	} else if id.User != id.Subject {
		t.Fatalf("user %q, sub %q", id.User, id.Subject)
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func checkVerifyErr(t *testing.T, raw string, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, ErrUntrusted) && !errors.Is(err, ErrInvalid) {
		t.Fatalf("%.60q: untyped error %v", raw, err)
	}
	if err != nil && strings.ContainsAny(err.Error(), "\r\n") {
		t.Fatalf("multi-line error %q", err)
	}
}

// FuzzVerifyToken mutates whole tokens: whatever is accepted carries a valid signature of
// the trusted key over exactly its header and payload, an asymmetric algorithm, and claims
// that pass the oracle.
func FuzzVerifyToken(f *testing.F) {
	s := newFuzzSetup(f)
	for _, p := range seedPayloads() {
		f.Add(signPayload(f, p, "k1"))
	}
	f.Add(signPayload(f, seedPayloads()[0], ""))
	f.Add(signPayload(f, seedPayloads()[0], "unknown"))
	f.Add("eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString(seedPayloads()[0]) + ".")
	f.Add("eyJhbGciOiJIUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(seedPayloads()[0]) + ".c2ln")
	// Signed by a key nobody trusts, under the trusted key's kid.
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, ed25519.SeedSize))
	forged := strings.Split(signPayload(f, seedPayloads()[0], "k1"), ".")
	f.Add(forged[0] + "." + forged[1] + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(other, []byte(forged[0]+"."+forged[1]))))
	f.Add("a.b.c")
	f.Add("opaque-token")
	f.Fuzz(func(t *testing.T, raw string) {
		id, err := s.v.Verify(context.Background(), s.issuers, raw)
		checkVerifyErr(t, raw, err)
		if !LooksLikeJWT(raw) && !errors.Is(err, ErrUntrusted) {
			t.Fatalf("%.60q is no JWT, yet %v", raw, err)
		}
		if err != nil {
			return
		}
		parts := strings.Split(raw, ".")
		// Strict: one signed token has one spelling (the decoder would ignore a segment's
		// unused low bits, and the signature is checked over the decoded bytes).
		b64 := base64.RawURLEncoding.Strict()
		header, err1 := b64.DecodeString(parts[0])
		payload, err2 := b64.DecodeString(parts[1])
		sig, err3 := b64.DecodeString(parts[2])
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("accepted %q with parts that are not canonical base64url", raw)
		}
		var h struct {
			Alg string `json:"alg"`
		}
		if json.Unmarshal(header, &h) != nil || h.Alg != string(jose.EdDSA) {
			t.Fatalf("accepted header %q", header)
		}
		if !ed25519.Verify(s.pub, []byte(parts[0]+"."+parts[1]), sig) {
			t.Fatalf("accepted %q without a valid signature", raw)
		}
		s.acceptedOK(t, payload, id)
	})
}

// FuzzVerifyClaims signs arbitrary payloads with the trusted key, so the fuzzer explores
// the claims checks behind the signature: what is accepted passes the oracle, and a plain
// well-formed token (the claims a provider sends, nothing odd) is accepted.
func FuzzVerifyClaims(f *testing.F) {
	s := newFuzzSetup(f)
	for _, p := range seedPayloads() {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		raw := signPayload(t, payload, "k1")
		id, err := s.v.Verify(context.Background(), s.issuers, raw)
		checkVerifyErr(t, raw, err)
		if err == nil {
			s.acceptedOK(t, payload, id)
			return
		}
		// The reverse: exactly iss, sub, aud, exp and the user claim, all of the plain
		// types, valid → accepted.
		var c struct {
			Iss  string `json:"iss"`
			Sub  string `json:"sub"`
			Aud  string `json:"aud"`
			Exp  int64  `json:"exp"`
			User string `json:"preferred_username"`
		}
		var keys map[string]json.RawMessage
		dec := json.NewDecoder(bytes.NewReader(payload))
		dec.DisallowUnknownFields()
		if json.Unmarshal(payload, &keys) != nil || len(keys) != 5 || dec.Decode(&c) != nil {
			return
		}
		for k := range keys {
			if !containsString([]string{"iss", "sub", "aud", "exp", "preferred_username"}, k) {
				return // a key that only folds to one of them
			}
		}
		if c.Iss == "https://idp" && c.Sub != "" && c.Aud == "leasehold" && c.User != "" &&
			c.Exp > now.Unix() && c.Exp < now.Add(24*time.Hour).Unix() {
			t.Fatalf("a plain valid token refused: %v (%s)", err, payload)
		}
	})
}

// FuzzParseJWKS: a key set from an issuer's jwks_uri or jwks_file keeps only valid public
// asymmetric signing keys, and is refused when it has none.
func FuzzParseJWKS(f *testing.F) {
	pub := fuzzPriv.Public().(ed25519.PublicKey)
	good, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: "k1", Algorithm: "EdDSA", Use: "sig"}}})
	priv, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: fuzzPriv, KeyID: "k2"}}})
	f.Add(good)
	f.Add(priv)
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"sym"},{"kty":"XYZ","kid":"odd"},{"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, body []byte) {
		keys, err := parseJWKS(body)
		if err != nil {
			if len(keys) != 0 || strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("%v with %d keys", err, len(keys))
			}
			return
		}
		if len(keys) == 0 {
			t.Fatal("no error and no key")
		}
		for _, k := range keys {
			if !k.Valid() || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
				t.Fatalf("kept key %+v", k)
			}
			if _, symmetric := k.Key.([]byte); symmetric {
				t.Fatalf("kept a symmetric key %q", k.KeyID)
			}
		}
	})
}
