package wire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// golden compares got with testdata/name.golden (indented for reading; the comparison is on
// the compact bytes the server sends).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got, "", "  "); err != nil {
		t.Fatalf("%s: output is not JSON: %v\n%s", name, err, got)
	}
	pretty.WriteByte('\n')
	if *update {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, want); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if !bytes.Equal(got, compact.Bytes()) {
		t.Fatalf("%s differs\n got %s\nwant %s", name, got, compact.Bytes())
	}
}

var (
	meta = Meta{
		Issuer:   "https://leasehold.example/t/acme",
		Subject:  "9ee24fec-2c53-4171-9285-2c9934e5b559",
		IssuedAt: time.Unix(1675701260, 0),
	}
	validFrom  = time.Unix(1672531200, 0).UTC()
	validUntil = time.Unix(1704067200, 0).UTC()
	license    = &domain.License{
		ID:         "870f46a4-1faa-4847-955b-14ee5f74f3fe",
		ValidFrom:  &validFrom,
		ValidUntil: &validUntil,
		Properties: map[string]string{"lang": "en,es", "country": "us"},
	}
	// seedLease reproduces the seed's example payload.
	seedLease = &domain.Lease{
		ID:        "269c9f73-229c-4895-bfc2-1827d20bc8d5",
		LicenseID: license.ID,
		Item:      "AppFeature-XYZ",
		HW:        seedHW,
		Version:   "1.6.14",
		RenewedAt: time.Unix(1675701253, 0),
		ExpiresAt: time.Unix(1675702153, 0),
		RefreshAt: time.Unix(1675702093, 0),
	}
)

func TestConsumePayloads(t *testing.T) {
	overage := *seedLease
	overage.Overage = true
	bare := &domain.Lease{
		ID: "lease-2", LicenseID: "lic-2", Item: "AppFeature-ABC",
		RenewedAt: time.Unix(1675701000, 0), ExpiresAt: time.Unix(1675701900, 0), RefreshAt: time.Unix(1675701720, 0),
	}
	badArg, err := ParseConsumeRaw("AppFeature-XYZ&consumeCount=-1", "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		meta   Meta
		result engine.Result
	}{
		{"consume_seed", meta, engine.Result{Item: "AppFeature-XYZ", Lease: seedLease, License: license}},
		{"consume_overage", meta, engine.Result{Item: "AppFeature-XYZ", Lease: &overage, License: license}},
		// No version, hw, validity or properties: those fields are left out. No license
		// object either: lic comes from the lease.
		{"consume_bare", meta, engine.Result{Item: "AppFeature-ABC", Lease: bare}},
		{"consume_no_subject", Meta{Issuer: meta.Issuer, IssuedAt: meta.IssuedAt}, engine.Result{Item: "AppFeature-ABC", Lease: bare}},
		{"check", meta, engine.Result{Item: "AppFeature-XYZ", License: license}},
		{"check_bare_license", meta, engine.Result{Item: "AppFeature-XYZ", License: &domain.License{ID: "lic-2"}}},
		{"error_quota", meta, engine.Result{Item: "AppFeature-XYZ", Err: domain.NewLicenseError(
			domain.CodeQuotaExceeded, "AppFeature-XYZ", "license 870f46a4-1faa-4847-955b-14ee5f74f3fe: 2 of 2 seats held")}},
		{"error_bare", meta, engine.Result{Item: "AppFeature-XYZ", Err: &domain.LicenseError{Code: domain.CodeNotAuthorized}}},
		{"error_bad_argument", meta, engine.Result{Item: "AppFeature-XYZ", Err: badArg.Invalid[0]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RenderConsume(JSON, tt.meta, []engine.Result{tt.result}, nil)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name, got)
		})
	}
}

// The seed's example payload, field for field and in its order.
func TestSeedPayloadOrder(t *testing.T) {
	got, err := ConsumePayload(meta, engine.Result{Item: "AppFeature-XYZ", Lease: seedLease, License: license}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"exp":1675702153,"AppFeature-XYZ":true,"iss":"https://leasehold.example/t/acme",` +
		`"sub":"9ee24fec-2c53-4171-9285-2c9934e5b559","jti":"269c9f73-229c-4895-bfc2-1827d20bc8d5",` +
		`"iat":1675701253,"ver":"1.6.14","lic":"870f46a4-1faa-4847-955b-14ee5f74f3fe","ibb":1672531200,` +
		`"ibe":1704067200,"rfr":1675702093,"hw":"T29qb1RoYWU3aWV6MENoYWlkaWUyZXRoMWphMmFoQmUK",` +
		`"licenseProperties":{"country":"us","lang":"en,es"}}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func multiResults() []engine.Result {
	return []engine.Result{
		{Item: "AppFeature-XYZ", Lease: seedLease, License: license},
		{Item: "AppFeature-ABC", Err: domain.NewLicenseError(domain.CodeNoLicenseFound, "AppFeature-ABC", "no license covers AppFeature-ABC")},
		{Item: "PlatformService", License: license},
	}
}

func TestRenderFormats(t *testing.T) {
	results := multiResults()
	got, err := RenderConsume(JSON, meta, results, nil)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "consume_multi", got)

	got, err = RenderConsume(Text, meta, results, nil)
	if err != nil || string(got) != "true&false&true" {
		t.Fatalf("text %q %v", got, err)
	}
	got, err = RenderConsume(Text, meta, results[1:2], nil)
	if err != nil || string(got) != "false" {
		t.Fatalf("text %q %v", got, err)
	}
	if _, err := RenderConsume(JWT, meta, results, nil); err == nil {
		t.Fatal("JWT without a signer")
	}
}

