package engine

import (
	"testing"

	"github.com/leasehold/leasehold/internal/domain"
)

// Seat and session keys are stored: the bytes hashed must never change. These were
// computed by the first implementation (field by field through hash.Hash).
func TestKeysGolden(t *testing.T) {
	const lic = "870f46a4-1faa-4847-955b-14ee5f74f3fe"
	seat := SeatKey(lic, "user=alice", "hw=laptop-1")
	for _, c := range []struct{ got, want string }{
		{seat, "647511da981be8afa4b75ed1f155e62e32df8f0cdeb884bf43c8cb0dcab44f29"},
		{SessionKey(seat, "AppFeature-XYZ", ""), "e361e803e600c8a27c51435cc1cda1530f7c950075f9367d478c037f5ec146c2"},
		{SessionKey(seat, "AppFeature-XYZ", "proc-7"), "95191cd7914fbca7e7a6fd997ca37a463e9b0e7785f7d071490466254aa9628a"},
		{SeatKey("L1"), "dffe8596427fc50e8f64654a609af134d45552f18bbecef90b31135a9e7acaa0"},
	} {
		if c.got != c.want {
			t.Errorf("key %s, want %s", c.got, c.want)
		}
	}

	m := &domain.LicenseModel{Anchors: []string{domain.AnchorUser, domain.AnchorHW}}
	req := &Request{Caller: Caller{User: "alice"}, HW: "laptop-1", Process: "proc-7"}
	s, sess, missing := anchorKeys(&domain.License{ID: lic}, m, req, "AppFeature-XYZ")
	if s != seat || sess != "95191cd7914fbca7e7a6fd997ca37a463e9b0e7785f7d071490466254aa9628a" || missing != "" {
		t.Errorf("anchorKeys = %s, %s, %q", s, sess, missing)
	}
	if _, _, missing := anchorKeys(&domain.License{ID: lic}, m, &Request{Caller: Caller{User: "alice"}}, "X"); missing != domain.AnchorHW {
		t.Errorf("missing hw reported as %q", missing)
	}
	// Long values spill the stack buffer and still hash the same bytes.
	long := string(make([]byte, 300))
	if a, b := SeatKey(lic, "hw="+long), hashKey([]byte(lic+"\x00hw="+long)); a != b {
		t.Errorf("long value: %s, want %s", a, b)
	}
	if n := testing.AllocsPerRun(100, func() { anchorKeys(&domain.License{ID: lic}, m, req, "AppFeature-XYZ") }); n > 2 {
		t.Errorf("anchorKeys allocates %v times, want at most 2 (the two key strings)", n)
	}
}
