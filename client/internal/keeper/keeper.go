// Package keeper keeps a Bearer token session alive: the one owner of what the webpdf,
// jim2 and therefore sub-packages share. A Keeper holds the session's tokens, serializes
// their renewal (refresh token first, else a new login), renews them in the background
// before they expire, sends requests with the access token (a 401 renews and replays
// once), and ends the session on Close. A vendor package supplies only its protocol: how
// to log in, refresh and log off, and how its answers read ([Config]).
//
// docuware does not use it: its session is a cookie the platform slides on every answer,
// with no token, lifetime or refresh to keep (see that package).
package keeper

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/leasehold/leasehold/client/internal/httpx"
)

// Tokens is what a login or a refresh answers.
type Tokens struct {
	Access  string
	Refresh string        // "" when none was issued
	Life    time.Duration // how long Access is valid from now; <= 0: Config.DefaultLife
}

// Config is a vendor's protocol.
type Config struct {
	// Login opens a session (a password or client-credentials login, a user's sign-in).
	Login func(ctx context.Context) (Tokens, error)
	// Interactive says Login needs the user: the background loop never calls it, so a
	// session it cannot refresh waits for a request's 401.
	Interactive bool
	// Refresh extends the session with the refresh token rt; nil when there is none. An
	// answer without a refresh token keeps rt (RFC 6749 section 6).
	Refresh func(ctx context.Context, rt string) (Tokens, error)
	// Final reports a refresh error after which logging in again is pointless or wrong
	// (such as a license refusal); nil: every refresh error falls back to Login.
	Final func(error) bool
	// Logoff ends the session on Close, given the last access token; nil: nothing to do.
	Logoff func(ctx context.Context, access string) error
	// DefaultLife is the life of tokens answered without one.
	DefaultLife time.Duration
	// MaxInterval, when set, caps the time from one renewal to the next (a refresh token
	// whose window is shorter than the access token's life).
	MaxInterval time.Duration
	// Next sends requests; CloseIdle (optional) runs last in Close (httpx.Base).
	Next      http.RoundTripper
	CloseIdle func()
	// ErrClosed is the error of requests made after Close.
	ErrClosed error
}

// Keeper is a live session. It is an http.RoundTripper.
type Keeper struct {
	cfg    Config
	ctx    context.Context // ended by Close
	cancel context.CancelFunc
	done   chan struct{} // closed when keep returns
	wake   chan struct{} // new tokens: keep recomputes its wait

	renewMu sync.Mutex // one renewal at a time; Close holds it while logging off
	mu      sync.Mutex
	access  string
	refresh string
	issued  time.Time
	life    time.Duration
	closed  bool
}

var _ http.RoundTripper = (*Keeper)(nil)

// New logs in (cfg.Login) and starts keeping the session alive. When the login fails it
// runs cfg.CloseIdle and returns the error.
func New(ctx context.Context, cfg Config) (*Keeper, error) {
	k := &Keeper{cfg: cfg, done: make(chan struct{}), wake: make(chan struct{}, 1)}
	t, err := cfg.Login(ctx)
	if err != nil {
		k.closeIdle()
		return nil, err
	}
	k.install(t, "")
	k.ctx, k.cancel = context.WithCancel(context.Background())
	go k.keep()
	return k, nil
}

// AccessToken returns the current access token (it changes at every renewal).
func (k *Keeper) AccessToken() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.access
}

