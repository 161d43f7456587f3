package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// Config says which server to use and how to log in. BaseURL and one kind of credentials
// (ClientID and ClientSecret, or Username and Password) are required.
type Config struct {
	// BaseURL is the server's URL, such as "http://127.0.0.1:8080".
	BaseURL string
	// Tenant names the tenant; empty means the server's default tenant.
	Tenant string

	// ClientID and ClientSecret log in with OAuth2 client credentials (POST /oauth2/token).
	ClientID     string
	ClientSecret string
	// Scopes are asked for with client credentials; none means the client's default.
	Scopes []string

	// Username and Password log in to a session (POST /session/login); the client then
	// keeps a login token so that a session it loses is re-opened onto the same seat.
	Username string
	Password string

	// Device is the hardware id sent as `hw` (and as the session's device). Empty means a
	// stable id of this machine (derived from its machine id, else its host name).
	Device string
	// Version is sent as `version` with every consumption, for models with a version
	// constraint. Optional.
	Version string

	// StateDir, when set, is a directory where the client keeps its process id, its
	// session, its leases and the tenant's JWK Set, so that a restarted program resumes its
	// session and leases instead of taking new ones, and checkout leases work offline.
	// One Client at a time uses a directory (it is locked).
	StateDir string

	// HTTPClient is used for every request; nil means a client of its own.
	HTTPClient *http.Client
	// RequestTimeout bounds each request (a queued consumption also gets its queue time).
	// Zero means 30 seconds.
	RequestTimeout time.Duration
}

// Client is a logged-in session of a Leasehold server and the leases it holds. It is safe
// for concurrent use. Close it when done: that releases its leases and ends its session.
type Client struct {
	cfg       Config
	base      string // BaseURL, with /t/{tenant} when a tenant is named
	hc        *http.Client
	transport *http.Transport // ours, closed by Close; nil with Config.HTTPClient
	timeout   time.Duration
	device    string
	process   string
	identity  string
	state     *stateDir // nil without StateDir
	ver       *verifier
	offline   bool

	ctx    context.Context // cancelled by Close: stops every background goroutine
	cancel context.CancelFunc
	wg     sync.WaitGroup

	sessMu sync.Mutex // held while the session is being refreshed or re-opened

	mu     sync.Mutex
	sess   session
	leases map[string]*Lease      // held leases by item
	taking map[string]*sync.Mutex // serializes Consume per item
	kept   map[string]savedLease  // leases kept in StateDir by an earlier run, not yet taken up
	closed bool
	wake   chan struct{} // tells the session keeper that the session changed
}

// session is the client's current login.
type session struct {
	access     string
	refresh    string
	expiry     time.Time // local monotonic clock
	lifetime   time.Duration
	loginToken string
}

