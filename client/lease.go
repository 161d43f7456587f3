package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

const (
	modeCache    = "cache"
	modeCheckout = "checkout"
)

// eventBuffer is how many events a Lease keeps for a reader that is behind; when it is
// full the oldest event is dropped, so a program that never reads them loses nothing else.
const eventBuffer = 32

// ConsumeOption changes how [Client.Consume] takes a lease.
type ConsumeOption func(*consumeOpts)

type consumeOpts struct {
	mode     string
	duration time.Duration
	queue    time.Duration
}

// WithCheckout takes an offline (checkout) lease valid for up to d (the license model's
// offline maximum caps it; zero asks for that maximum). With Config.StateDir the lease is
// kept there and [New] can hand it out while the server cannot be reached. Close does not
// release it; [Lease.Release] does.
func WithCheckout(d time.Duration) ConsumeOption {
	return func(o *consumeOpts) { o.mode, o.duration = modeCheckout, d }
}

// WithDuration asks for an online lease of duration d (the model's online maximum caps it).
// Renewals ask for the same.
func WithDuration(d time.Duration) ConsumeOption {
	return func(o *consumeOpts) { o.duration = d }
}

// WithQueue waits up to d for a seat to free when none is (`queue=`), first come first
// served, instead of failing at once with licenseQuotaExceeded.
func WithQueue(d time.Duration) ConsumeOption {
	return func(o *consumeOpts) { o.queue = d }
}

// Lease is a licensed item held by a [Client]: a signed lease token, renewed in the
// background at its refresh time for as long as the Client lives, until Release or Close.
type Lease struct {
	c    *Client
	item string
	opts consumeOpts

	events chan Event
	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	token      string
	claims     map[string]any
	id         string
	received   time.Time // local clock (monotonic when received in this process)
	iat        int64
	exp        int64
	rfr        int64
	lost       bool
	released   bool
	eventsDone bool
}

// Item returns the licensed item's name.
func (l *Lease) Item() string { return l.item }

// ID returns the current lease id (the token's `jti`); it changes at every renewal.
func (l *Lease) ID() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.id
}

// Token returns the current signed lease token (a compact JWS), for handing on to a
// component that verifies it itself.
func (l *Lease) Token() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.token
}

// License returns the id of the license the lease draws on (`lic`).
func (l *Lease) License() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, _ := l.claims["lic"].(string)
	return s
}

// Checkout reports whether the lease is an offline (checkout) lease.
func (l *Lease) Checkout() bool { return l.opts.mode == modeCheckout }

// Expiry returns when the lease expires: the moment it was received plus its validity
// (exp − iat), on this machine's clock.
func (l *Lease) Expiry() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.expiry()
}

func (l *Lease) expiry() time.Time { return l.received.Add(time.Duration(l.exp-l.iat) * time.Second) }

// renewAt is when the lease should be renewed: its `rfr` offset from receipt (80 % of its
// validity when the token has no usable `rfr`).
func (l *Lease) renewAt() time.Time {
	d := time.Duration(l.rfr-l.iat) * time.Second
	if l.rfr <= l.iat || l.rfr > l.exp {
		d = time.Duration(l.exp-l.iat) * time.Second * 4 / 5
	}
	return l.received.Add(d)
}

// Valid reports whether the lease holds: its token was verified and it has not expired.
func (l *Lease) Valid() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.token != "" && !l.released && time.Now().Before(l.expiry())
}

// Events returns the channel on which the lease's renewals, retries, losses and
// restorations are reported. It is closed when the lease is released or its Client
// closed. When the reader falls behind by more than 32 events the oldest are dropped.
func (l *Lease) Events() <-chan Event { return l.events }

// Release gives the lease back now (checkout leases included, and their kept copy is
// deleted). The seat lingers for the model's linger. The Lease must not be used after.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return nil
	}
	l.mu.Unlock()
	c := l.c
	if c.offline {
		return ErrOffline
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		// The session is over: a new Client releases a kept lease (Client.Release).
		return ErrClosed
	}
	l.stop()
	l.mu.Lock()
	l.released = true
	id := l.id
	l.mu.Unlock()
	err := c.releaseIDs(ctx, []string{id})
	c.mu.Lock()
	if c.leases[l.item] == l {
		delete(c.leases, l.item)
	}
	delete(c.kept, l.item)
	c.mu.Unlock()
	c.save()
	l.closeEvents()
	return err
}

