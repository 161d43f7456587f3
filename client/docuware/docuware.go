// Package docuware keeps a DocuWare platform session alive for a program that calls the
// DocuWare API directly (a DocuWare server, or Leasehold's docuware dialect), the way
// DocuWare advises to avoid "401: None of the registered licenses are available":
//
//   - log on once and keep the session cookie (.DWPLATFORMAUTH) and the browser id
//     (DWPLATFORMBROWSERID) in a cookie container, sending them with every request, so that
//     the program uses one license however irregularly it calls;
//   - keep a login token (POST /Organizations/LoginToken) and, when the session is lost (a
//     401), log on again with the latest token (POST /Account/TokenLogOn), which reclaims
//     the license the session held instead of asking for another;
//   - on Close, create a new login token, then log off (POST /Account/LogOff). The token
//     ([Session.LoginToken]) lets the next run log on onto the same license, even within
//     the two minutes the license lingers after a logoff.
//
// Use [Session.HTTPClient] for every call to the platform.
package docuware

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/leasehold/leasehold/client/internal/httpx"
)

// Cookie names of the DocuWare platform.
const (
	AuthCookie    = ".DWPLATFORMAUTH"
	BrowserCookie = "DWPLATFORMBROWSERID"
)

// Config says where the platform is and who logs on.
type Config struct {
	// PlatformURL is the platform's root, such as
	// "https://example.docuware.cloud/DocuWare/Platform" (with Leasehold:
	// "http://127.0.0.1:8080/DocuWare/Platform", or under "/t/{tenant}").
	PlatformURL string
	// UserName, Password and (optional) Organization log on (POST /Account/Logon).
	UserName     string
	Password     string
	Organization string
	// LoginToken, when set, is tried first (POST /Account/TokenLogOn): a token saved from
	// Session.LoginToken by an earlier run, to log on again onto the license it held.
	LoginToken string
	// BrowserID, when set, is sent as the DWPLATFORMBROWSERID cookie: the device id under
	// which the license is counted. Keep it across runs (Session.BrowserID) to stay on
	// one license.
	BrowserID string
	// TokenLifetime is the lifetime asked for login tokens (default 365 days, as DocuWare's
	// desktop apps).
	TokenLifetime time.Duration
	// Transport is the underlying transport (default http.DefaultTransport).
	Transport http.RoundTripper
}

// Session is a logged-on DocuWare session. Its HTTPClient sends the session cookies with
// every request and logs on again (with the login token) when the session is lost.
type Session struct {
	cfg     Config
	base    *url.URL
	jar     *cookiejar.Jar
	next    http.RoundTripper
	idle    func()
	client  *http.Client
	logonMu sync.Mutex
	mu      sync.Mutex
	token   string // the latest login token
	gen     int    // incremented at each logon
	closed  bool
}

// LicenseError is a logon refused because no license is free (DocuWare's 401 "None of the
// registered licenses are available for client …").
type LicenseError struct{ Message string }

// Error implements error.
func (e *LicenseError) Error() string { return "docuware: " + e.Message }

// ErrClosed is returned for requests made after Close.
var ErrClosed = errors.New("docuware: session closed")

// New logs on (with Config.LoginToken when given, else the password) and makes the first
// login token.
func New(ctx context.Context, cfg Config) (*Session, error) {
	base, err := url.Parse(strings.TrimRight(cfg.PlatformURL, "/"))
	if err != nil || base.Host == "" {
		return nil, fmt.Errorf("docuware: PlatformURL %q is not an absolute URL", cfg.PlatformURL)
	}
	if cfg.TokenLifetime <= 0 {
		cfg.TokenLifetime = 365 * 24 * time.Hour
	}
	jar, _ := cookiejar.New(nil)
	next, idle := httpx.Base(cfg.Transport)
	s := &Session{cfg: cfg, base: base, jar: jar, next: next, idle: idle, token: cfg.LoginToken}
	if cfg.BrowserID != "" {
		s.jar.SetCookies(base, []*http.Cookie{{Name: BrowserCookie, Value: cfg.BrowserID, Path: "/"}})
	}
	s.client = &http.Client{Transport: (*transport)(s)}
	if err := s.logon(ctx, 0); err != nil {
		idle()
		return nil, err
	}
	return s, nil
}

// HTTPClient returns the client to call the platform with. Do not give it a Jar: the
// session's cookies are kept by its transport.
func (s *Session) HTTPClient() *http.Client { return s.client }

// LoginToken returns the latest login token; save it (with BrowserID) to log on again
// onto the same license after a restart.
func (s *Session) LoginToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// BrowserID returns the DWPLATFORMBROWSERID the platform counts the license under.
func (s *Session) BrowserID() string {
	for _, c := range s.jar.Cookies(s.base) {
		if c.Name == BrowserCookie {
			return c.Value
		}
	}
	return ""
}