// New logs in and returns a Client holding the session (and its seat, when its scope is
// licensed). A login refused for lack of a seat is a *LicenseError.
//
// With Config.StateDir, New resumes the session an earlier run kept there instead of
// logging in again; and when the server cannot be reached but the directory holds a valid
// checkout lease, New returns an offline Client whose Consume returns that lease.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("leasehold: Config.BaseURL is required")
	}
	cc := cfg.ClientID != ""
	pw := cfg.Username != ""
	if cc == pw {
		return nil, errors.New("leasehold: Config needs either ClientID/ClientSecret or Username/Password")
	}
	c := &Client{
		cfg:    cfg,
		base:   strings.TrimRight(cfg.BaseURL, "/"),
		leases: map[string]*Lease{},
		taking: map[string]*sync.Mutex{},
		kept:   map[string]savedLease{},
		wake:   make(chan struct{}, 1),
	}
	if cfg.Tenant != "" {
		c.base += "/t/" + url.PathEscape(cfg.Tenant)
	}
	c.hc = cfg.HTTPClient
	if c.hc == nil {
		c.transport = http.DefaultTransport.(*http.Transport).Clone()
		c.hc = &http.Client{Transport: c.transport}
	}
	c.timeout = cfg.RequestTimeout
	if c.timeout <= 0 {
		c.timeout = 30 * time.Second
	}
	c.device = cfg.Device
	if c.device == "" {
		c.device = machineID()
	}
	user := cfg.ClientID
	if pw {
		user = "user:" + cfg.Username
	}
	c.identity = strings.Join([]string{c.base, user, c.device}, " ")
	c.ver = &verifier{fetch: c.fetchJWKS}

	var saved savedState
	if cfg.StateDir != "" {
		st, err := openStateDir(cfg.StateDir)
		if err != nil {
			return nil, err
		}
		c.state = st
		if saved, err = st.read(); err != nil {
			st.close()
			return nil, err
		}
		c.process = saved.Process
		if saved.Identity == c.identity {
			for _, l := range saved.Leases {
				c.kept[l.Item] = l
			}
			if len(saved.JWKS) > 0 {
				_ = c.ver.load(saved.JWKS)
			}
		} else {
			saved = savedState{Process: saved.Process}
		}
	}
	if c.process == "" {
		c.process = randomID()
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())

	err := c.start(ctx, saved.Session)
	if err != nil && unreachable(err) && c.state != nil && c.offlineReady(ctx) {
		c.offline = true
		return c, nil
	}
	if err != nil {
		c.cancel()
		c.closeTransport()
		if c.state != nil {
			c.state.close()
		}
		return nil, err
	}
	c.save()
	c.wg.Add(1)
	go c.keepSession()
	return c, nil
}

// start resumes the saved session or logs in.
func (c *Client) start(ctx context.Context, saved *savedSession) error {
	if saved != nil && saved.RefreshToken != "" {
		c.sess = session{refresh: saved.RefreshToken, loginToken: saved.LoginToken}
		err := c.refreshSession(ctx)
		if err == nil {
			return nil
		}
		if unreachable(err) {
			return err
		}
		var le *LicenseError
		if errors.As(err, &le) {
			return err
		}
		// The saved session is gone: log in (with the login token when there is one).
	} else if saved != nil {
		c.sess.loginToken = saved.LoginToken
	}
	return c.reopen(ctx)
}

// offlineReady reports whether the StateDir holds a checkout lease that its kept JWK Set
// verifies and whose expiry is ahead.
func (c *Client) offlineReady(ctx context.Context) bool {
	c.ver.fetch = nil
	for _, k := range c.kept {
		if k.Mode != modeCheckout {
			continue
		}
		l, err := c.leaseFromSaved(ctx, k)
		if err == nil && l.Valid() {
			return true
		}
	}
	return false
}

// Offline reports whether the Client was started offline from its StateDir: it hands out
// kept checkout leases and makes no request to the server. It stays offline; a program
// that wants to go online again creates a new Client (after closing this one).
func (c *Client) Offline() bool { return c.offline }

// Device returns the hardware id the Client sends as `hw`.
func (c *Client) Device() string { return c.device }

// Process returns the Client's process id, sent as `process` with every consumption.
func (c *Client) Process() string { return c.process }

// AccessToken returns the session's current access token, for calling other APIs of the
// tenant with it (it changes as the session is refreshed; ask again before each use).
func (c *Client) AccessToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess.access
}