func (l *Lease) stop() {
	if l.cancel != nil {
		l.cancel()
		<-l.done
	}
}

func (l *Lease) emit(kind EventKind, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.eventsDone {
		return
	}
	ev := Event{Kind: kind, Err: err, LeaseID: l.id, Expiry: l.expiry(), Time: time.Now()}
	for {
		select {
		case l.events <- ev:
			return
		default:
		}
		select { // full: drop the oldest
		case <-l.events:
		default:
		}
	}
}

func (l *Lease) closeEvents() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.eventsDone {
		l.eventsDone = true
		close(l.events)
	}
}

// set installs a newly received token.
func (l *Lease) set(tok string, claims map[string]any, received time.Time) {
	l.token, l.claims, l.received = tok, claims, received
	l.id, _ = claims["jti"].(string)
	l.iat, l.exp, l.rfr = num(claims["iat"]), num(claims["exp"]), num(claims["rfr"])
}

func (l *Lease) saved() (savedLease, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released || l.token == "" {
		return savedLease{}, false
	}
	return savedLease{Item: l.item, Mode: l.opts.mode, Token: l.token, Received: l.received.Round(0)}, true
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

// chainRoot is the first lease id of a chain: Leasehold names a renewal
// `<first id>.<n>.<tag>`, so a renewal that answers another root started a new chain.
func chainRoot(id string) string {
	root, _, _ := strings.Cut(id, ".")
	return root
}

// run renews the lease at its refresh time until the Client closes or the lease is
// released; a failed renewal is retried with backoff.
func (l *Lease) run(ctx context.Context) {
	defer close(l.done)
	backoff := time.Duration(0)
	for {
		l.mu.Lock()
		wait := time.Until(l.renewAt())
		if backoff > 0 {
			wait = backoff
			if !l.lost {
				// Retry before the lease lapses.
				if u := time.Until(l.expiry()); u < wait {
					wait = u
				}
			}
		}
		l.mu.Unlock()
		if sleepCtx(ctx, wait) != nil {
			return
		}
		if err := l.renew(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			backoff = nextBackoff(backoff, 30*time.Second)
			continue
		}
		backoff = 0
	}
}

func (l *Lease) renew(ctx context.Context) error {
	l.mu.Lock()
	id, lost := l.id, l.lost
	l.mu.Unlock()
	o := l.opts
	o.queue = 0 // a renewal never waits in the queue: the lease must not lapse meanwhile
	rctx, cancel := ctx, context.CancelFunc(func() {})
	if !lost {
		// A request that hangs must not outlive the lease: give it half the time left.
		l.mu.Lock()
		d := time.Until(l.expiry()) / 2
		l.mu.Unlock()
		if d < time.Second {
			d = time.Second
		}
		if d < l.c.timeout {
			rctx, cancel = context.WithTimeout(ctx, d)
		}
	}
	tok, claims, received, err := l.c.consume(rctx, l.item, o, id)
	var stale *LicenseError
	if errors.As(err, &stale) && stale.Code == "leaseIdNotMatching" && id != "" {
		// The server renewed the lease but its answer never arrived, longer ago than the
		// model's chain_grace: end that chain (release accepts any of its ids) and start
		// a new one.
		_ = l.c.releaseIDs(rctx, []string{id})
		tok, claims, received, err = l.c.consume(rctx, l.item, o, "")
	}
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		var le *LicenseError
		l.mu.Lock()
		expired := !time.Now().Before(l.expiry())
		l.mu.Unlock()
		switch {
		case lost:
		case errors.As(err, &le) || expired:
			l.mu.Lock()
			l.lost = true
			l.mu.Unlock()
			l.emit(Lost, err)
		default:
			l.emit(Retrying, err)
		}
		return err
	}
	newID, _ := claims["jti"].(string)
	l.mu.Lock()
	if newID == l.id {
		// The server answered the current lease unchanged (a retry within chain_grace):
		// its times still count from the first receipt.
		received = l.received
	}
	l.set(tok, claims, received)
	l.lost = false
	l.mu.Unlock()
	l.c.save()
	switch {
	case lost:
		l.emit(Restored, nil)
	case chainRoot(newID) != chainRoot(id):
		l.emit(Lost, ErrChainBroken)
		l.emit(Restored, nil)
	default:
		l.emit(Renewed, nil)
	}
	return nil
}

