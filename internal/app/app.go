// Package app assembles a Leasehold server from a configuration: store, tenants, engine,
// keys, sessions and the HTTP front. cmd/leasehold and the end-to-end tests both use it,
// so tests run exactly what `leasehold serve` runs.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/leasehold/leasehold/internal/admintoken"
	"github.com/leasehold/leasehold/internal/apply"
	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/config"
	"github.com/leasehold/leasehold/internal/documents"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/extauth"
	"github.com/leasehold/leasehold/internal/gateway"
	"github.com/leasehold/leasehold/internal/geoip"
	"github.com/leasehold/leasehold/internal/keys"
	"github.com/leasehold/leasehold/internal/server"
	"github.com/leasehold/leasehold/internal/session"
	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/store/postgres"
	"github.com/leasehold/leasehold/internal/store/sqlite"
	"github.com/leasehold/leasehold/internal/tlsreload"
	"github.com/leasehold/leasehold/internal/ui"
	"github.com/leasehold/leasehold/internal/webhook"
)

// SweepEvery is how often expired leases, seats and sessions are cleaned up and the
// process's heartbeat is written.
const SweepEvery = time.Second

// App is a running (or ready to run) server.
type App struct {
	Config   *config.Config
	Store    store.Store
	Catalog  *catalog.Cache
	Engine   *engine.Engine
	Keys     *keys.Manager
	Sessions *session.Manager
	Docs     *documents.Store
	Server   *server.Server
	Gateways *gateway.Manager
	Log      *slog.Logger
	// AdminListener, when set before Serve, serves the admin API and /metrics instead of a
	// listener Serve opens on admin_listen (tests pass one bound to port 0).
	AdminListener net.Listener
	process       string

	// UI is the dashboard; Usage records the hourly usage it draws.
	UI    *ui.Dashboard
	Usage *ui.Recorder
	// Webhooks writes and delivers webhook events (SPEC §9).
	Webhooks *webhook.Outbox
}

// OpenStore opens the store a configuration names.
func OpenStore(ctx context.Context, dsn string) (store.Store, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return postgres.Open(ctx, dsn)
	case strings.HasPrefix(dsn, "sqlite:"):
		return sqlite.Open(dsn)
	default:
		return nil, fmt.Errorf("store %q: use sqlite://PATH or postgres://…", dsn)
	}
}

// New opens the store, applies the configuration's tenants and builds every service.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (*App, error) {
	if log == nil {
		log = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	st, err := OpenStore(ctx, cfg.Store)
	if err != nil {
		return nil, err
	}
	a, err := build(ctx, cfg, st, log)
	if err != nil {
		st.Close()
		return nil, err
	}
	return a, nil
}

func build(ctx context.Context, cfg *config.Config, st store.Store, log *slog.Logger) (*App, error) {
	if _, err := apply.Apply(ctx, st, cfg.Tenants, apply.Options{}); err != nil {
		return nil, fmt.Errorf("applying tenants: %w", err)
	}
	var geo geoip.Locator
	if cfg.GeoIPDatabase != "" {
		db, err := geoip.Open(cfg.GeoIPDatabase)
		if err != nil {
			return nil, fmt.Errorf("geoip_database: %w", err)
		}
		geo = db
	}
	cat := catalog.New(st)
	met := server.NewMetrics(nil)
	usage := ui.NewRecorder(st, cat, ui.RecorderOptions{Logger: log})
	// The gateways remember which item leases sessions hold; the engine tells them which end.
	leases := gateway.NewLeases()
	// Webhooks: the engine's decisions and the sessions' starts and ends write their events
	// in their own transactions (the outbox); refusals are written after the answer.
	hooks := webhook.New(st, cat, webhook.NewMetrics(met.Registry()), log)
	webhook.RegisterQueueDepth(met.Registry(), st)
	eng := engine.New(st, cat, engine.Options{Geo: geo, Logger: log, Metrics: met,
		Observers: []engine.Observer{usage, leases, hooks}, TxObservers: []engine.TxObserver{hooks}})
	km := keys.New(st, cfg.Signing.Algorithm)
	sess := session.NewManager(hooks.SessionStore(st), cat, eng)
	docs, err := documents.Open(cfg.Documents)
	if err != nil {
		return nil, err
	}
	// A session's documents go when it ends, however it ends (after the commit).
	sess.SetEndHook(func(tenant, id string) {
		leases.SessionEnded(tenant, id) // its requests still open at a gateway are closed
		if err := docs.DeleteSession(tenant, id); err != nil {
			log.Warn("deleting session documents failed", "tenant", tenant, "err", err)
		}
	})
	// One guard of the admin token for the admin API, /metrics and the dashboard: the same
	// tokens accepted everywhere, one allowance of wrong guesses per address.
	admin := admintoken.New(cfg.AdminToken, cfg.AdminTokenHash)
	dash := ui.New(ui.Options{Admin: admin, PublicURL: cfg.PublicURL, Logger: log},
		ui.Deps{Store: st, Catalog: cat, Engine: eng, Sessions: sess})
	ext := extauth.New(extauth.Options{})
	gws := gateway.NewManager(gateway.Deps{
		Catalog: cat, Sessions: sess, ExtAuth: ext, Leases: leases, Registry: met.Registry(), Log: log,
		ClientAddr: func(r *http.Request) netip.Addr { return server.ClientAddr(r, cfg.TrustedProxies) },
	})
	srv := server.New(server.Options{
		PublicURL:      cfg.PublicURL,
		TrustedProxies: cfg.TrustedProxies,
		Admin:          admin,
		MetricsToken:   cfg.MetricsToken,
		SeparateAdmin:  cfg.AdminListen != "",
		GeoIP:          geo != nil,
		Logger:         log,
		Metrics:        met,
	}, server.Deps{Store: st, Catalog: cat, Engine: eng, Keys: km, Sessions: sess,
		Documents: docs, ExtAuth: ext, UI: dash, Ready: gws.Ready})
	host, _ := os.Hostname()
	return &App{
		Config: cfg, Store: st, Catalog: cat, Engine: eng, Keys: km, Sessions: sess, Docs: docs, Server: srv, Gateways: gws, Log: log,
		UI: dash, Usage: usage, Webhooks: hooks,
		process: fmt.Sprintf("%s-%d-%d", host, os.Getpid(), time.Now().UnixNano()),
	}, nil
}