// install makes t the session's tokens; rt is the refresh token t was refreshed with.
func (k *Keeper) install(t Tokens, rt string) {
	if t.Life <= 0 {
		t.Life = k.cfg.DefaultLife
	}
	if t.Refresh == "" {
		t.Refresh = rt
	}
	k.mu.Lock()
	k.access, k.refresh, k.life, k.issued = t.Access, t.Refresh, t.Life, time.Now()
	k.mu.Unlock()
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// renew refreshes the tokens, or logs in again when there is no refresh token or the
// refresh failed (unless cfg.Final says not to, ctx ended, or background is set and Login
// is interactive). Nothing is done when the access token stale was replaced meanwhile
// (stale "": renew anyway). Renewals run one at a time, and none after Close.
func (k *Keeper) renew(ctx context.Context, stale string, background bool) error {
	k.renewMu.Lock()
	defer k.renewMu.Unlock()
	k.mu.Lock()
	cur, rt, closed := k.access, k.refresh, k.closed
	k.mu.Unlock()
	switch {
	case closed:
		return k.cfg.ErrClosed
	case stale != "" && cur != stale:
		return nil
	}
	var err error
	if rt != "" && k.cfg.Refresh != nil {
		var t Tokens
		if t, err = k.cfg.Refresh(ctx, rt); err == nil {
			k.install(t, rt)
			return nil
		}
		if ctx.Err() != nil || (k.cfg.Final != nil && k.cfg.Final(err)) {
			return err
		}
	}
	if background && k.cfg.Interactive {
		if err == nil {
			err = errors.New("keeper: nothing to renew without the user")
		}
		return err
	}
	t, err := k.cfg.Login(ctx)
	if err != nil {
		return err
	}
	k.install(t, "")
	return nil
}

// canRenewAlone reports whether the background loop can renew (k.mu held).
func (k *Keeper) canRenewAlone() bool {
	return !k.cfg.Interactive || (k.refresh != "" && k.cfg.Refresh != nil)
}

// keep renews at 80 % of the tokens' life (at most MaxInterval after they were issued),
// retrying with backoff while renewals fail, until Close.
func (k *Keeper) keep() {
	defer close(k.done)
	backoff := time.Duration(0)
	for {
		k.mu.Lock()
		due := k.issued.Add(k.life - k.life/5)
		if m := k.cfg.MaxInterval; m > 0 && k.issued.Add(m).Before(due) {
			due = k.issued.Add(m)
		}
		alone := k.canRenewAlone()
		k.mu.Unlock()
		wait := time.Until(due)
		if backoff > 0 {
			wait = backoff
		}
		t := time.NewTimer(wait)
		timer := t.C
		if !alone {
			timer = nil // wait for new tokens or Close
		}
		select {
		case <-k.ctx.Done():
			t.Stop()
			return
		case <-k.wake: // new tokens: no more reason to back off
			t.Stop()
			backoff = 0
			continue
		case <-timer:
		}
		if err := k.renew(k.ctx, "", true); err != nil {
			backoff = httpx.Backoff(backoff, 30*time.Second)
			continue
		}
		backoff = 0
	}
}

// Close ends the session once: later requests get ErrClosed, the background loop and any
// renewal under way stop, then Logoff runs with the last access token and CloseIdle last.
// Calls after the first return nil.
func (k *Keeper) Close(ctx context.Context) error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return nil
	}
	k.closed = true
	k.mu.Unlock()
	k.cancel()
	<-k.done
	defer k.closeIdle()
	k.renewMu.Lock() // a renewal under way (now cancelled) has returned
	defer k.renewMu.Unlock()
	if k.cfg.Logoff == nil {
		return nil
	}
	return k.cfg.Logoff(ctx, k.AccessToken())
}

func (k *Keeper) closeIdle() {
	if k.cfg.CloseIdle != nil {
		k.cfg.CloseIdle()
	}
}

// RoundTrip sends req with the access token; a 401 renews the session and replays req
// once when its body can be replayed. A failed renewal answers the 401 as it came.
func (k *Keeper) RoundTrip(req *http.Request) (*http.Response, error) {
	k.mu.Lock()
	tok, closed := k.access, k.closed
	k.mu.Unlock()
	if closed {
		return nil, k.cfg.ErrClosed
	}
	retry, canRetry := httpx.Retryable(req)
	out := req.Clone(req.Context())
	out.Header.Set("Authorization", "Bearer "+tok)
	resp, err := k.cfg.Next.RoundTrip(out)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !canRetry {
		return resp, err
	}
	// The renewal ends with req or with Close, whichever comes first.
	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	defer context.AfterFunc(k.ctx, cancel)()
	if err := k.renew(ctx, tok, false); err != nil {
		return resp, nil
	}
	httpx.Drain(resp)
	retry.Header.Set("Authorization", "Bearer "+k.AccessToken())
	return k.cfg.Next.RoundTrip(retry)
}
