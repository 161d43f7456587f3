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
	"time"

	"golang.org/x/oauth2"

	"github.com/leasehold/leasehold/client/internal/httpx"
	"github.com/leasehold/leasehold/client/internal/keeper"
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
	hc     *http.Client // for the token endpoint
	keeper *keeper.Keeper
	client *http.Client
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
		cfg: cfg, hc: &http.Client{Transport: next},
		conf: &oauth2.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.RedirectURL, Scopes: cfg.Scopes,
			Endpoint: oauth2.Endpoint{AuthURL: base + "/OAuth/Authorize" + q, TokenURL: base + "/OAuth/Token" + q, AuthStyle: style},
		},
	}
	kc := keeper.Config{
		// Signing in again needs the user: only a call's 401 leads to it (never the
		// background refresh), and only when the refresh was refused (a RetrieveError),
		// not when it could not be sent.
		Login: s.authorize, Interactive: true, Refresh: s.refresh,
		Final:       func(err error) bool { var re *oauth2.RetrieveError; return !errors.As(err, &re) },
		DefaultLife: 20 * time.Minute, Next: next, CloseIdle: idle, ErrClosed: ErrClosed,
	}
	if cfg.LogoffURL != "" {
		kc.Logoff = func(ctx context.Context, tok string) error {
			return httpx.LogOff(ctx, next, http.MethodPost, cfg.LogoffURL, tok, "therefore: logoff")
		}
	}
	var err error
	if s.keeper, err = keeper.New(ctx, kc); err != nil {
		return nil, err
	}
	s.client = &http.Client{Transport: s.keeper}
	return s, nil
}

// authorize runs the authorization code grant with PKCE.
func (s *Session) authorize(ctx context.Context) (keeper.Tokens, error) {
	ru, err := url.Parse(s.cfg.RedirectURL)
	if err != nil || ru.Host == "" {
		return keeper.Tokens{}, fmt.Errorf("therefore: RedirectURL %q is not an absolute URL", s.cfg.RedirectURL)
	}
	ln, err := net.Listen("tcp", ru.Host)
	if err != nil {
		return keeper.Tokens{}, fmt.Errorf("therefore: listening for the redirect on %s: %w", ru.Host, err)
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
		return keeper.Tokens{}, fmt.Errorf("therefore: opening the sign-in page: %w", err)
	}
	var res result
	select {
	case <-ctx.Done():
		return keeper.Tokens{}, ctx.Err()
	case res = <-got:
	}
	if res.err != nil {
		return keeper.Tokens{}, res.err
	}
	tok, err := s.conf.Exchange(context.WithValue(ctx, oauth2.HTTPClient, s.hc), res.code, oauth2.VerifierOption(verifier))
	if err != nil {
		return keeper.Tokens{}, fmt.Errorf("therefore: code exchange: %w", err)
	}
	return tokens(tok), nil
}

// refresh takes new tokens with the refresh token rt (refresh_token grant).
func (s *Session) refresh(ctx context.Context, rt string) (keeper.Tokens, error) {
	// An expired copy makes the token source refresh now.
	old := &oauth2.Token{RefreshToken: rt, Expiry: time.Now().Add(-time.Hour)}
	tok, err := s.conf.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, s.hc), old).Token()
	if err != nil {
		return keeper.Tokens{}, err
	}
	return tokens(tok), nil
}

func tokens(tok *oauth2.Token) keeper.Tokens {
	t := keeper.Tokens{Access: tok.AccessToken, Refresh: tok.RefreshToken}
	if !tok.Expiry.IsZero() {
		t.Life = time.Until(tok.Expiry)
	}
	return t
}

// HTTPClient returns the client to call the API with.
func (s *Session) HTTPClient() *http.Client { return s.client }

// AccessToken returns the current access token (it changes at every refresh).
func (s *Session) AccessToken() string { return s.keeper.AccessToken() }

// Close ends the session (Config.LogoffURL) and stops the background refresh.
func (s *Session) Close(ctx context.Context) error { return s.keeper.Close(ctx) }
