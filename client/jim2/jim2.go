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
	"time"

	"github.com/leasehold/leasehold/client/internal/httpx"
	"github.com/leasehold/leasehold/client/internal/keeper"
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
	keeper *keeper.Keeper
	client *http.Client
}

// New takes the session's first token and starts keeping it fresh.
func New(ctx context.Context, cfg Config) (*Session, error) {
	if cfg.BaseURL == "" || cfg.Database == "" || cfg.ClientID == "" {
		return nil, errors.New("jim2: BaseURL, Database and ClientID are required")
	}
	next, idle := httpx.Base(cfg.Transport)
	s := &Session{cfg: cfg, next: next, root: strings.TrimRight(cfg.BaseURL, "/") + "/" + url.PathEscape(cfg.Database)}
	var err error
	s.keeper, err = keeper.New(ctx, keeper.Config{
		Login: func(ctx context.Context) (keeper.Tokens, error) {
			return s.token(ctx, url.Values{"grant_type": {"client_credentials"}})
		},
		Refresh: func(ctx context.Context, rt string) (keeper.Tokens, error) {
			return s.token(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		},
		// A refused licence stays refused: client credentials would only ask again.
		Final: func(err error) bool { var le *LicenseError; return errors.As(err, &le) },
		Logoff: func(ctx context.Context, tok string) error {
			return httpx.LogOff(ctx, next, http.MethodPost, s.root+"/logoff", tok, "jim2: logoff")
		},
		// The refresh token's window (20 minutes, sliding) may be shorter than expires_in.
		DefaultLife: 20 * time.Minute, MaxInterval: 10 * time.Minute,
		Next: next, CloseIdle: idle, ErrClosed: ErrClosed,
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

// Close logs off (the licence is released) and stops the background refresh.
func (s *Session) Close(ctx context.Context) error { return s.keeper.Close(ctx) }

// token asks /token for a grant and reads the tokens it answers.
func (s *Session) token(ctx context.Context, form url.Values) (keeper.Tokens, error) {
	if s.cfg.Scope != "" {
		form.Set("scope", s.cfg.Scope)
	}
	if s.cfg.Device != "" {
		form.Set("device", s.cfg.Device)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.root+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return keeper.Tokens{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(s.cfg.ClientID, s.cfg.ClientSecret)
	resp, err := s.next.RoundTrip(req)
	if err != nil {
		return keeper.Tokens{}, fmt.Errorf("jim2: token: %w", err)
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
		return keeper.Tokens{}, &LicenseError{Code: r.LicenseError, Message: r.Description}
	default:
		return keeper.Tokens{}, fmt.Errorf("jim2: token: HTTP %d: %s", resp.StatusCode, httpx.Snippet(b))
	}
	return keeper.Tokens{Access: r.AccessToken, Refresh: r.RefreshToken, Life: time.Duration(r.ExpiresIn) * time.Second}, nil
}