// Close releases every online lease the Client holds (checkout leases stay valid and
// kept), ends the session (logoff: its seat is freed, after the model's linger), and stops
// every background goroutine. It is safe to call more than once.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()

	var errs []error
	if !c.offline {
		c.mu.Lock()
		var ids []string
		for _, l := range c.leases {
			if l.opts.mode != modeCheckout {
				ids = append(ids, l.ID())
			}
		}
		for item, k := range c.kept {
			if k.Mode != modeCheckout {
				if id, err := tokenID(k.Token); err == nil {
					ids = append(ids, id)
				}
				delete(c.kept, item)
			}
		}
		c.mu.Unlock()
		if len(ids) > 0 {
			if err := c.releaseIDs(ctx, ids); err != nil {
				errs = append(errs, err)
			}
		}
		if err := c.logoff(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	c.mu.Lock()
	for item, l := range c.leases {
		if l.opts.mode != modeCheckout {
			delete(c.leases, item)
		}
		l.closeEvents()
	}
	if !c.offline {
		// Logged off: only the login token is worth keeping. (An offline Client keeps the
		// session it could not resume, for the next start.)
		c.sess = session{loginToken: c.sess.loginToken}
	}
	c.mu.Unlock()
	c.save()
	if c.state != nil {
		c.state.close()
	}
	c.closeTransport()
	return errors.Join(errs...)
}

func (c *Client) closeTransport() {
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
}

// save writes the state to StateDir (when there is one). Failures are not fatal: the
// state is an optimization of the next start, never needed for this one.
func (c *Client) save() {
	if c.state == nil {
		return
	}
	c.mu.Lock()
	st := savedState{Identity: c.identity, Process: c.process, JWKS: c.ver.cached()}
	if c.sess.access != "" || c.sess.refresh != "" || c.sess.loginToken != "" {
		st.Session = &savedSession{
			AccessToken: c.sess.access, RefreshToken: c.sess.refresh,
			Expiry: time.Now().Add(time.Until(c.sess.expiry)).Round(0), LoginToken: c.sess.loginToken,
		}
	}
	for _, l := range c.leases {
		if s, ok := l.saved(); ok {
			st.Leases = append(st.Leases, s)
		}
	}
	for item, k := range c.kept {
		if _, held := c.leases[item]; !held {
			st.Leases = append(st.Leases, k)
		}
	}
	c.mu.Unlock()
	_ = c.state.write(st)
}

// --- HTTP helpers ---

func (c *Client) requestCtx(ctx context.Context, extra time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout+extra)
}

// do sends a request and reads the whole answer (at most 1 MiB).
func (c *Client) do(req *http.Request) (int, []byte, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, &transportError{err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, nil, &transportError{err}
	}
	return resp.StatusCode, body, nil
}

// postJSON posts a JSON body (with the access token when bearer is set).
func (c *Client) postJSON(ctx context.Context, path string, body any, bearer string) (int, []byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := c.requestCtx(ctx, 0)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, strings.NewReader(string(b)))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return c.do(req)
}

// transportError is a request that got no HTTP answer.
type transportError struct{ err error }

func (e *transportError) Error() string { return "leasehold: server unreachable: " + e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// unreachable reports whether err means that the server gave no answer (or a gateway said
// it could not reach it).
func unreachable(err error) bool {
	var te *transportError
	if errors.As(err, &te) {
		return true
	}
	var he *HTTPError
	return errors.As(err, &he) && (he.Status == http.StatusBadGateway || he.Status == http.StatusServiceUnavailable || he.Status == http.StatusGatewayTimeout)
}

func httpError(op string, status int, body []byte) *HTTPError {
	s := string(body)
	if len(s) > 300 {
		s = s[:300]
	}
	return &HTTPError{Op: op, Status: status, Body: strings.TrimSpace(s)}
}

func (c *Client) fetchJWKS(ctx context.Context) ([]byte, error) {
	ctx, cancel := c.requestCtx(ctx, 0)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/.well-known/jwks.json", nil)
	if err != nil {
		return nil, err
	}
	status, body, err := c.do(req)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, httpError("jwks", status, body)
	}
	return body, nil
}

// machineID is a stable id of this machine: a hash of its machine id (or host name), so
// that the raw id never leaves it.
func machineID() string {
	var src string
	for _, p := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id"} {
		if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			src = strings.TrimSpace(string(b))
			break
		}
	}
	if src == "" {
		src, _ = os.Hostname()
	}
	sum := sha256.Sum256([]byte("leasehold-hw:" + src))
	return hex.EncodeToString(sum[:12])
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func fmtDuration(d time.Duration) string { return fmt.Sprint(d.Milliseconds()) }
