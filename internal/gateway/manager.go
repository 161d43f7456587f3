package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/extauth"
	"github.com/leasehold/leasehold/internal/session"
	"github.com/leasehold/leasehold/internal/tlsreload"
)

// PollEvery is how often the manager compares the running listeners with the catalog. With
// the catalog's own MaxStaleness it bounds how long a gateway change takes to show (SPEC
// section 8: within 1 s), in this process or any other on the store.
const PollEvery = 250 * time.Millisecond

// Deps are the services a gateway admits requests with.
type Deps struct {
	Catalog  *catalog.Cache
	Sessions *session.Manager
	// ExtAuth verifies trusted-issuer JWTs (nil: none accepted).
	ExtAuth *extauth.Verifier
	// ClientAddr is the caller's address as the server reads it (trusted_proxies).
	ClientAddr func(*http.Request) netip.Addr
	// Leases remembers the item leases sessions hold; it must also observe the engine
	// (engine.Options.Observers), which tells it when they end.
	Leases *Leases
	// Registry receives the gateways' metrics (nil: none).
	Registry *prometheus.Registry
	Log      *slog.Logger
}

// Manager runs one listener per gateway of every tenant and follows the catalog: gateways
// added, changed or removed start, change or stop their listeners without a restart.
type Manager struct {
	deps Deps
	met  *metrics

	mu      sync.Mutex
	running map[string]*listener // by tenant/name
	failed  map[string]string    // gateways whose listener could not be bound: why
}

type listener struct {
	listen string
	tls    domain.TLS
	spec   []byte // the gateway as last applied, to tell a change
	h      *handler
	ln     net.Listener
	srv    *http.Server
	done   chan struct{}
}

func NewManager(d Deps) *Manager {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Leases == nil {
		d.Leases = NewLeases()
	}
	if d.ClientAddr == nil {
		d.ClientAddr = peerAddr
	}
	return &Manager{deps: d, met: newMetrics(d.Registry), running: map[string]*listener{}, failed: map[string]string{}}
}

// Run follows the catalog until ctx ends, then stops every listener (in-flight requests
// get a few seconds to finish).
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(PollEvery)
	defer t.Stop()
	for {
		m.sync(ctx)
		select {
		case <-ctx.Done():
			m.stopAll()
			return
		case <-t.C:
		}
	}
}

// Ready names the gateways this process could not bind (nil: all serve).
func (m *Manager) Ready() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.failed) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m.failed))
	for k := range m.failed {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	msgs := make([]string, len(keys))
	for i, k := range keys {
		msgs[i] = "gateway " + k + ": " + m.failed[k]
	}
	return errors.New(strings.Join(msgs, "; "))
}

type wanted struct {
	tenant string
	spec   domain.Gateway
	raw    []byte
	snap   *catalog.Snapshot
}

