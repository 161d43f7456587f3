// Package webhook verifies the signature of a Leasehold webhook delivery.
//
// Leasehold signs every delivery with the header
//
//	Leasehold-Signature: t=UNIX,v1=HEX
//
// where t is the time of the attempt (Unix seconds) and HEX the HMAC-SHA256, under the
// webhook's secret, of "{t}.{body}". A receiver checks the signature and the age of t
// (refusing a replay of an old delivery), and drops a Leasehold-Event-Id it has seen.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Header is the name of the signature header.
const Header = "Leasehold-Signature"

// EventIDHeader is the name of the header carrying the event id (for de-duplication:
// deliveries are at least once).
const EventIDHeader = "Leasehold-Event-Id"

// DefaultMaxAge is the age beyond which a signature should be refused.
const DefaultMaxAge = 5 * time.Minute

// Errors returned by Verify.
var (
	ErrMalformed = errors.New("webhook: malformed Leasehold-Signature header")
	ErrSignature = errors.New("webhook: signature does not match")
	ErrTooOld    = errors.New("webhook: signature timestamp outside the allowed age")
)

// now is the clock Verify reads.
var now = time.Now

// Verify checks signatureHeader (the value of Leasehold-Signature) against body, the raw
// request body, under secret. maxAge bounds how far t may lie from now, in the past or the
// future (zero means DefaultMaxAge; a negative maxAge skips the check). Several v1 values
// are accepted (any one matching suffices), so that a secret can be rotated.
func Verify(secret, signatureHeader string, body []byte, maxAge time.Duration) error {
	return verifyAt(now(), secret, signatureHeader, body, maxAge)
}

func verifyAt(at time.Time, secret, header string, body []byte, maxAge time.Duration) error {
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrMalformed
		}
		switch k {
		case "t":
			if ts != "" {
				return ErrMalformed
			}
			ts = v
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return ErrMalformed
			}
			sigs = append(sigs, b)
		}
	}
	if ts == "" || len(sigs) == 0 {
		return ErrMalformed
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrMalformed
	}
	if maxAge == 0 {
		maxAge = DefaultMaxAge
	}
	if maxAge > 0 {
		d := at.Sub(time.Unix(unix, 0))
		if d > maxAge || d < -maxAge {
			return ErrTooOld
		}
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return ErrSignature
}

// Sign returns a Leasehold-Signature header value for body at time t, as the server makes
// it (for tests of a receiver).
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}
