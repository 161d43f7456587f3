// Package therefore keeps a Therefore OAuth session alive for a program that calls the
// Therefore Web API directly (Therefore Online, or Leasehold's therefore dialect):
//
//   - the user signs in once through the authorization code grant with PKCE (S256): New
//     listens on the host and port of the client's registered redirect URI, has the
//     authorization page opened in a browser (Config.OpenBrowser), and exchanges the code
//     it receives (POST /OAuth/Token?tenant=…);
//   - with the offline_access scope it gets a refresh token, and refreshes the access token
//     in the background at 80 % of expires_in, so the session (and the seat it holds)
//     never lapses;
//   - when a call answers 401 the token is refreshed and the call replayed; when the
//     refresh is refused the user is asked to sign in again;
//   - Close ends the session (Config.LogoffURL, with Leasehold its /oauth2/logoff).
//
// Use [Session.HTTPClient] for every call to the API.
package therefore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/leasehold/leasehold/client/internal/httpx"
)

// Config says where the OAuth server is, which client signs in and how the user is shown
// the sign-in page.
type Config struct {
	// BaseURL is the OAuth server's root, such as "https://oauth.thereforeonline.com"
	// (with Leasehold, its URL); the endpoints are BaseURL/OAuth/Authorize and
	// BaseURL/OAuth/Token, with ?tenant=Tenant.
	BaseURL string
	// Tenant is the Therefore tenant (the `tenant` parameter).
	Tenant string
	// ClientID is the registered client; ClientSecret is empty for a public client (which
	// PKCE protects; PKCE is used either way).
	ClientID     string
	ClientSecret string
	// RedirectURL is a redirect URI registered for the client, on this machine, such as
	// "http://127.0.0.1:9999/callback": New listens on its host and port for the code.
	RedirectURL string
	// Scopes default to Therefore_User and offline_access (a refresh token).
	Scopes []string
	// OpenBrowser shows the authorization page (a URL) to the user, typically by starting
	// the system's browser. Required.
	OpenBrowser func(ctx context.Context, authURL string) error
	// LogoffURL, when set, is POSTed with the access token on Close to end the session at
	// once (with Leasehold: BaseURL + "/oauth2/logoff"). Otherwise the session ends when
	// its refresh token expires.
	LogoffURL string
	// Transport is the underlying transport (default: one of its own).
	Transport http.RoundTripper
}

// ErrClosed is returned for requests made after Close.
var ErrClosed = errors.New("therefore: session closed")

// Session is a signed-in Therefore session. Its HTTPClient adds the access token to every
// request.
type Session struct {
	cfg    Config
	conf   *oauth2.Config
	next   http.RoundTripper
	idle   func()
	hc     *http.Client // for the token endpoint
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	renewMu sync.Mutex
	mu      sync.Mutex
	tok     *oauth2.Token
	life    time.Duration
	closed  bool
	wake    chan struct{}
}

