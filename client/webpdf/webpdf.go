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
	"time"

	"github.com/leasehold/leasehold/client/internal/httpx"
	"github.com/leasehold/leasehold/client/internal/keeper"
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
	keeper *keeper.Keeper
	client *http.Client
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
	s := &Session{cfg: cfg, auth: auth, authU: u, jar: jar, next: next}
	s.keeper, err = keeper.New(ctx, keeper.Config{
		Login: s.login, Refresh: s.refreshTokens,
		Logoff: func(ctx context.Context, tok string) error {
			return httpx.LogOff(ctx, next, http.MethodGet, s.auth+"/logout", tok, "webpdf: logout")
		},
		DefaultLife: time.Hour, Next: next, CloseIdle: idle, ErrClosed: ErrClosed,
	})
	if err != nil {
		return nil, err
	}
	s.client = &http.Client{Transport: s.keeper}
	return s, nil
}

// HTTPClient returns the client to call the API with.
func (s *Session) HTTPClient() *http.Client { return s.client }

// AccessToken returns the current access token (it changes at every refresh).
func (s *Session) AccessToken() string { return s.keeper.AccessToken() }

// Close logs out: the session ends, its documents are deleted, its seat is released.
func (s *Session) Close(ctx context.Context) error { return s.keeper.Close(ctx) }

func (s *Session) login(ctx context.Context) (keeper.Tokens, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.auth+"/login", strings.NewReader(`{"createRefreshToken":true}`))
	if err != nil {
		return keeper.Tokens{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(s.cfg.UserName, s.cfg.Password)
	return s.grant(req, "login")
}

func (s *Session) refreshTokens(ctx context.Context, rt string) (keeper.Tokens, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.auth+"/refresh", nil)
	if err != nil {
		return keeper.Tokens{}, err
	}
	req.Header.Set("Authorization", "Bearer "+rt)
	return s.grant(req, "refresh")
}

// grant sends a login or refresh request and reads the tokens it answers.
func (s *Session) grant(req *http.Request, op string) (keeper.Tokens, error) {
	req.Header.Set("Accept", "application/json")
	for _, c := range s.jar.Cookies(s.authU) {
		req.AddCookie(c)
	}
	resp, err := s.next.RoundTrip(req)
	if err != nil {
		return keeper.Tokens{}, fmt.Errorf("webpdf: %s: %w", op, err)
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
		return keeper.Tokens{}, &LicenseError{Code: r.LicenseError, Message: r.Message}
	default:
		return keeper.Tokens{}, fmt.Errorf("webpdf: %s: HTTP %d: %s", op, resp.StatusCode, httpx.Snippet(b))
	}
	return keeper.Tokens{Access: r.Token, Refresh: r.RefreshToken, Life: time.Duration(r.ExpiresIn) * time.Second}, nil
}