// Consume takes a lease on item (or renews the one this Client already holds on it) and
// keeps it renewed in the background. A refusal is a *LicenseError whose Code is the
// 10Duke error key (for example "licenseQuotaExceeded").
//
// An offline Client returns the checkout lease kept for item in StateDir, or ErrOffline.
func (c *Client) Consume(ctx context.Context, item string, opts ...ConsumeOption) (*Lease, error) {
	o := consumeOpts{mode: modeCache}
	for _, f := range opts {
		f(&o)
	}
	// One consumption of an item at a time: a second one, sent while the first is under
	// way, would name no lease id and be refused (lease chaining).
	c.mu.Lock()
	m := c.taking[item]
	if m == nil {
		m = &sync.Mutex{}
		c.taking[item] = m
	}
	c.mu.Unlock()
	m.Lock()
	defer m.Unlock()

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if l := c.leases[item]; l != nil {
		c.mu.Unlock()
		return l, nil
	}
	kept, hasKept := c.kept[item]
	c.mu.Unlock()

	if c.offline {
		if !hasKept || kept.Mode != modeCheckout {
			return nil, ErrOffline
		}
		l, err := c.leaseFromSaved(ctx, kept)
		if err != nil {
			return nil, err
		}
		if !l.Valid() {
			return nil, fmt.Errorf("%w (the kept checkout lease of %q has expired)", ErrOffline, item)
		}
		return c.adopt(l, false)
	}

	var prev string
	if hasKept {
		prev, _ = tokenID(kept.Token)
	}
	tok, claims, received, err := c.consume(ctx, item, o, prev)
	var le *LicenseError
	if prev != "" && errors.As(err, &le) && le.Code == "leaseIdNotMatching" {
		// The kept lease id is stale (a crash between a renewal and its write): end that
		// chain (release accepts any of its ids) and start afresh.
		_ = c.releaseIDs(ctx, []string{prev})
		tok, claims, received, err = c.consume(ctx, item, o, "")
	}
	if err != nil {
		return nil, err
	}
	l := &Lease{c: c, item: item, opts: o, events: make(chan Event, eventBuffer)}
	l.set(tok, claims, received)
	return c.adopt(l, true)
}

// adopt registers l as the Client's lease on its item and starts renewing it.
func (c *Client) adopt(l *Lease, renew bool) (*Lease, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if other := c.leases[l.item]; other != nil {
		c.mu.Unlock()
		return other, nil
	}
	c.leases[l.item] = l
	delete(c.kept, l.item)
	if renew {
		ctx, cancel := context.WithCancel(c.ctx)
		l.cancel, l.done = cancel, make(chan struct{})
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			l.run(ctx)
		}()
	}
	c.mu.Unlock()
	c.save()
	return l, nil
}

// leaseFromSaved verifies a kept lease against the (kept) JWK Set.
func (c *Client) leaseFromSaved(ctx context.Context, s savedLease) (*Lease, error) {
	claims, err := c.ver.verify(ctx, s.Token)
	if err != nil {
		return nil, err
	}
	if claims[s.Item] != true {
		return nil, fmt.Errorf("leasehold: kept lease is not for %q", s.Item)
	}
	l := &Lease{c: c, item: s.Item, opts: consumeOpts{mode: s.Mode}, events: make(chan Event, eventBuffer)}
	l.set(s.Token, claims, s.Received)
	return l, nil
}

// Check asks whether item could be consumed now (`doConsume=false`), without consuming
// it. A refusal answers false with the *LicenseError that says why.
func (c *Client) Check(ctx context.Context, item string) (bool, error) {
	if c.offline {
		c.mu.Lock()
		k, ok := c.kept[item]
		l := c.leases[item]
		c.mu.Unlock()
		if l != nil {
			return l.Valid(), nil
		}
		if ok && k.Mode == modeCheckout {
			if l, err := c.leaseFromSaved(ctx, k); err == nil {
				return l.Valid(), nil
			}
		}
		return false, ErrOffline
	}
	_, _, _, err := c.authz(ctx, item, consumeOpts{}, "", true)
	if err != nil {
		return false, err
	}
	return true, nil
}

func (c *Client) consume(ctx context.Context, item string, o consumeOpts, leaseID string) (string, map[string]any, time.Time, error) {
	return c.authz(ctx, item, o, leaseID, false)
}