func TestRenderJWT(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	js, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: priv, KeyID: "k1"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	sign := func(payload any) (string, error) {
		b, err := json.Marshal(payload)
		if err != nil {
			return "", err
		}
		jws, err := js.Sign(b)
		if err != nil {
			return "", err
		}
		return jws.CompactSerialize()
	}
	verify := func(tok string) []byte {
		t.Helper()
		jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.EdDSA})
		if err != nil {
			t.Fatal(err)
		}
		payload, err := jws.Verify(priv.Public())
		if err != nil {
			t.Fatal(err)
		}
		return payload
	}

	results := multiResults()
	body, err := RenderConsume(JWT, meta, results, sign)
	if err != nil {
		t.Fatal(err)
	}
	toks := strings.Split(string(body), "&")
	if len(toks) != len(results) {
		t.Fatalf("%d tokens for %d items", len(toks), len(results))
	}
	for i, tok := range toks {
		want, _ := ConsumePayload(meta, results[i]).MarshalJSON()
		if got := verify(tok); !bytes.Equal(got, want) {
			t.Fatalf("token %d payload\n got %s\nwant %s", i, got, want)
		}
	}

	rel := releaseResults()
	body, err = RenderRelease(JWT, meta, rel, sign)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ReleasePayload(meta, rel).MarshalJSON()
	if got := verify(string(body)); !bytes.Equal(got, want) {
		t.Fatalf("release payload\n got %s\nwant %s", got, want)
	}

	failing := func(any) (string, error) { return "", os.ErrPermission }
	if _, err := RenderConsume(JWT, meta, results, failing); err == nil {
		t.Fatal("signing error swallowed")
	}
	if _, err := RenderRelease(JWT, meta, rel, failing); err == nil {
		t.Fatal("signing error swallowed")
	}
}

func releaseResults() []engine.ReleaseResult {
	return []engine.ReleaseResult{
		{ID: "d04551aa-7c0a-47a6-aa85-ed345e591ea9"},
		{ID: "unknown-lease", Err: domain.NewLicenseError(domain.CodeNoConsumptionFoundByID, "unknown-lease", "no lease unknown-lease")},
		{ID: "d82cde79-da02-4e24-861c-ed3bf96a4fed", Err: domain.NewLicenseError(domain.CodeReleaseNotAllowed, "d82cde79-da02-4e24-861c-ed3bf96a4fed", "model floating forbids release")},
	}
}

func TestRenderRelease(t *testing.T) {
	rel := releaseResults()
	got, err := RenderRelease(JSON, meta, rel, nil)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "release", got)
	got, err = RenderRelease(JSON, meta, rel[:1], nil)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "release_one", got)
	got, err = RenderRelease(Text, meta, rel, nil)
	if err != nil || string(got) != "true&false&false" {
		t.Fatalf("text %q %v", got, err)
	}
}

func TestParseErrorBody(t *testing.T) {
	_, err := ParseConsumeRaw("X&"+strings.Repeat("&", MaxQueryLen), "")
	pe, ok := err.(*ParseError)
	if !ok {
		t.Fatalf("error %v", err)
	}
	golden(t, "parse_error_too_large", pe.Body())
	_, err = ParseConsumeRaw("hw=abc", "")
	golden(t, "parse_error_no_items", err.(*ParseError).Body())
}

func TestParseFormat(t *testing.T) {
	for suffix, want := range map[string]Format{"": Text, ".txt": Text, ".json": JSON, ".jwt": JWT} {
		if f, ok := ParseFormat(suffix); !ok || f != want {
			t.Errorf("%q: %v %v", suffix, f, ok)
		}
	}
	for _, suffix := range []string{".xml", "jwt", ".JSON"} {
		if _, ok := ParseFormat(suffix); ok {
			t.Errorf("%q accepted", suffix)
		}
	}
	if Text.ContentType() != "text/plain; charset=utf-8" || JSON.ContentType() != "application/json" || JWT.ContentType() != "application/jwt" {
		t.Error("content types")
	}
}

// A repeated key (which the parser prevents) still yields valid JSON: the first value wins.
func TestPayloadDuplicateKeys(t *testing.T) {
	got, err := Payload{{"iss", true}, {"iss", "x"}, {"a<b", "é"}}.MarshalJSON()
	if err != nil || !json.Valid(got) || string(got) != `{"iss":true,"a\u003cb":"é"}` {
		t.Fatalf("%s %v", got, err)
	}
	if v, ok := (Payload{{"a", int64(1)}}).Get("a"); !ok || v != int64(1) {
		t.Fatal("Get")
	}
}
