// Package httpx holds what the session-keeping transports of the sub-packages share.
package httpx

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Retryable returns a copy of req that can be sent again (its body re-read through
// GetBody), or false when its body cannot be replayed.
func Retryable(req *http.Request) (*http.Request, bool) {
	r := req.Clone(req.Context())
	if req.Body == nil || req.Body == http.NoBody {
		return r, true
	}
	if req.GetBody == nil {
		return nil, false
	}
	b, err := req.GetBody()
	if err != nil {
		return nil, false
	}
	r.Body = b
	return r, true
}

// Drain reads a little of a response body and closes it, so that its connection is reused.
func Drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 4096)
	resp.Body.Close()
}

// ReadBody reads up to 1 MiB of a response and closes it.
func ReadBody(resp *http.Response) []byte {
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return b
}

// Snippet is the start of a body, for error messages.
func Snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// Base is rt, or when rt is nil a transport of its own (a clone of
// http.DefaultTransport); closeIdle closes the idle connections of the latter, so that a
// closed session leaves no goroutine behind.
func Base(rt http.RoundTripper) (base http.RoundTripper, closeIdle func()) {
	if rt != nil {
		return rt, func() {}
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	return t, t.CloseIdleConnections
}

// Sleep waits d or until ctx ends (then it returns false).
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Backoff doubles d from 500 ms up to max.
func Backoff(d, max time.Duration) time.Duration {
	if d <= 0 {
		return 500 * time.Millisecond
	}
	if d *= 2; d > max {
		d = max
	}
	return d
}

// LogOff ends a Bearer session: method url with the access token tok, through next. A 2xx
// answer, or a 401 (the session was gone already), is success; errors start with what
// (such as "jim2: logoff").
func LogOff(ctx context.Context, next http.RoundTripper, method, url, tok, what string) error {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	resp, err := next.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	b := ReadBody(resp)
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("%s: HTTP %d: %s", what, resp.StatusCode, Snippet(b))
	}
	return nil
}
