package domain

import (
	"encoding/json"
	"testing"
	"time"
)

// A bare number of seconds past time.Duration's range is refused, not wrapped (it used to
// come out as minus 292 years).
func TestDurationRange(t *testing.T) {
	var d Duration
	for _, bad := range []string{`1e10`, `9223372037`, `1e300`, `-1`, `"-5s"`, `"5x"`} {
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("%s accepted as %v", bad, time.Duration(d))
		}
	}
	for in, want := range map[string]time.Duration{`90`: 90 * time.Second, `0`: 0, `"20m"`: 20 * time.Minute, `9e9`: 9e9 * time.Second} {
		d = 0
		if err := json.Unmarshal([]byte(in), &d); err != nil || time.Duration(d) != want {
			t.Errorf("%s = %v, %v; want %v", in, time.Duration(d), err, want)
		}
	}
}
