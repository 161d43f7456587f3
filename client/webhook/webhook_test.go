package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	body := []byte(`{"id":"0b6c…","type":"session.started","tenant":"acme","created":"2026-12-03T10:00:00Z","data":{}}`)
	at := time.Unix(1764756000, 0)
	// Computed independently of Sign: HMAC-SHA256 of "{t}.{body}".
	mac := hmac.New(sha256.New, []byte("whsec-1"))
	fmt.Fprintf(mac, "%d.%s", at.Unix(), body)
	good := fmt.Sprintf("t=%d,v1=%s", at.Unix(), hex.EncodeToString(mac.Sum(nil)))
	if good != Sign("whsec-1", at, body) {
		t.Fatalf("Sign: %s, want %s", Sign("whsec-1", at, body), good)
	}
	other := Sign("whsec-0", at, body)
	tests := []struct {
		name   string
		secret string
		header string
		body   []byte
		at     time.Time
		maxAge time.Duration
		want   error
	}{
		{"valid", "whsec-1", good, body, at, 0, nil},
		{"valid 4 minutes later", "whsec-1", good, body, at.Add(4 * time.Minute), 0, nil},
		{"too old", "whsec-1", good, body, at.Add(6 * time.Minute), 0, ErrTooOld},
		{"too far ahead", "whsec-1", good, body, at.Add(-6 * time.Minute), 0, ErrTooOld},
		{"custom max age", "whsec-1", good, body, at.Add(time.Hour), 2 * time.Hour, nil},
		{"age check off", "whsec-1", good, body, at.Add(72 * time.Hour), -1, nil},
		{"wrong secret", "whsec-2", good, body, at, 0, ErrSignature},
		{"body changed", "whsec-1", good, append([]byte{}, append(body, ' ')...), at, 0, ErrSignature},
		{"t changed", "whsec-1", fmt.Sprintf("t=%d,%s", at.Unix()+1, good[len("t=1764756000,"):]), body, at, 0, ErrSignature},
		{"rotated secret, two v1", "whsec-1", other + ",v1=" + good[len("t=1764756000,v1="):], body, at, 0, nil},
		{"spaces", "whsec-1", "t=1764756000, " + good[len("t=1764756000,"):], body, at, 0, nil},
		{"empty", "whsec-1", "", body, at, 0, ErrMalformed},
		{"no t", "whsec-1", good[len("t=1764756000,"):], body, at, 0, ErrMalformed},
		{"no v1", "whsec-1", "t=1764756000", body, at, 0, ErrMalformed},
		{"bad hex", "whsec-1", "t=1764756000,v1=zz", body, at, 0, ErrMalformed},
		{"short mac", "whsec-1", "t=1764756000,v1=abcd", body, at, 0, ErrMalformed},
		{"bad t", "whsec-1", "t=soon," + good[len("t=1764756000,"):], body, at, 0, ErrMalformed},
		{"two t", "whsec-1", "t=1," + good, body, at, 0, ErrMalformed},
		{"unknown scheme ignored", "whsec-1", good + ",v0=abc", body, at, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verifyAt(tt.at, tt.secret, tt.header, tt.body, tt.maxAge)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifyNow(t *testing.T) {
	body := []byte("{}")
	if err := Verify("s", Sign("s", time.Now(), body), body, 0); err != nil {
		t.Fatal(err)
	}
	if err := Verify("s", Sign("s", time.Now().Add(-10*time.Minute), body), body, 5*time.Minute); !errors.Is(err, ErrTooOld) {
		t.Fatal(err)
	}
}

func ExampleVerify() {
	// In an http.Handler: body, _ := io.ReadAll(r.Body)
	body := []byte(`{"type":"license.exhausted"}`)
	header := Sign("whsec-change-me", time.Now(), body) // r.Header.Get(Header)
	if err := Verify("whsec-change-me", header, body, DefaultMaxAge); err != nil {
		fmt.Println("refused:", err) // answer 400
		return
	}
	fmt.Println("ok")
	// Output: ok
}