// New has the user sign in (authorization code with PKCE) and starts keeping the session
// alive. It returns when the code was exchanged, or ctx ends.
func New(ctx context.Context, cfg Config) (*Session, error) {
	if cfg.BaseURL == "" || cfg.ClientID == "" || cfg.RedirectURL == "" || cfg.OpenBrowser == nil {
		return nil, errors.New("therefore: BaseURL, ClientID, RedirectURL and OpenBrowser are required")
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{"Therefore_User", "offline_access"}
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	q := ""
	if cfg.Tenant != "" {
		q = "?tenant=" + url.QueryEscape(cfg.Tenant)
	}
	style := oauth2.AuthStyleInHeader // the seed's Basic clientid:clientsecret
	if cfg.ClientSecret == "" {
		style = oauth2.AuthStyleInParams
	}
	next, idle := httpx.Base(cfg.Transport)
	s := &Session{
		cfg: cfg, next: next, idle: idle, done: make(chan struct{}), wake: make(chan struct{}, 1),
		conf: &oauth2.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.RedirectURL, Scopes: cfg.Scopes,
			Endpoint: oauth2.Endpoint{AuthURL: base + "/OAuth/Authorize" + q, TokenURL: base + "/OAuth/Token" + q, AuthStyle: style},
		},
	}
	s.hc = &http.Client{Transport: next}
	s.client = &http.Client{Transport: (*transport)(s)}
	if err := s.authorize(ctx); err != nil {
		idle()
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.keep()
	return s, nil
}

// authorize runs the authorization code grant with PKCE.
func (s *Session) authorize(ctx context.Context) error {
	ru, err := url.Parse(s.cfg.RedirectURL)
	if err != nil || ru.Host == "" {
		return fmt.Errorf("therefore: RedirectURL %q is not an absolute URL", s.cfg.RedirectURL)
	}
	ln, err := net.Listen("tcp", ru.Host)
	if err != nil {
		return fmt.Errorf("therefore: listening for the redirect on %s: %w", ru.Host, err)
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	state := hex.EncodeToString(b)
	verifier := oauth2.GenerateVerifier()

	type result struct {
		code string
		err  error
	}
	got := make(chan result, 1)
	path := ru.Path
	if path == "" {
		path = "/"
	}
	mux := http.NewServeMux()
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var res result
		switch {
		case q.Get("state") != state:
			http.Error(w, "unexpected state", http.StatusBadRequest)
			return // not ours: keep waiting
		case q.Get("error") != "":
			res.err = fmt.Errorf("therefore: authorization refused: %s %s", q.Get("error"), q.Get("error_description"))
		case q.Get("code") == "":
			res.err = errors.New("therefore: the redirect carries no code")
		default:
			res.code = q.Get("code")
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if res.err != nil {
			fmt.Fprintln(w, "Sign-in failed; you may close this window.")
		} else {
			fmt.Fprintln(w, "Signed in; you may close this window.")
		}
		select {
		case got <- res:
		default:
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-served
	}()

	authURL := s.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))
	if err := s.cfg.OpenBrowser(ctx, authURL); err != nil {
		return fmt.Errorf("therefore: opening the sign-in page: %w", err)
	}
	var res result
	select {
	case <-ctx.Done():
		return ctx.Err()
	case res = <-got:
	}
	if res.err != nil {
		return res.err
	}
	tok, err := s.conf.Exchange(context.WithValue(ctx, oauth2.HTTPClient, s.hc), res.code, oauth2.VerifierOption(verifier))
	if err != nil {
		return fmt.Errorf("therefore: code exchange: %w", err)
	}
	s.install(tok)
	return nil
}

func (s *Session) install(tok *oauth2.Token) {
	life := time.Until(tok.Expiry)
	if tok.Expiry.IsZero() || life <= 0 {
		life = 20 * time.Minute
		tok.Expiry = time.Now().Add(life)
	}
	s.mu.Lock()
	if tok.RefreshToken == "" && s.tok != nil {
		tok.RefreshToken = s.tok.RefreshToken
	}
	s.tok, s.life = tok, life
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// HTTPClient returns the client to call the API with.
func (s *Session) HTTPClient() *http.Client { return s.client }

// AccessToken returns the current access token (it changes at every refresh).
func (s *Session) AccessToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tok.AccessToken
}

// renew refreshes the token (refresh_token grant); when that is refused, and interactive
// is set, the user signs in again. Nothing is done when the access token stale was
// replaced meanwhile.
func (s *Session) renew(ctx context.Context, stale string, interactive bool) error {
	s.renewMu.Lock()
	defer s.renewMu.Unlock()
	s.mu.Lock()
	cur := *s.tok
	s.mu.Unlock()
	if stale != "" && cur.AccessToken != stale {
		return nil
	}
	var err error
	if cur.RefreshToken != "" {
		// An expired copy makes the token source refresh now.
		old := &oauth2.Token{RefreshToken: cur.RefreshToken, Expiry: time.Now().Add(-time.Hour)}
		var tok *oauth2.Token
		tok, err = s.conf.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, s.hc), old).Token()
		if err == nil {
			s.install(tok)
			return nil
		}
	} else {
		err = errors.New("therefore: no refresh token (ask for offline_access)")
	}
	var re *oauth2.RetrieveError
	if interactive && (cur.RefreshToken == "" || errors.As(err, &re)) {
		return s.authorize(ctx)
	}
	return err
}

// keep refreshes at 80 % of expires_in.
func (s *Session) keep() {
	defer close(s.done)
	backoff := time.Duration(0)
	for {
		s.mu.Lock()
		wait := time.Until(s.tok.Expiry.Add(-s.life / 5))
		noRefresh := s.tok.RefreshToken == ""
		s.mu.Unlock()
		if backoff > 0 {
			wait = backoff
		}
		if noRefresh {
			wait = time.Duration(1<<62 - 1) // nothing to do until a 401
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
		if err := s.renew(s.ctx, "", false); err != nil {
			backoff = httpx.Backoff(backoff, 30*time.Second)
			continue
		}
		backoff = 0
	}
}

// Close ends the session (Config.LogoffURL) and stops the background refresh.
func (s *Session) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	tok := s.tok.AccessToken
	s.mu.Unlock()
	s.cancel()
	<-s.done
	defer s.idle()
	if s.cfg.LogoffURL == "" {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.LogoffURL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := s.next.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("therefore: logoff: %w", err)
	}
	b := httpx.ReadBody(resp)
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("therefore: logoff: HTTP %d: %s", resp.StatusCode, httpx.Snippet(b))
	}
	return nil
}

type transport Session

// RoundTrip sends req with the access token; a 401 refreshes the token (or has the user
// sign in again) and replays req once (when its body can be replayed).
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	s := (*Session)(t)
	return httpx.BearerRoundTrip(s.next, req, ErrClosed, func() (string, bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.tok.AccessToken, s.closed
	}, func(ctx context.Context, stale string) error { return s.renew(ctx, stale, true) })
}
