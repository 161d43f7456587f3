package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// loginTokenLifetime is the lifetime asked for the login tokens a password session keeps
// (a .NET TimeSpan, as the DocuWare seed's body).
const loginTokenLifetime = "30.00:00:00"

// grant is a login or refresh answer, of either API.
type grant struct {
	access, refresh string
	expiresIn       time.Duration
}

// errRefused is a refresh token the server no longer accepts.
var errRefused = errors.New("leasehold: session refresh refused")

func (c *Client) passwordLogin() bool { return c.cfg.Username != "" }

// loginCC takes tokens with client credentials; a client with a live session rejoins it.
func (c *Client) loginCC(ctx context.Context) (grant, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "device": {c.device}}
	if len(c.cfg.Scopes) > 0 {
		form.Set("scope", strings.Join(c.cfg.Scopes, " "))
	}
	return c.tokenRequest(ctx, "login", form)
}

func (c *Client) tokenRequest(ctx context.Context, op string, form url.Values) (grant, error) {
	ctx, cancel := c.requestCtx(ctx, 0)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return grant{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(c.cfg.ClientID), url.QueryEscape(c.cfg.ClientSecret))
	status, body, err := c.do(req)
	if err != nil {
		return grant{}, err
	}
	var r struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int64  `json:"expires_in"`
		Error        string `json:"error"`
		Description  string `json:"error_description"`
		LicenseError string `json:"license_error"`
	}
	_ = json.Unmarshal(body, &r)
	switch {
	case status == http.StatusOK && r.AccessToken != "":
		return grant{access: r.AccessToken, refresh: r.RefreshToken, expiresIn: time.Duration(r.ExpiresIn) * time.Second}, nil
	case r.LicenseError != "":
		return grant{}, &LicenseError{Code: r.LicenseError, Message: r.Description}
	case op == "refresh" && (r.Error == "invalid_grant" || status == http.StatusUnauthorized):
		return grant{}, errRefused
	}
	return grant{}, httpError(op, status, body)
}

// sessionRequest posts to the session API and reads a grant.
func (c *Client) sessionRequest(ctx context.Context, op, path string, body any) (grant, error) {
	status, b, err := c.postJSON(ctx, path, body, "")
	if err != nil {
		return grant{}, err
	}
	var r struct {
		Token        string `json:"token"`
		RefreshToken string `json:"refreshToken"`
		ExpiresIn    int64  `json:"expiresIn"`
		Error        string `json:"error"`
		Message      string `json:"message"`
		LicenseError string `json:"license_error"`
	}
	_ = json.Unmarshal(b, &r)
	switch {
	case status == http.StatusOK && r.Token != "":
		return grant{access: r.Token, refresh: r.RefreshToken, expiresIn: time.Duration(r.ExpiresIn) * time.Second}, nil
	case r.LicenseError != "":
		return grant{}, &LicenseError{Code: r.LicenseError, Message: r.Message}
	case (op == "refresh" || op == "token login") && status == http.StatusUnauthorized:
		return grant{}, errRefused
	}
	return grant{}, httpError(op, status, b)
}

func (c *Client) setSession(g grant) {
	c.mu.Lock()
	c.sess.access = g.access
	if g.refresh != "" || !c.passwordLogin() {
		c.sess.refresh = g.refresh
	}
	if g.expiresIn <= 0 {
		g.expiresIn = 20 * time.Minute
	}
	c.sess.lifetime = g.expiresIn
	c.sess.expiry = time.Now().Add(g.expiresIn)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	c.save()
}

// reopen opens the session again: client credentials (which rejoin a live session of the
// client), or a login token made by the previous session (which reclaims its seat), else
// the password. Either way from the same device, so the same seat.
func (c *Client) reopen(ctx context.Context) error {
	var g grant
	var err error
	if !c.passwordLogin() {
		g, err = c.loginCC(ctx)
	} else {
		c.mu.Lock()
		lt := c.sess.loginToken
		c.mu.Unlock()
		err = errRefused
		if lt != "" {
			g, err = c.sessionRequest(ctx, "token login", "/session/token-login",
				map[string]any{"token": lt, "device": c.device, "refresh": true})
		}
		if errors.Is(err, errRefused) {
			g, err = c.sessionRequest(ctx, "login", "/session/login",
				map[string]any{"username": c.cfg.Username, "password": c.cfg.Password, "device": c.device, "refresh": true})
		}
	}
	if err != nil {
		return err
	}
	c.setSession(g)
	if c.passwordLogin() {
		c.makeLoginToken(ctx)
	}
	return nil
}

