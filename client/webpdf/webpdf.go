// Package webpdf keeps a webPDF REST session alive for a program that calls the webPDF
// API directly (a webPDF server, or Leasehold's webpdf dialect), as webPDF's documentation
// advises:
//
//   - log in once (POST /rest/authentication/user/login, HTTP Basic), asking for a refresh
//     token: the session, and its document storage, is bound to the access token;
//   - extend the session before expiresIn runs out (POST …/user/refresh with the refresh
//     token), in the background at 80 % of expiresIn, using only the new tokens afterwards;
//   - when the session is lost anyway (a 401), log in again and replay the call, sending
//     the device cookie the first login set, so that the new session lands on the same
//     seat;
//   - log out on Close (GET …/user/logout), ending the session and deleting its documents.
//
// Use [Session.HTTPClient] for every call to the API.
package webpdf

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

// Config says where webPDF is and who logs in.
type Config struct {
	// BaseURL is webPDF's root, such as "http://localhost:8080/webPDF" (with Leasehold,
	// "http://127.0.0.1:8080/webPDF"); the API is under BaseURL/rest.
	BaseURL string
	// UserName and Password log in (HTTP Basic).
	UserName string
	Password string
	// Device, when set, is sent as the lh_device cookie with logins: the device id
	// Leasehold counts the seat under. Otherwise the cookie the first login sets is used.
	Device string
	// Transport is the underlying transport (default: one of its own).
	Transport http.RoundTripper
}

// LicenseError is a login refused because no license is free.
type LicenseError struct{ Code, Message string }

// Error implements error.
func (e *LicenseError) Error() string { return "webpdf: no license available: " + e.Message }

// ErrClosed is returned for requests made after Close.
var ErrClosed = errors.New("webpdf: session closed")

// Session is a webPDF session. Its HTTPClient adds the access token to every request.
type Session struct {
	cfg    Config
	auth   string // BaseURL/rest/authentication/user
	authU  *url.URL
	jar    *cookiejar.Jar
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

// New logs in and starts keeping the session alive.
func New(ctx context.Context, cfg Config) (*Session, error) {
	auth := strings.TrimRight(cfg.BaseURL, "/") + "/rest/authentication/user"
	u, err := url.Parse(auth)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("webpdf: BaseURL %q is not an absolute URL", cfg.BaseURL)
	}
	jar, _ := cookiejar.New(nil)
	if cfg.Device != "" {
		jar.SetCookies(u, []*http.Cookie{{Name: "lh_device", Value: cfg.Device, Path: "/"}})
	}
	next, idle := httpx.Base(cfg.Transport)
	s := &Session{cfg: cfg, auth: auth, authU: u, jar: jar, next: next, idle: idle,
		done: make(chan struct{}), wake: make(chan struct{}, 1)}
	s.client = &http.Client{Transport: (*transport)(s)}
	if err := s.login(ctx); err != nil {
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

// Close logs out: the session ends, its documents are deleted, its seat is released.
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.auth+"/logout", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	resp, err := s.next.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("webpdf: logout: %w", err)
	}
	b := httpx.ReadBody(resp)
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("webpdf: logout: HTTP %d: %s", resp.StatusCode, httpx.Snippet(b))
	}
	return nil
}

func (s *Session) login(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.auth+"/login", strings.NewReader(`{"createRefreshToken":true}`))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(s.cfg.UserName, s.cfg.Password)
	return s.grant(req, "login")
}

func (s *Session) refreshTokens(ctx context.Context, rt string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.auth+"/refresh", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+rt)
	return s.grant(req, "refresh")
}

// grant sends a login or refresh request and installs the tokens it answers.
func (s *Session) grant(req *http.Request, op string) error {
	req.Header.Set("Accept", "application/json")
	for _, c := range s.jar.Cookies(s.authU) {
		req.AddCookie(c)
	}
	resp, err := s.next.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("webpdf: %s: %w", op, err)
	}
	if rc := resp.Cookies(); len(rc) > 0 {
		var keep []*http.Cookie
		for _, c := range rc {
			if c.Name == "lh_device" && s.cfg.Device == "" {
				c.Path = "/"
				keep = append(keep, c)
			}
		}
		s.jar.SetCookies(s.authU, keep)
	}
	b := httpx.ReadBody(resp)
	var r struct {
		Token        string `json:"token"`
		RefreshToken string `json:"refreshToken"`
		ExpiresIn    int64  `json:"expiresIn"`
		Message      string `json:"message"`
		LicenseError string `json:"license_error"`
	}
	_ = json.Unmarshal(b, &r)
	switch {
	case resp.StatusCode == http.StatusOK && r.Token != "":
	case r.LicenseError != "":
		return &LicenseError{Code: r.LicenseError, Message: r.Message}
	default:
		return fmt.Errorf("webpdf: %s: HTTP %d: %s", op, resp.StatusCode, httpx.Snippet(b))
	}
	life := time.Duration(r.ExpiresIn) * time.Second
	if life <= 0 {
		life = time.Hour
	}
	s.mu.Lock()
	s.access, s.refresh, s.life, s.expiry = r.Token, r.RefreshToken, life, time.Now().Add(life)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// renew extends the session with the refresh token, or logs in again when that fails,
// unless the access token stale was replaced meanwhile.
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
		if err := s.refreshTokens(ctx, rt); err == nil || ctx.Err() != nil {
			return err
		}
	}
	return s.login(ctx)
}

// keep extends the session at 80 % of expiresIn.
func (s *Session) keep() {
	defer close(s.done)
	backoff := time.Duration(0)
	for {
		s.mu.Lock()
		wait := time.Until(s.expiry.Add(-s.life / 5))
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
