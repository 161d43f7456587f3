// Package httpx holds what the session-keeping transports of the sub-packages share.
package httpx

import (
	"context"
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

// BearerRoundTrip is the round trip of a transport that keeps a Bearer session alive: req
// goes out with the session's access token (token; closed refuses it with errClosed), and a
// 401 renews the session (renew, told which token was refused) and replays req once when
// its body can be replayed. A failed renewal answers the 401 as it came.
func BearerRoundTrip(next http.RoundTripper, req *http.Request, errClosed error,
	token func() (tok string, closed bool), renew func(ctx context.Context, stale string) error) (*http.Response, error) {
	tok, closed := token()
	if closed {
		return nil, errClosed
	}
	retry, canRetry := Retryable(req)
	out := req.Clone(req.Context())
	out.Header.Set("Authorization", "Bearer "+tok)
	resp, err := next.RoundTrip(out)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !canRetry {
		return resp, err
	}
	if err := renew(req.Context(), tok); err != nil {
		return resp, nil
	}
	Drain(resp)
	fresh, _ := token()
	retry.Header.Set("Authorization", "Bearer "+fresh)
	return next.RoundTrip(retry)
}
