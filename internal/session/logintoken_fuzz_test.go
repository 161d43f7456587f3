package session

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The bodies of POST /session/login-token and DocuWare's Organizations/LoginToken come from
// the client: {"TargetProducts","Usage","Lifetime"}, Lifetime a .NET TimeSpan.

// timeSpanSeeds are TimeSpans as .NET writes them ("c" format) and as DocuWare's clients
// send them, with the edges of each field.
var timeSpanSeeds = []string{
	"1.00:00:00", "365.00:00:00", "366.00:00:00", "00:05:00", "02:30", "1:2:3", "7", "0",
	"0.00:00:01.5", "00:00:00.0000001", "2.12:00:00.25", "23:59:59.9999999", "106751.23:47:16.8547758",
	"10675199.23:59:59.9999999", // TimeSpan.MaxValue
	"213504",                    // a day count past what time.Duration holds
	"-1.00:00:00", "24:00:00", "00:60:00", "1.", ".1:00:00", "00:00.5", "1e3", "00:0a:00", "１:00:00",
}

// timeSpanRE is the grammar ParseTimeSpan documents: `[d.]hh:mm[:ss[.fffffff]]` or `d`.
var timeSpanRE = regexp.MustCompile(`^(?:(?:([0-9]{1,8})\.)?([0-9]{1,2}):([0-9]{1,2})(?::([0-9]{1,2})(?:\.([0-9]{1,7}))?)?|([0-9]{1,8}))$`)

// refTimeSpan is an independent reading of a TimeSpan, in exact arithmetic: ok is false
// when v is not one; fits is false when it is one but time.Duration cannot hold it.
func refTimeSpan(v string) (d time.Duration, ok, fits bool) {
	m := timeSpanRE.FindStringSubmatch(v)
	if m == nil {
		return 0, false, false
	}
	n := func(s string) int64 {
		var x int64
		for _, c := range s {
			x = x*10 + int64(c-'0')
		}
		return x
	}
	days, hh, mm, ss := n(m[1]), n(m[2]), n(m[3]), n(m[4])
	if m[6] != "" {
		days = n(m[6])
	}
	if days > 10_675_199 || hh > 23 || mm > 59 || ss > 59 {
		return 0, false, false
	}
	ticks := n((m[5] + "0000000")[:7])
	total := new(big.Int).Mul(big.NewInt(days), big.NewInt(int64(24*time.Hour)))
	total.Add(total, big.NewInt(hh*int64(time.Hour)+mm*int64(time.Minute)+ss*int64(time.Second)+ticks*100))
	if !total.IsInt64() {
		return 0, true, false
	}
	return time.Duration(total.Int64()), true, true
}

// formatTimeSpan writes d in .NET's constant format, `d.hh:mm:ss.fffffff`.
func formatTimeSpan(d time.Duration) string {
	day := 24 * time.Hour
	return fmt.Sprintf("%d.%02d:%02d:%02d.%07d", d/day, d%day/time.Hour, d%time.Hour/time.Minute,
		d%time.Minute/time.Second, d%time.Second/100)
}

func FuzzParseTimeSpan(f *testing.F) {
	for _, s := range timeSpanSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, err := ParseTimeSpan(v)
		want, ok, fits := refTimeSpan(v)
		switch {
		case ok && fits:
			if err != nil || got != want {
				t.Fatalf("ParseTimeSpan(%q) = %v, %v; want %v", v, got, err, want)
			}
		case err == nil:
			t.Fatalf("ParseTimeSpan(%q) = %v, want an error (valid TimeSpan %v, fits %v)", v, got, ok, fits)
		default:
			if strings.ContainsAny(err.Error(), "\r\n") && !strings.ContainsAny(v, "\r\n") {
				t.Fatalf("multi-line error %q", err)
			}
		}
		if err == nil {
			// What was accepted, written back in .NET's format, reads back the same.
			if back, err := ParseTimeSpan(formatTimeSpan(got)); err != nil || back != got {
				t.Fatalf("round trip of %q: %v → %q → %v, %v", v, got, formatTimeSpan(got), back, err)
			}
		}
	})
}

// FuzzTimeSpanRoundTrip: every non-negative duration of whole 100 ns ticks, written as .NET
// writes it, reads back exactly.
func FuzzTimeSpanRoundTrip(f *testing.F) {
	for _, d := range []int64{0, 1, int64(time.Second), int64(24 * time.Hour), int64(MaxLoginTokenLifetime), math.MaxInt64} {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, n int64) {
		if n < 0 {
			n = -(n + 1)
		}
		d := time.Duration(n - n%100)
		s := formatTimeSpan(d)
		got, err := ParseTimeSpan(s)
		if err != nil || got != d {
			t.Fatalf("%v → %q → %v, %v", d, s, got, err)
		}
	})
}

// FuzzNormalizeLoginTokenRequest: what it accepts is within the documented bounds
// (Usage Multi or Single, 1 to 16 distinct products of 1 to 128 bytes, a lifetime in
// (0, 366 days]) and is what was asked for.
func FuzzNormalizeLoginTokenRequest(f *testing.F) {
	f.Add("PlatformService", "Multi", "1.00:00:00")
	f.Add("PlatformService", "Single", "365.00:00:00")
	f.Add("", "", "")
	f.Add("A\x00A\x00B", "single", "00:05:00")
	f.Add("PlatformService", "Twice", "")
	f.Add("PlatformService", "multi", "366.00:00:00.0000001")
	f.Add("PlatformService", "Multi", "213869")
	f.Add(strings.Repeat("p\x00", 17), "Multi", "1")
	f.Fuzz(func(t *testing.T, productList, usage, lifetime string) {
		var products []string
		if productList != "" {
			products = strings.Split(productList, "\x00")
		}
		r, err := NormalizeLoginTokenRequest(products, usage, lifetime)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") && !strings.ContainsAny(usage+lifetime, "\r\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		switch {
		case usage == "" && r.Usage != UsageMulti,
			r.Usage != UsageMulti && r.Usage != UsageSingle,
			usage != "" && !strings.EqualFold(usage, r.Usage):
			t.Fatalf("usage %q became %q", usage, r.Usage)
		}
		if len(r.Products) < 1 || len(r.Products) > maxTargetProducts {
			t.Fatalf("%d products", len(r.Products))
		}
		for i, p := range r.Products {
			if p == "" || len(p) > maxProductName || slices.Contains(r.Products[:i], p) {
				t.Fatalf("product %q in %q", p, r.Products)
			}
			if len(products) > 0 && !slices.Contains(products, p) {
				t.Fatalf("product %q was not asked for (%q)", p, products)
			}
		}
		if len(products) == 0 && (len(r.Products) != 1 || r.Products[0] != "PlatformService") {
			t.Fatalf("default products %q", r.Products)
		}
		if lifetime == "" {
			if r.Lifetime != DefaultLoginTokenLifetime {
				t.Fatalf("default lifetime %v", r.Lifetime)
			}
			return
		}
		want, ok, fits := refTimeSpan(lifetime)
		if !ok || !fits || r.Lifetime != want || r.Lifetime <= 0 || r.Lifetime > MaxLoginTokenLifetime {
			t.Fatalf("Lifetime %q accepted as %v (a TimeSpan: %v, of %v)", lifetime, r.Lifetime, ok && fits, want)
		}
	})
}