// Close makes a new login token (Session.LoginToken) and logs off: the license is free
// for others once the platform's linger has passed, and the token reclaims it meanwhile.
// A logon under way (a call that found the session lost) ends first, so that it is the
// session logged off, and none starts after.
func (s *Session) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.logonMu.Lock()
	defer s.logonMu.Unlock()
	tokErr := s.newLoginToken(ctx)
	resp, err := s.post(ctx, "/Account/LogOff", "", nil)
	if err == nil {
		body := httpx.ReadBody(resp)
		if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusUnauthorized {
			err = fmt.Errorf("docuware: LogOff: HTTP %d: %s", resp.StatusCode, httpx.Snippet(body))
		}
	}
	s.idle()
	return errors.Join(tokErr, err)
}

// post sends a request to the platform with the session's cookies.
func (s *Session) post(ctx context.Context, path, contentType string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base.String()+path, strings.NewReader(string(body)))
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	return s.send(req)
}

// send adds the session's cookies, sends, and keeps the cookies the answer sets.
func (s *Session) send(req *http.Request) (*http.Response, error) {
	for _, c := range s.jar.Cookies(req.URL) {
		if _, err := req.Cookie(c.Name); err != nil {
			req.AddCookie(c)
		}
	}
	resp, err := s.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if rc := resp.Cookies(); len(rc) > 0 {
		s.jar.SetCookies(req.URL, rc)
	}
	return resp, nil
}

// logon logs on unless another goroutine did since generation seen, or Close began.
func (s *Session) logon(ctx context.Context, seen int) error {
	s.logonMu.Lock()
	defer s.logonMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.gen != seen {
		s.mu.Unlock()
		return nil
	}
	tok := s.token
	s.mu.Unlock()
	var err error
	if tok != "" {
		b, _ := json.Marshal(map[string]string{"Token": tok})
		err = s.logonWith(ctx, "/Account/TokenLogOn", "application/json", b)
	}
	if tok == "" || err != nil {
		var le *LicenseError
		if errors.As(err, &le) {
			return err
		}
		form := url.Values{"UserName": {s.cfg.UserName}, "Password": {s.cfg.Password}}
		if s.cfg.Organization != "" {
			form.Set("Organization", s.cfg.Organization)
		}
		if err = s.logonWith(ctx, "/Account/Logon", "application/x-www-form-urlencoded", []byte(form.Encode())); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.gen++
	s.mu.Unlock()
	// A token made now re-opens this session's license if the session is lost.
	_ = s.newLoginToken(ctx)
	return nil
}

func (s *Session) logonWith(ctx context.Context, path, contentType string, body []byte) error {
	resp, err := s.post(ctx, path, contentType, body)
	if err != nil {
		return err
	}
	b := httpx.ReadBody(resp)
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusUnauthorized && strings.Contains(string(b), "None of the registered licenses"):
		return &LicenseError{Message: httpx.Snippet(b)}
	}
	return fmt.Errorf("docuware: %s: HTTP %d: %s", path, resp.StatusCode, httpx.Snippet(b))
}

// newLoginToken makes a login token with the seed's body and keeps it as the latest.
func (s *Session) newLoginToken(ctx context.Context) error {
	body, _ := json.Marshal(map[string]any{
		"TargetProducts": []string{"PlatformService"},
		"Usage":          "Multi",
		"Lifetime":       timeSpan(s.cfg.TokenLifetime),
	})
	resp, err := s.post(ctx, "/Organizations/LoginToken", "application/json", body)
	if err != nil {
		return err
	}
	b := httpx.ReadBody(resp)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("docuware: LoginToken: HTTP %d: %s", resp.StatusCode, httpx.Snippet(b))
	}
	var tok string
	if err := json.Unmarshal(b, &tok); err != nil || tok == "" {
		return fmt.Errorf("docuware: LoginToken: unexpected answer %s", httpx.Snippet(b))
	}
	s.mu.Lock()
	s.token = tok
	s.mu.Unlock()
	return nil
}

// timeSpan formats d as a .NET TimeSpan "d.hh:mm:ss".
func timeSpan(d time.Duration) string {
	d = d.Round(time.Second)
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	return fmt.Sprintf("%d.%02d:%02d:%02d", days, d/time.Hour, (d%time.Hour)/time.Minute, (d%time.Minute)/time.Second)
}

// transport is the Session's RoundTripper.
type transport Session

// RoundTrip sends req with the session's cookies; a 401 (the session was lost) logs on
// again — with the latest login token, so onto the same license — and sends req once more
// when its body can be replayed.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	s := (*Session)(t)
	s.mu.Lock()
	closed, gen := s.closed, s.gen
	s.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	retry, canRetry := httpx.Retryable(req)
	out := req.Clone(req.Context())
	resp, err := s.send(out)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !canRetry || isLogon(req.URL.Path) {
		return resp, err
	}
	if err := s.logon(req.Context(), gen); err != nil {
		return resp, nil // the caller sees the 401 it got
	}
	httpx.Drain(resp)
	return s.send(retry)
}

func isLogon(p string) bool {
	return strings.HasSuffix(p, "/Account/Logon") || strings.HasSuffix(p, "/Account/TokenLogOn") || strings.HasSuffix(p, "/Account/LogOff")
}