// Serve runs background work and serves HTTP on ln until ctx ends, then shuts down
// gracefully: it stops accepting connections, answers every request waiting for a seat
// with the refusal its wait would have ended with, and lets in-flight requests finish for
// up to the configuration's shutdown_timeout (nothing acknowledged is lost either way).
// It returns nil after a complete drain, and an error when requests had to be cut off.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	if err := a.Engine.Start(ctx, a.process); err != nil {
		return fmt.Errorf("starting engine: %w", err)
	}
	bg, stopBG := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.background(bg)
	}()
	// Both listeners' servers are set up in full before either serves: a server's Serve
	// writes its own fields (HTTP/2 setup), so nothing may read them after it started.
	newServer := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       60 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    32 << 10,
			ErrorLog:          slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
		}
	}
	hs := newServer(a.Server.Handler())
	var tlsConf *tls.Config
	if a.Config.TLS.CertFile != "" {
		// HTTPS, and HTTP/2 (ServeTLS offers h2), with the certificate re-read when its
		// files change: no restart to renew it.
		certs, err := tlsreload.New(a.Config.TLS.CertFile, a.Config.TLS.KeyFile)
		if err != nil {
			stopBG()
			<-done
			return err
		}
		tlsConf = certs.Config()
	}
	// admin_listen: the admin API and /metrics on a listener of their own, which the
	// operator can keep off the public network.
	var admin *http.Server
	var aln net.Listener
	if a.Config.AdminListen != "" {
		aln = a.AdminListener
		if aln == nil {
			var err error
			if aln, err = net.Listen("tcp", a.Config.AdminListen); err != nil {
				stopBG()
				<-done
				return fmt.Errorf("admin_listen: %w", err)
			}
		}
		admin = newServer(a.Server.AdminHandler())
	}
	errc := make(chan error, 2)
	serve := func(srv *http.Server, l net.Listener) {
		if tlsConf != nil {
			// The admin token travels on the admin listener too: HTTPS on both.
			srv.TLSConfig = tlsConf.Clone()
			errc <- srv.ServeTLS(l, "", "")
			return
		}
		errc <- srv.Serve(l)
	}
	go serve(hs, ln)
	if admin != nil {
		go serve(admin, aln)
		a.Log.Info("admin API listening", "addr", aln.Addr().String())
	}
	select {
	case err := <-errc:
		_ = hs.Close()
		if admin != nil {
			_ = admin.Close()
		}
		stopBG()
		<-done
		return err
	case <-ctx.Done():
	}
	if admin != nil {
		// The admin listener answers nothing a client waits on: it closes at once.
		_ = admin.Close()
	}
	began := time.Now()
	timeout := a.Config.ShutdownTimeout
	a.Log.Info("shutdown started", "shutdown_timeout", timeout.String())
	// Queued requests would otherwise hold Shutdown for as long as their queue= asked, and
	// past the timeout their clients would be dropped with no answer at all.
	a.Engine.Drain()
	shutdown, cancel := context.Background(), context.CancelFunc(func() {})
	if timeout > 0 {
		shutdown, cancel = context.WithTimeout(shutdown, timeout)
	}
	defer cancel()
	err := hs.Shutdown(shutdown)
	if err != nil {
		// Cut off what is still running: its responses were never sent, so nothing
		// acknowledged is lost, and its clients see a closed connection.
		_ = hs.Close()
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("shutdown: requests still running after shutdown_timeout %s were cut off", timeout)
		} else {
			err = fmt.Errorf("shutdown: %w", err)
		}
		a.Log.Error("shutdown incomplete", "err", err, "duration_ms", time.Since(began).Milliseconds())
	}
	stopBG()
	<-done
	if err == nil {
		a.Log.Info("shutdown complete", "duration_ms", time.Since(began).Milliseconds())
	}
	return err
}

func (a *App) background(ctx context.Context) {
	go a.Engine.Run(ctx, a.process, SweepEvery)
	go a.UI.Run(ctx)
	go a.Usage.Run(ctx)
	// Webhook attempts in flight at shutdown are cut off: their rows are claimed again
	// (here after a restart, or by another process) once their claim ends.
	hooksDone := make(chan struct{})
	go func() {
		defer close(hooksDone)
		a.Webhooks.Run(ctx)
	}()
	defer func() { <-hooksDone }()
	gwDone := make(chan struct{})
	go func() {
		defer close(gwDone)
		a.Gateways.Run(ctx)
	}()
	// The gateways stop with the rest of the background work, their in-flight requests
	// given the same grace as the main listener's.
	defer func() { <-gwDone }()
	t := time.NewTicker(SweepEvery)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := a.Sessions.Sweep(domain.WithEndReason(ctx, domain.EndExpired), 500); err != nil && ctx.Err() == nil {
				a.Log.Warn("session sweep failed", "err", err)
			}
			if n%60 == 0 {
				if err := a.Sessions.CollectDocuments(ctx, a.Docs); err != nil && ctx.Err() == nil {
					a.Log.Warn("document collection failed", "err", err)
				}
			}
		}
	}
}

// Close releases the store.
func (a *App) Close() error { return a.Store.Close() }
