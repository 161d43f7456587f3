package domain

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that reads and writes Go duration syntax ("90s", "720h")
// in YAML and JSON. An explicit zero ("0s") means "none", never "the default".
type Duration time.Duration

func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		// An empty YAML value (`linger:`) is "not given": the default stays.
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("invalid duration %q (use Go syntax such as 90s, 20m, 720h)", s)
		}
		if v < 0 {
			return fmt.Errorf("invalid duration %q: negative", s)
		}
		*d = Duration(v)
		return nil
	}
	// A bare number is taken as seconds; YAML authors write `linger: 0` for "none".
	var n float64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("invalid duration %s (use Go syntax such as 90s, 20m, 720h)", b)
	}
	if n < 0 {
		return fmt.Errorf("invalid duration %s: negative", b)
	}
	// A float past time.Duration's range converts to whatever the platform makes of it
	// (a negative duration on amd64): refuse it.
	if n >= float64(math.MaxInt64)/float64(time.Second) {
		return fmt.Errorf("invalid duration %s: longer than %d years", b, int(math.MaxInt64/int64(365*24*time.Hour)))
	}
	*d = Duration(time.Duration(n * float64(time.Second)))
	return nil
}

// ByteSize reads "100MiB", "512KiB", "1GB" or a plain byte count.
type ByteSize int64

func (s ByteSize) MarshalJSON() ([]byte, error) { return json.Marshal(int64(s)) }

func (s *ByteSize) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err == nil {
		if n < 0 {
			return fmt.Errorf("invalid size %d: negative", n)
		}
		*s = ByteSize(n)
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return fmt.Errorf("invalid size %s", b)
	}
	v, err := ParseByteSize(str)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// ParseByteSize parses a size with an optional binary (KiB, MiB, GiB) or decimal (KB, MB, GB) unit.
func ParseByteSize(str string) (ByteSize, error) {
	str = strings.TrimSpace(str)
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000},
		{"B", 1},
	}
	mult := int64(1)
	num := str
	for _, u := range units {
		if strings.HasSuffix(str, u.suffix) {
			mult, num = u.mult, strings.TrimSpace(strings.TrimSuffix(str, u.suffix))
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q (use e.g. 100MiB)", str)
	}
	return ByteSize(n * mult), nil
}
