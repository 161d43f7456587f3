// Package jim2 keeps a Jim2 Server API session alive for a program that calls the Jim2 API
// directly (a Jim2 server, or Leasehold's jim2 dialect), as Jim2's documentation advises:
//
//   - take a token with OAuth2 client credentials (POST /{database}/token, HTTP Basic);
//     without a scope the session holds a full user licence, scope "view" holds none;
//   - while the refresh token (20 minutes, sliding) is valid the licensed session is held:
//     refresh it at 80 % of expires_in, in the background, so that it never lapses however
//     rarely the program calls — and so that the program never needs a second licence;
//   - when the session is lost anyway (a 401), take tokens again and replay the call;
//   - log off (POST /{database}/logoff) on Close, to release the licence at once instead of
//     when the refresh token times out.
//
// Use [Session.HTTPClient] for every call to the API.
package jim2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/leasehold/leasehold/client/internal/httpx"
)

// Config says where the server is and which client logs in.
type Config struct {
	// BaseURL is the server's root, such as "http://jim2server:80" (with Leasehold, its URL).
	BaseURL string
	// Database is the first path segment, as "Jim_Test" in /Jim_Test/token (with
	// Leasehold, the tenant).
	Database string
	// ClientID and ClientSecret are the OAuth client id and secret, sent with HTTP Basic.
	ClientID     string
	ClientSecret string
	// Scope is "" (the default "all": a full licence) or "view" (read-only, no licence).
	Scope string
	// Device, when set, is sent as the `device` parameter: the device id Leasehold counts
	// the seat under (a Leasehold extension).
	Device string
	// Transport is the underlying transport (default: one of its own).
	Transport http.RoundTripper
}

// LicenseError is a token request refused because no licence is free.
type LicenseError struct {
	Code    string // Leasehold's license_error, such as "licenseQuotaExceeded" (may be empty)
	Message string
}

// Error implements error.
func (e *LicenseError) Error() string { return "jim2: no licence available: " + e.Message }

// ErrClosed is returned for requests made after Close.
var ErrClosed = errors.New("jim2: session closed")

// Session is a Jim2 API session. Its HTTPClient adds the access token to every request.
type Session struct {
	cfg    Config
	root   string // BaseURL/Database
	next   http.RoundTripper
	idle   func()
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	renewMu sync.Mutex
	mu      sync.Mutex
	access  string
	refresh string
	expiry  time.Time
	life    time.Duration
	closed  bool
	wake    chan struct{}
}

// New takes the session's first token and starts keeping it fresh.
func New(ctx context.Context, cfg Config) (*Session, error) {
	if cfg.BaseURL == "" || cfg.Database == "" || cfg.ClientID == "" {
		return nil, errors.New("jim2: BaseURL, Database and ClientID are required")
	}
	next, idle := httpx.Base(cfg.Transport)
	s := &Session{cfg: cfg, next: next, idle: idle, done: make(chan struct{}), wake: make(chan struct{}, 1),
		root: strings.TrimRight(cfg.BaseURL, "/") + "/" + url.PathEscape(cfg.Database)}
	s.client = &http.Client{Transport: (*transport)(s)}
	if err := s.token(ctx, url.Values{"grant_type": {"client_credentials"}}); err != nil {
		idle()
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.keep()
	return s, nil
}

// HTTPClient returns the client to call the API with.
func (s *Session) HTTPClient() *http.Client { return s.client }

// AccessToken returns the current access token (it changes at every refresh).
func (s *Session) AccessToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.access
}

// Close logs off (the licence is released) and stops the background refresh.
func (s *Session) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	tok := s.access
	s.mu.Unlock()
	s.cancel()
	<-s.done
	defer s.idle()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.root+"/logoff", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := s.next.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("jim2: logoff: %w", err)
	}
	b := httpx.ReadBody(resp)
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("jim2: logoff: HTTP %d: %s", resp.StatusCode, httpx.Snippet(b))
	}
	return nil
}

// token asks /token for a grant and installs it.
func (s *Session) token(ctx context.Context, form url.Values) error {
	if s.cfg.Scope != "" {
		form.Set("scope", s.cfg.Scope)
	}
	if s.cfg.Device != "" {
		form.Set("device", s.cfg.Device)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.root+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(s.cfg.ClientID, s.cfg.ClientSecret)
	resp, err := s.next.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("jim2: token: %w", err)
	}
	b := httpx.ReadBody(resp)
	var r struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int64  `json:"expires_in"`
		Error        string `json:"error"`
		Description  string `json:"error_description"`
		LicenseError string `json:"license_error"`
	}
	_ = json.Unmarshal(b, &r)
	switch {
	case resp.StatusCode == http.StatusOK && r.AccessToken != "":
	case r.LicenseError != "" || (resp.StatusCode == http.StatusForbidden && r.Error == "access_denied"):
		return &LicenseError{Code: r.LicenseError, Message: r.Description}
	default:
		return fmt.Errorf("jim2: token: HTTP %d: %s", resp.StatusCode, httpx.Snippet(b))
	}
	life := time.Duration(r.ExpiresIn) * time.Second
	if life <= 0 {
		life = 20 * time.Minute
	}
	s.mu.Lock()
	s.access, s.refresh, s.life, s.expiry = r.AccessToken, r.RefreshToken, life, time.Now().Add(life)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// renew refreshes the tokens (client credentials when there is no refresh token or it is
// refused), unless the access token stale was replaced meanwhile.
func (s *Session) renew(ctx context.Context, stale string) error {
	s.renewMu.Lock()
	defer s.renewMu.Unlock()
	s.mu.Lock()
	cur, rt := s.access, s.refresh
	s.mu.Unlock()
	if stale != "" && cur != stale {
		return nil
	}
	if rt != "" {
		err := s.token(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		var le *LicenseError
		if err == nil || errors.As(err, &le) || ctx.Err() != nil {
			return err
		}
	}
	return s.token(ctx, url.Values{"grant_type": {"client_credentials"}})
}

// keep refreshes at 80 % of expires_in.
func (s *Session) keep() {
	defer close(s.done)
	backoff := time.Duration(0)
	for {
		s.mu.Lock()
		wait := time.Until(s.expiry.Add(-s.life / 5))
		// The refresh token's window (20 minutes) may be shorter than expires_in.
		if capped := time.Until(s.expiry.Add(-s.life).Add(10 * time.Minute)); capped < wait {
			wait = capped
		}
		s.mu.Unlock()
		if backoff > 0 {
			wait = backoff
		}
		t := time.NewTimer(wait)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-s.wake:
			t.Stop()
			continue
		case <-t.C:
		}
		if err := s.renew(s.ctx, ""); err != nil {
			backoff = httpx.Backoff(backoff, 30*time.Second)
			continue
		}
		backoff = 0
	}
}

type transport Session

// RoundTrip sends req with the access token; a 401 renews the session and replays req
// once (when its body can be replayed).
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	s := (*Session)(t)
	return httpx.BearerRoundTrip(s.next, req, ErrClosed, func() (string, bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.access, s.closed
	}, s.renew)
}