// authz asks /authz/.jwt for one item and verifies the answer.
func (c *Client) authz(ctx context.Context, item string, o consumeOpts, leaseID string, check bool) (string, map[string]any, time.Time, error) {
	q := url.QueryEscape(item) + "&hw=" + url.QueryEscape(c.device) + "&process=" + url.QueryEscape(c.process)
	if check {
		q += "&doConsume=false"
	}
	if o.mode == modeCheckout {
		q += "&consumptionMode=checkout"
	}
	if o.duration > 0 {
		q += "&consumeDuration=" + fmtDuration(o.duration)
	}
	if o.queue > 0 && !check {
		q += "&queue=" + fmtDuration(o.queue)
	}
	if c.cfg.Version != "" {
		q += "&version=" + url.QueryEscape(c.cfg.Version)
	}
	if leaseID != "" {
		q += "&leaseId=" + url.QueryEscape(leaseID)
	}
	var received time.Time
	status, body, err := c.withAuth(ctx, func(tok string) (int, []byte, error) {
		rctx, cancel := c.requestCtx(ctx, o.queue)
		defer cancel()
		req, err := http.NewRequestWithContext(rctx, http.MethodGet, c.base+"/authz/.jwt?"+q, nil)
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		status, body, err := c.do(req)
		received = time.Now()
		return status, body, err
	})
	if err != nil {
		return "", nil, received, err
	}
	if status != http.StatusOK {
		return "", nil, received, httpError("consume", status, body)
	}
	tok := strings.TrimSpace(string(body))
	claims, err := c.ver.verify(ctx, tok)
	if err != nil {
		return "", nil, received, err
	}
	if code, ok := claims[item+"_errorKey"].(string); ok || claims[item+"_errorCode"] != nil {
		if !ok {
			code, _ = claims[item+"_errorCode"].(string)
		}
		msg, _ := claims[item+"_errorMessage"].(string)
		return "", nil, received, &LicenseError{Item: item, Code: code, Message: msg}
	}
	if claims[item] != true {
		return "", nil, received, fmt.Errorf("leasehold: the answer does not grant %q", item)
	}
	if !check {
		if id, _ := claims["jti"].(string); id == "" {
			return "", nil, received, errors.New("leasehold: lease token without jti")
		}
	}
	return tok, claims, received, nil
}

// releaseIDs releases leases (any id of each chain) in one request. An id the server no
// longer knows is already released.
func (c *Client) releaseIDs(ctx context.Context, ids []string) error {
	q := "release"
	for _, id := range ids {
		q += "&" + url.QueryEscape(id)
	}
	status, body, err := c.withAuth(ctx, func(tok string) (int, []byte, error) {
		rctx, cancel := c.requestCtx(ctx, 0)
		defer cancel()
		req, err := http.NewRequestWithContext(rctx, http.MethodGet, c.base+"/authz/.json?"+q, nil)
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		return c.do(req)
	})
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return httpError("release", status, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return httpError("release", status, body)
	}
	var errs []error
	for _, id := range ids {
		if m[id+"_released"] == true {
			continue
		}
		code, _ := m[id+"_errorCode"].(string)
		if code == "noConsumptionFoundById" {
			continue
		}
		msg, _ := m[id+"_errorMessage"].(string)
		errs = append(errs, &LicenseError{Code: code, Message: fmt.Sprintf("release of %s: %s", id, msg)})
	}
	return errors.Join(errs...)
}

// tokenID reads the jti of a token without verifying it (to name a kept lease).
func tokenID(tok string) (string, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", errors.New("leasehold: not a compact JWS")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var c struct {
		JTI string `json:"jti"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", err
	}
	return c.JTI, nil
}

// Release gives back the lease this Client holds on item, or the one an earlier run kept
// for it in StateDir (a checkout lease, or an online lease left by a crash). It is an
// error when there is neither.
func (c *Client) Release(ctx context.Context, item string) error {
	c.mu.Lock()
	l := c.leases[item]
	k, kept := c.kept[item]
	c.mu.Unlock()
	if l != nil {
		return l.Release(ctx)
	}
	if !kept {
		return fmt.Errorf("leasehold: no lease held or kept for %q", item)
	}
	if c.offline {
		return ErrOffline
	}
	id, err := tokenID(k.Token)
	if err != nil {
		return err
	}
	if err := c.releaseIDs(ctx, []string{id}); err != nil {
		return err
	}
	c.mu.Lock()
	delete(c.kept, item)
	c.mu.Unlock()
	c.save()
	return nil
}
