// Package bench is Leasehold's load generator: it drives a running server over HTTP with a
// fixed number of keep-alive connections, for a fixed time or number of operations, and
// reports throughput, latency percentiles and errors by kind.
//
// Every load it makes is bounded (MaxDuration, MaxSetup, MaxAnchors) and goes to loopback
// addresses only: the tool refuses any other target, and its dialer checks the address it
// actually connects to. It measures a bare net/http handler (the baseline, a separate
// process started the same way) with the same client, so that each figure can be read as a
// ratio to what this machine can do at all.
package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Bounds of any run, whatever the flags say.
const (
	MaxDuration = 10 * time.Minute // measured phase
	MaxWarmup   = time.Minute
	MaxSetup    = 20 * time.Minute // seeding leases, logging in
	MaxAnchors  = 2_000_000
	MaxConns    = 4096
)

// Config is one run.
type Config struct {
	URL          string // the server, loopback only (http://127.0.0.1:8080)
	Tenant       string // "" = the server's default tenant; else requests go under /t/{tenant}/
	ClientID     string // a confidential client allowed client_credentials
	ClientSecret string
	Username     string // session-login
	Password     string
	AdminToken   string // when set, consume scenarios raise the license's seats to what they need
	// Upstream is the trivial API the gateway scenario proxies to: the run's baseline
	// server, so that its ratio compares the gateway with the same upstream hit directly.
	Upstream string

	Scenario    string
	Item        string // licensed item for the /authz scenarios
	Connections int
	Duration    time.Duration // measured phase; 0 with Requests > 0 means until Requests are done
	Requests    int64         // operations to measure (0: no limit but Duration)
	Warmup      time.Duration // load before measuring (not recorded): connections, caches
	Anchors     int           // leases held by the renew scenarios (default: one per connection)
	Timeout     time.Duration // per request

	// Log receives progress lines (setup, skips); nil discards them.
	Log io.Writer
}

