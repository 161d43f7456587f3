package wire

// Benchmarks of the /authz/ wire format: parsing a typical renewal query and rendering a
// lease as text, JSON and (with a signer that does no cryptography, so that only the
// rendering is measured) JWT.
//
//	go test -run '^$' -bench . -benchmem ./internal/server/authz/wire/

import (
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
)

const benchRenewQuery = "AppFeature-XYZ&hw=T29qb1RoYWU3aWV6MENoYWlkaWUyZXRoMWphMmFoQmUK&leaseId=6f1c2a0e-4f8d-4a61-9d4b-3c1f0b8e7a52"

func BenchmarkParseRenew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		p, err := ParseConsumeRaw(benchRenewQuery, "")
		if err != nil || len(p.Request.Items) != 1 {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseMultiItem(b *testing.B) {
	q := "AppFeature-XYZ=;leaseId=6f1c2a0e-4f8d-4a61-9d4b-3c1f0b8e7a52&AppFeature-ABC=;leaseId=0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6" +
		"&hw=laptop-1;name=Laptop%20One&process=42;name=editor&version=1.2.3&consumptionMode=cache&consumeDuration=600000"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseConsumeRaw(q, ""); err != nil {
			b.Fatal(err)
		}
	}
}

func benchResult() (Meta, []engine.Result) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	from, until := now.Add(-24*time.Hour), now.Add(365*24*time.Hour)
	lic := &domain.License{
		ID: "870f46a4-1faa-4847-955b-14ee5f74f3fe", Product: "PlatformService", ValidFrom: &from, ValidUntil: &until,
		Properties: map[string]string{"lang": "en,es", "country": "us"},
	}
	lease := &domain.Lease{
		ID: "6f1c2a0e-4f8d-4a61-9d4b-3c1f0b8e7a52", LicenseID: lic.ID, Item: "AppFeature-XYZ",
		HW: "T29qb1RoYWU3aWV6MENoYWlkaWUyZXRoMWphMmFoQmUK", RenewedAt: now,
		ExpiresAt: now.Add(15 * time.Minute), RefreshAt: now.Add(12 * time.Minute),
	}
	m := Meta{Issuer: "http://127.0.0.1:8080/t/acme", Subject: "alice", IssuedAt: now}
	return m, []engine.Result{{Item: "AppFeature-XYZ", Lease: lease, License: lic, Renewed: true}}
}

func BenchmarkRender(b *testing.B) {
	m, results := benchResult()
	fakeSign := func(payload any) (string, error) { return "eyJhbGciOiJub25lIn0.x.y", nil }
	for _, f := range []Format{Text, JSON, JWT} {
		b.Run(f.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := RenderConsume(f, m, results, fakeSign); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
