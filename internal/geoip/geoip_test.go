package geoip_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/leasehold/leasehold/internal/geoip"
	"github.com/leasehold/leasehold/internal/geoip/geoiptest"
)

func TestCountry(t *testing.T) {
	path := geoiptest.Write(t, map[string]string{
		"127.0.0.0/8":     "US",
		"10.1.0.0/16":     "fi",
		"2001:db8::/32":   "DE",
		"198.51.100.0/24": "GB",
	})
	db, err := geoip.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	tests := []struct {
		addr    string
		want    string
		located bool
	}{
		{"127.0.0.1", "US", true},
		{"10.1.2.3", "FI", true}, // upper-cased
		{"::ffff:127.0.0.1", "US", true},
		{"2001:db8::1", "DE", true},
		{"198.51.100.7", "GB", true},
		{"10.2.0.1", "", false},
		{"8.8.8.8", "", false},
	}
	for _, tt := range tests {
		got, ok := db.Country(netip.MustParseAddr(tt.addr))
		if got != tt.want || ok != tt.located {
			t.Errorf("Country(%s) = %q, %v; want %q, %v", tt.addr, got, ok, tt.want, tt.located)
		}
	}
	if _, ok := db.Country(netip.Addr{}); ok {
		t.Error("the zero address was placed")
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := geoip.Open(filepath.Join(t.TempDir(), "missing.mmdb")); err == nil {
		t.Error("missing file opened")
	}
	bad := filepath.Join(t.TempDir(), "bad.mmdb")
	if err := os.WriteFile(bad, []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := geoip.Open(bad); err == nil {
		t.Error("garbage opened")
	}
}

func TestOpenRefusesDatabaseWithoutCountries(t *testing.T) {
	path := geoiptest.WriteType(t, "GeoLite2-ASN", map[string]string{"10.0.0.0/8": "US"})
	if _, err := geoip.Open(path); err == nil {
		t.Error("an ASN database opened as a country database")
	}
}
