package session

import (
	"strings"
	"testing"
	"time"
)

func TestParseTimeSpan(t *testing.T) {
	day := 24 * time.Hour
	good := []struct {
		in   string
		want time.Duration
	}{
		{"1.00:00:00", day},
		{"365.00:00:00", 365 * day},
		{"00:05:00", 5 * time.Minute},
		{"1:2:3", time.Hour + 2*time.Minute + 3*time.Second},
		{"02:30", 2*time.Hour + 30*time.Minute},
		{"7", 7 * day},
		{"0.00:00:01.5", 1500 * time.Millisecond},
		{"00:00:00.0000001", 100 * time.Nanosecond},
		{"2.12:00:00.25", 2*day + 12*time.Hour + 250*time.Millisecond},
	}
	for _, c := range good {
		got, err := ParseTimeSpan(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseTimeSpan(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "forever", "-1.00:00:00", "24:00:00", "00:60:00", "00:00:60", "1.", ".1:00:00",
		"1:00:00:00", "00:00:00.", "00:00:00.12345678", "00:00.5", "+1:00:00", "1 00:00:00", "999999999.00:00:00",
		strings.Repeat("1", 40), "1e3", "0x10", "00:0a:00"} {
		if d, err := ParseTimeSpan(bad); err == nil {
			t.Errorf("ParseTimeSpan(%q) = %v, want an error", bad, d)
		}
	}
}

func TestNormalizeLoginTokenRequest(t *testing.T) {
	r, err := NormalizeLoginTokenRequest(nil, "", "")
	if err != nil || r.Usage != UsageMulti || r.Lifetime != DefaultLoginTokenLifetime || len(r.Products) != 1 || r.Products[0] != "PlatformService" {
		t.Fatalf("defaults: %+v %v", r, err)
	}
	r, err = NormalizeLoginTokenRequest([]string{"A", "A", "B"}, "single", "365.00:00:00")
	if err != nil || r.Usage != UsageSingle || r.Lifetime != 365*24*time.Hour || len(r.Products) != 2 {
		t.Fatalf("explicit: %+v %v", r, err)
	}
	for _, c := range []struct {
		products        []string
		usage, lifetime string
	}{
		{nil, "Twice", ""},
		{nil, "", "00:00:00"},
		{nil, "", "367.00:00:00"},
		{nil, "", "soon"},
		{[]string{""}, "", ""},
		{[]string{strings.Repeat("p", 200)}, "", ""},
		{make([]string, 17), "", ""},
	} {
		if _, err := NormalizeLoginTokenRequest(c.products, c.usage, c.lifetime); err == nil {
			t.Errorf("%v %q %q: accepted", c.products, c.usage, c.lifetime)
		}
	}
}