// sync makes the running listeners match the catalog. A catalog that cannot be read
// changes nothing: running gateways keep serving through a store hiccup.
func (m *Manager) sync(ctx context.Context) {
	tenants, err := m.deps.Catalog.Tenants(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.deps.Log.Warn("gateways: reading tenants failed", "err", err)
		}
		return
	}
	want := map[string]wanted{}
	for _, t := range tenants {
		snap, err := m.deps.Catalog.Get(ctx, t.Name)
		if errors.Is(err, domain.ErrNotFound) {
			continue
		} else if err != nil {
			if ctx.Err() == nil {
				m.deps.Log.Warn("gateways: reading tenant failed", "tenant", t.Name, "err", err)
			}
			return
		}
		for name, g := range snap.Gateways {
			raw, _ := json.Marshal(g)
			want[t.Name+"/"+name] = wanted{tenant: t.Name, spec: *g, raw: raw, snap: snap}
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	// Stops first, so that a gateway moving to an address another one just left can bind it.
	for key, l := range m.running {
		// A listener serves TLS or not from its start: a change of either is a new one.
		if w, ok := want[key]; !ok || w.spec.Listen != l.listen || w.spec.TLS != l.tls {
			m.stop(key, l)
		}
	}
	for key := range m.failed {
		if _, ok := want[key]; !ok {
			delete(m.failed, key)
		}
	}
	for key, w := range want {
		l := m.running[key]
		if l != nil && string(l.spec) == string(w.raw) && l.h.cur.Load().docuware == slices.Contains(w.snap.Tenant.Dialects, "docuware") {
			continue // unchanged: nothing is rebuilt at a poll
		}
		g, err := newGateway(w.tenant, w.snap, &w.spec, m.deps.Log)
		if err != nil {
			m.fail(key, err.Error())
			continue
		}
		if l != nil {
			// In-flight requests finish with the configuration they started with; the
			// connections they give back are closed by the old transport's idle sweep.
			l.h.cur.Swap(g).closeIdle()
			l.spec = w.raw
			m.deps.Log.Info("gateway changed", "gateway", key)
			continue
		}
		m.start(key, w, g)
	}
}

func (m *Manager) start(key string, w wanted, g *gateway) {
	var certs *tlsreload.Reloader
	if w.spec.TLS.CertFile != "" {
		var err error
		// A pair that does not load is retried at every sync, like an address in use.
		if certs, err = tlsreload.New(w.spec.TLS.CertFile, w.spec.TLS.KeyFile); err != nil {
			// The files' paths stay in the log.
			m.failWith(key, "tls: its certificate and key do not load (the server log says why)", err)
			return
		}
	}
	ln, err := net.Listen("tcp", w.spec.Listen)
	if err != nil {
		m.fail(key, err.Error())
		return
	}
	delete(m.failed, key)
	h := &handler{deps: m.deps, met: m.met}
	h.cur.Store(g)
	l := &listener{listen: w.spec.Listen, tls: w.spec.TLS, spec: w.raw, h: h, ln: ln, done: make(chan struct{}),
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			// No ReadTimeout: bodies of any size stream through.
			IdleTimeout:    120 * time.Second,
			MaxHeaderBytes: 32 << 10,
			ErrorLog:       slog.NewLogLogger(m.deps.Log.Handler(), slog.LevelWarn),
		}}
	serve := l.srv.Serve
	if certs != nil {
		// Set before Serve starts: ServeTLS adds h2 to it, and HTTP/2 is then served too.
		l.srv.TLSConfig = certs.Config()
		serve = func(ln net.Listener) error { return l.srv.ServeTLS(ln, "", "") }
	}
	m.running[key] = l
	go func() {
		defer close(l.done)
		if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			m.deps.Log.Error("gateway listener stopped", "gateway", key, "err", err)
		}
	}()
	m.deps.Log.Info("gateway listening", "gateway", key, "listen", w.spec.Listen, "upstream", w.spec.Upstream, "tls", certs != nil)
}

// fail records (and logs once per reason) a gateway this process cannot serve; /readyz
// names it until it serves. The next sync tries again, so a freed port is taken up.
func (m *Manager) fail(key, why string) {
	m.failWith(key, why, errors.New(why))
}

// failWith is fail with more in the log than /readyz, which anyone may read, says.
func (m *Manager) failWith(key, why string, err error) {
	if m.failed[key] != why {
		m.deps.Log.Error("gateway cannot listen", "gateway", key, "err", err)
	}
	m.failed[key] = why
}

func (m *Manager) stop(key string, l *listener) {
	delete(m.running, key)
	// The address is freed at once (another gateway may take it in this very sync);
	// in-flight requests finish on their own connections.
	_ = l.ln.Close()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := l.srv.Shutdown(ctx); err != nil {
			l.srv.Close()
		}
		l.h.cur.Load().closeIdle()
	}()
	m.deps.Log.Info("gateway stopped", "gateway", key)
}

func (m *Manager) stopAll() {
	m.mu.Lock()
	list := make([]*listener, 0, len(m.running))
	for key, l := range m.running {
		list = append(list, l)
		delete(m.running, key)
	}
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, l := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.srv.Shutdown(ctx); err != nil {
				l.srv.Close()
			}
			<-l.done
			l.h.cur.Load().closeIdle()
		}()
	}
	wg.Wait()
}

func peerAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
