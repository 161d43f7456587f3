// Package geoip places a client address in a country, for license models with a `countries`
// constraint. The engine depends only on Locator; DB reads a MaxMind database (.mmdb, such as
// GeoLite2-Country).
package geoip

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Locator returns the ISO 3166-1 alpha-2 country code (upper case) of an address, and false
// when it cannot place it.
type Locator interface {
	Country(addr netip.Addr) (string, bool)
}

// DB is a Locator over a MaxMind country or city database. It is safe for concurrent use.
type DB struct {
	r *maxminddb.Reader
}

var _ Locator = (*DB)(nil)

// Open opens a .mmdb file and checks that it can answer country lookups.
func Open(path string) (*DB, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("geoip database %s: %w", path, err)
	}
	if !holdsCountries(r.Metadata.DatabaseType) {
		_ = r.Close()
		return nil, fmt.Errorf("geoip database %s: type %q holds no countries (want a Country or City database)", path, r.Metadata.DatabaseType)
	}
	return &DB{r: r}, nil
}

// holdsCountries tells a country-bearing database (GeoLite2-Country, GeoIP2-City,
// GeoIP2-Enterprise, DBIP-Country-Lite, …) from one that would place no address (ASN,
// ISP, anonymous IP), so that a wrong file is a start-up error rather than every client
// being unresolvedGeolocation.
func holdsCountries(dbType string) bool {
	t := strings.ToLower(dbType)
	return t == "" || strings.Contains(t, "country") || strings.Contains(t, "city") || strings.Contains(t, "enterprise")
}

// record is the part of a GeoIP2/GeoLite2 Country or City record we read.
type record struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	// RegisteredCountry answers for networks without a physical country (anycast, some
	// satellite providers): the country where the network is registered is the best we have.
	RegisteredCountry struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
}

// Country implements Locator.
func (d *DB) Country(addr netip.Addr) (string, bool) {
	if d == nil || !addr.IsValid() {
		return "", false
	}
	var rec record
	res := d.r.Lookup(addr.Unmap())
	if !res.Found() {
		return "", false
	}
	if err := res.Decode(&rec); err != nil {
		return "", false
	}
	code := rec.Country.ISOCode
	if code == "" {
		code = rec.RegisteredCountry.ISOCode
	}
	if code == "" {
		return "", false
	}
	return strings.ToUpper(code), true
}

// Close releases the database.
func (d *DB) Close() error { return d.r.Close() }