func (c *Config) defaults() error {
	if c.Connections <= 0 {
		c.Connections = 64
	}
	if c.Connections > MaxConns {
		return fmt.Errorf("--connections %d: at most %d", c.Connections, MaxConns)
	}
	if c.Duration <= 0 && c.Requests <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Duration <= 0 || c.Duration > MaxDuration {
		c.Duration = MaxDuration
	}
	if c.Warmup < 0 || c.Warmup > MaxWarmup {
		return fmt.Errorf("--warmup %s: must be in 0..%s", c.Warmup, MaxWarmup)
	}
	if c.Anchors <= 0 {
		c.Anchors = c.Connections
	}
	if c.Anchors > MaxAnchors {
		return fmt.Errorf("--anchors %d: at most %d", c.Anchors, MaxAnchors)
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Item == "" {
		c.Item = "AppFeature-XYZ"
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return nil
}

// Result is what one scenario measured.
type Result struct {
	Scenario    string `json:"scenario"`
	Target      string `json:"target"` // the base URL driven
	Connections int    `json:"connections"`
	// Skipped says why the scenario did not run (its route is missing); nothing else is set.
	Skipped string   `json:"skipped,omitempty"`
	Notes   []string `json:"notes,omitempty"`

	Seconds  float64 `json:"seconds"`  // measured wall time
	Ops      int64   `json:"ops"`      // operations completed (a consume-release cycle is one)
	Requests int64   `json:"requests"` // HTTP requests completed (measured)
	OK       int64   `json:"ok"`       // requests that got the expected answer
	// Errors counts failed requests by kind: "http 503", "license licenseQuotaExceeded",
	// "transport timeout", "bad response …".
	Errors map[string]int64 `json:"errors,omitempty"`

	RequestsPerSec float64 `json:"requests_per_sec"` // all completed requests
	OKPerSec       float64 `json:"ok_per_sec"`
	Latency        Latency `json:"latency_ms"`
}

// ErrorCount is the number of failed requests.
func (r *Result) ErrorCount() int64 {
	var n int64
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// Latency is per HTTP request, in milliseconds.
type Latency struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

func latencyOf(h *Histogram) Latency {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return Latency{
		Mean: ms(h.Mean()), P50: ms(h.Quantile(0.50)), P90: ms(h.Quantile(0.90)),
		P99: ms(h.Quantile(0.99)), Max: ms(h.Max()),
	}
}

// SkipError is returned by a scenario whose route the server does not have (yet).
type SkipError struct{ Reason string }

func (e *SkipError) Error() string { return "skipped: " + e.Reason }

// CheckLoopback refuses any URL whose host is not a loopback address (or "localhost").
// Names are not resolved: a name that might point elsewhere is refused outright.
func CheckLoopback(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("--url %q: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("--url %q: want http://127.0.0.1:PORT", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return u, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("--url %q: the load generator drives loopback addresses only (127.0.0.0/8, [::1], localhost)", raw)
	}
	return u, nil
}

// newClient is the one HTTP client of a run: keep-alive, one idle connection kept per
// worker so that no request pays for a dial after warm-up, no proxy, no compression.
func newClient(conns int, timeout time.Duration) *http.Client {
	d := &net.Dialer{
		Timeout:   5 * time.Second,
		KeepAlive: 30 * time.Second,
		// Whatever a name resolved to, only loopback is ever dialled.
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !ap.Addr().Unmap().IsLoopback() {
				return fmt.Errorf("bench: refusing to dial %s: loopback only", address)
			}
			return nil
		},
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		MaxIdleConns:          conns * 2,
		MaxIdleConnsPerHost:   conns,
		MaxConnsPerHost:       conns,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		ResponseHeaderTimeout: timeout,
		WriteBufferSize:       8 << 10,
		ReadBufferSize:        8 << 10,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		// Logins answer with cookies, never redirects that should be followed under load.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Conn is one simulated client connection: it owns its histogram and error counts, so
// recording needs no lock.
type Conn struct {
	ID     int
	r      *runner
	hist   *Histogram
	errs   map[string]int64
	ok     int64
	reqs   int64
	ops    int64
	buf    bytes.Buffer
	record bool // whether the current operation is measured
	seq    int64
}

// Response is one exchange's outcome.
type Response struct {
	Status int
	Header http.Header
	Body   []byte // valid until the connection's next request
	Err    error
}

// Do sends req and reads the whole answer; judge returns "" when the answer is what the
// scenario expects, else the error kind to count. Do records the latency and the outcome
// (when the operation is measured) and returns the response and whether it was OK.
func (c *Conn) Do(req *http.Request, judge func(*Response) string) (*Response, bool) {
	start := time.Now()
	resp, err := c.r.client.Do(req)
	out := &Response{}
	if err == nil {
		c.buf.Reset()
		_, err = c.buf.ReadFrom(resp.Body)
		resp.Body.Close()
		out.Status, out.Header, out.Body = resp.StatusCode, resp.Header, c.buf.Bytes()
	}
	lat := time.Since(start)
	out.Err = err
	kind := ""
	if err != nil {
		kind = transportKind(err)
	} else if judge != nil {
		kind = judge(out)
	}
	if c.record {
		c.hist.Record(lat)
		c.reqs++
		if kind == "" {
			c.ok++
		} else {
			c.errs[kind]++
		}
	}
	return out, kind == ""
}

// Next returns a number unique within the connection (for distinct anchors).
func (c *Conn) Next() int64 {
	c.seq++
	return c.seq
}

func transportKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "transport timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "transport connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "transport connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "transport EOF"
	case errors.Is(err, context.Canceled):
		return "transport canceled"
	}
	return "transport error"
}

// Classify is the usual judge: status must be want, and a 200 body must not carry a 10Duke
// `<item>_errorCode` (a license refusal is HTTP 200). A JWT body's payloads are read too.
func Classify(resp *Response, want int) string {
	if resp.Status != want {
		kind := fmt.Sprintf("http %d", resp.Status)
		if e := jsonString(resp.Body, "error"); e != "" && len(e) <= 40 {
			kind += " " + e
		}
		return kind
	}
	if code := licenseError(resp.Body); code != "" {
		return "license " + code
	}
	return ""
}

// licenseError finds the first `<name>_errorCode` in a JSON body or in the payload of a
// JWT body (several JWTs are joined by '&').
func licenseError(body []byte) string {
	if bytes.HasPrefix(body, []byte("ey")) {
		for tok := range bytes.SplitSeq(body, []byte("&")) {
			if p := jwtPayload(tok); p != nil {
				if code := errorCodeIn(p); code != "" {
					return code
				}
			}
		}
		return ""
	}
	return errorCodeIn(body)
}

func errorCodeIn(b []byte) string {
	const key = `_errorCode":"`
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return ""
	}
	rest := b[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || j > 64 {
		return "malformed"
	}
	return string(rest[:j])
}

// jsonString returns the string value of the first member named key ("" when absent). It
// is a byte search, not a parser: enough for the flat answers the server gives, and cheap
// enough not to steal the CPU the server is measured on.
func jsonString(b []byte, key string) string {
	pat := make([]byte, 0, len(key)+4)
	pat = append(pat, '"')
	pat = append(pat, key...)
	pat = append(pat, '"', ':')
	i := bytes.Index(b, pat)
	if i < 0 {
		return ""
	}
	rest := bytes.TrimLeft(b[i+len(pat):], " ")
	if len(rest) == 0 || rest[0] != '"' {
		return ""
	}
	rest = rest[1:]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// runner holds one run's shared state.
type runner struct {
	cfg    Config
	base   string // URL + optional /t/{tenant}
	root   string // URL without the tenant prefix (admin API)
	client *http.Client
	runID  string

	budget atomic.Int64 // measured operations still allowed (when cfg.Requests > 0)
}

func newRunner(cfg Config) (*runner, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	u, err := CheckLoopback(cfg.URL)
	if err != nil {
		return nil, err
	}
	root := strings.TrimRight(u.String(), "/")
	base := root
	if cfg.Tenant != "" {
		base += "/t/" + url.PathEscape(cfg.Tenant)
	}
	var id [4]byte
	_, _ = rand.Read(id[:])
	return &runner{
		cfg: cfg, base: base, root: root, runID: hex.EncodeToString(id[:]),
		client: newClient(cfg.Connections, cfg.Timeout),
	}, nil
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Log, "bench: "+format+"\n", args...)
}

// Run runs one scenario against cfg.URL.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	sc, ok := scenarios[cfg.Scenario]
	if !ok {
		return nil, fmt.Errorf("unknown scenario %q (known: %s)", cfg.Scenario, strings.Join(ScenarioNames(), ", "))
	}
	r, err := newRunner(cfg)
	if err != nil {
		return nil, err
	}
	defer r.client.CloseIdleConnections()
	res := &Result{Scenario: cfg.Scenario, Target: r.base, Connections: r.cfg.Connections}

	setupCtx, cancel := context.WithTimeout(ctx, MaxSetup)
	newWorker, notes, err := sc.setup(setupCtx, r)
	cancel()
	res.Notes = notes
	var skip *SkipError
	if errors.As(err, &skip) {
		res.Skipped = skip.Reason
		r.logf("%s: skipped: %s", cfg.Scenario, skip.Reason)
		return res, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: setup: %w", cfg.Scenario, err)
	}
	r.measure(ctx, newWorker, res)
	return res, nil
}

// worker runs one operation on its connection (one or more requests through c.Do).
type worker func(ctx context.Context, c *Conn)

func (r *runner) measure(ctx context.Context, newWorker func(conn int) worker, res *Result) {
	cfg := r.cfg
	if cfg.Requests > 0 {
		r.budget.Store(cfg.Requests)
	}
	start := time.Now()
	measureFrom := start.Add(cfg.Warmup)
	stopAt := measureFrom.Add(cfg.Duration)
	ctx, cancel := context.WithDeadline(ctx, stopAt.Add(cfg.Timeout))
	defer cancel()

	conns := make([]*Conn, cfg.Connections)
	var last atomic.Int64 // unix nanos of the last measured completion
	var wg sync.WaitGroup
	for i := range conns {
		c := &Conn{ID: i, r: r, hist: NewHistogram(), errs: map[string]int64{}}
		conns[i] = c
		w := newWorker(i)
		wg.Go(func() {
			for ctx.Err() == nil {
				now := time.Now()
				if !now.Before(stopAt) {
					return
				}
				c.record = !now.Before(measureFrom)
				if c.record && cfg.Requests > 0 && r.budget.Add(-1) < 0 {
					return
				}
				w(ctx, c)
				if c.record {
					c.ops++
					end := time.Now().UnixNano()
					for {
						prev := last.Load()
						if end <= prev || last.CompareAndSwap(prev, end) {
							break
						}
					}
				}
			}
		})
	}
	wg.Wait()

	h := NewHistogram()
	res.Errors = map[string]int64{}
	for _, c := range conns {
		h.Merge(c.hist)
		res.OK += c.ok
		res.Requests += c.reqs
		res.Ops += c.ops
		for k, v := range c.errs {
			res.Errors[k] += v
		}
	}
	end := time.Unix(0, last.Load())
	if last.Load() == 0 || end.Before(measureFrom) {
		end = measureFrom
	}
	res.Seconds = end.Sub(measureFrom).Seconds()
	if res.Seconds > 0 {
		res.RequestsPerSec = float64(res.Requests) / res.Seconds
		res.OKPerSec = float64(res.OK) / res.Seconds
	}
	res.Latency = latencyOf(h)
	if len(res.Errors) == 0 {
		res.Errors = nil
	}
}

// runAll runs fn(i) for i in [0, n) on up to conns goroutines and returns the first error.
// Setup work (seeding leases, logging in) uses it so that it is as parallel as the load.
func runAll(parent context.Context, n, conns int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range min(n, conns) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return parent.Err()
}