// makeLoginToken asks for a login token (best effort) and keeps it: the latest one is the
// one a lost session is re-opened with.
func (c *Client) makeLoginToken(ctx context.Context) {
	status, b, err := c.postJSON(ctx, "/session/login-token",
		map[string]any{"Usage": "Multi", "Lifetime": loginTokenLifetime}, c.AccessToken())
	if err != nil || status != http.StatusOK {
		return
	}
	var r struct {
		Token string `json:"token"`
	}
	if json.Unmarshal(b, &r) == nil && r.Token != "" {
		c.mu.Lock()
		c.sess.loginToken = r.Token
		c.mu.Unlock()
		c.save()
	}
}

// refreshSession rotates the session's tokens with its refresh token.
func (c *Client) refreshSession(ctx context.Context) error {
	c.mu.Lock()
	rt := c.sess.refresh
	c.mu.Unlock()
	var g grant
	var err error
	switch {
	case rt == "" && !c.passwordLogin():
		g, err = c.loginCC(ctx)
	case rt == "":
		return errRefused
	case c.passwordLogin():
		g, err = c.sessionRequest(ctx, "refresh", "/session/refresh", map[string]string{"refreshToken": rt})
	default:
		g, err = c.tokenRequest(ctx, "refresh", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	}
	if err != nil {
		return err
	}
	c.setSession(g)
	return nil
}

// renewSession refreshes the session, or re-opens it when the refresh is refused. stale is
// the access token the caller found wanting: when it was replaced meanwhile, nothing is
// done.
func (c *Client) renewSession(ctx context.Context, stale string) error {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	if stale != "" && c.AccessToken() != stale {
		return nil
	}
	err := c.refreshSession(ctx)
	if errors.Is(err, errRefused) {
		err = c.reopen(ctx)
	}
	return err
}

// maxSessionRefresh bounds the time between two refreshes of the session: a refresh token
// whose window is shorter than the access token's lifetime (Jim2's 20 minutes, say) must
// still be used in time, and the client cannot see that window.
const maxSessionRefresh = 10 * time.Minute

// keepSession refreshes the session at 80 % of its access token's lifetime (at most
// maxSessionRefresh after the last refresh), so that it never lapses while the program
// runs, retrying with backoff when the server is away.
func (c *Client) keepSession() {
	defer c.wg.Done()
	backoff := time.Duration(0)
	for {
		c.mu.Lock()
		at := c.sess.expiry.Add(-c.sess.lifetime / 5)
		if capped := c.sess.expiry.Add(-c.sess.lifetime).Add(maxSessionRefresh); capped.Before(at) {
			at = capped
		}
		c.mu.Unlock()
		wait := time.Until(at)
		if backoff > 0 {
			wait = backoff
		}
		t := time.NewTimer(wait)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-c.wake:
			t.Stop()
			if backoff == 0 {
				continue
			}
			// A session re-opened elsewhere: resume the normal schedule.
			backoff = 0
			continue
		case <-t.C:
		}
		if err := c.renewSession(c.ctx, ""); err != nil {
			backoff = nextBackoff(backoff, 30*time.Second)
			continue
		}
		backoff = 0
	}
}

// logoff ends the session now; an already ended session is not an error.
func (c *Client) logoff(ctx context.Context) error {
	if c.AccessToken() == "" {
		return nil
	}
	status, b, err := c.withAuth(ctx, func(tok string) (int, []byte, error) {
		return c.postJSON(ctx, "/oauth2/logoff", map[string]string{}, tok)
	})
	if err != nil {
		return err
	}
	if status == http.StatusOK || status == http.StatusUnauthorized {
		return nil
	}
	return httpError("logoff", status, b)
}

// withAuth runs an authenticated request; an answer 401 (the access token expired or the
// session ended) renews the session and runs it once more.
func (c *Client) withAuth(ctx context.Context, f func(tok string) (int, []byte, error)) (int, []byte, error) {
	tok := c.AccessToken()
	status, b, err := f(tok)
	if err != nil || status != http.StatusUnauthorized {
		return status, b, err
	}
	if err := c.renewSession(ctx, tok); err != nil {
		return 0, nil, err
	}
	return f(c.AccessToken())
}

// nextBackoff doubles d from 500 ms up to max.
func nextBackoff(d, max time.Duration) time.Duration {
	if d <= 0 {
		return 500 * time.Millisecond
	}
	d *= 2
	if d > max {
		d = max
	}
	return d
}
