// Package ui is the dashboard (SPEC §10): server-rendered pages under /ui/ that show who
// holds a tenant's seats and let an operator end a lease or a session. It works without
// JavaScript; assets/app.js only refreshes the tables from each page's JSON twin.
//
// The dashboard drives the same services as the admin API (engine, session manager,
// store) and holds no licensing rule of its own.
package ui

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/leasehold/leasehold/internal/admintoken"
	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/session"
	"github.com/leasehold/leasehold/internal/store"
)

// CSP is the Content-Security-Policy of every /ui/ response (SPEC §10): scripts, styles
// and images from the dashboard's own embedded assets only, no inline code, no framing.
const CSP = "default-src 'self'; frame-ancestors 'none'"

// StylesheetPath is where the shared stylesheet is served, for other pages (the OAuth2
// login page) that share the dashboard's look.
const StylesheetPath = "/ui/assets/style.css"

//go:embed assets templates
var files embed.FS

// Stylesheet is the dashboard's stylesheet, which the OAuth2 and gateway sign-in pages
// share so that every page a user meets has one look.
func Stylesheet() []byte {
	b, err := files.ReadFile("assets/style.css")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return b
}

// Options are the dashboard's settings from the configuration file.
type Options struct {
	// Admin checks the admin token (the admin API's own guard: one allowance of wrong
	// guesses per address for both); unconfigured, the dashboard is off.
	Admin     *admintoken.Guard
	PublicURL string // an https:// public URL marks the cookie Secure behind a TLS proxy
	Logger    *slog.Logger
}

// Deps are the services the dashboard reads and drives.
type Deps struct {
	Store    store.Store
	Catalog  *catalog.Cache
	Engine   *engine.Engine
	Sessions *session.Manager
}

// Dashboard serves /ui/. Mount it on the main listener at "/ui/".
type Dashboard struct {
	opts   Options
	deps   Deps
	log    *slog.Logger
	mux    *http.ServeMux
	pages  map[string]*template.Template
	assets http.Handler
	cop    *http.CrossOriginProtection
}

// New builds the dashboard.
func New(opts Options, deps Deps) *Dashboard {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	sub, err := fs.Sub(files, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	d := &Dashboard{
		opts:   opts,
		deps:   deps,
		log:    opts.Logger,
		mux:    http.NewServeMux(),
		pages:  parsePages(),
		assets: http.StripPrefix("/ui/assets/", http.FileServerFS(sub)),
		cop:    http.NewCrossOriginProtection(),
	}
	if u, err := url.Parse(opts.PublicURL); err == nil && u.Scheme != "" && u.Host != "" {
		// Behind a proxy that rewrites Host, the public origin is still this server's.
		_ = d.cop.AddTrustedOrigin(u.Scheme + "://" + u.Host)
	}
	d.routes()
	return d
}

func (d *Dashboard) routes() {
	m := d.mux
	m.HandleFunc("GET /ui/assets/{file}", d.serveAsset)
	m.HandleFunc("GET /ui/login", d.loginPage)
	m.HandleFunc("POST /ui/login", d.login)
	m.Handle("POST /ui/logout", d.form(d.logout))
	m.Handle("GET /ui/{$}", d.page(d.overview))
	m.Handle("GET /ui/t/{tenant}/licenses/{id}", d.page(d.licensePage))
	m.Handle("POST /ui/t/{tenant}/leases/{id}/end", d.form(d.endLease))
	m.Handle("GET /ui/t/{tenant}/sessions", d.page(d.sessionsPage))
	m.Handle("POST /ui/t/{tenant}/sessions/{id}/end", d.form(d.endSession))
	m.Handle("GET /ui/t/{tenant}/usage", d.page(d.usagePage))
	m.Handle("GET /ui/t/{tenant}/usage.csv", d.page(d.usageCSV))
	m.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		d.errorPage(w, r, http.StatusNotFound, "No such page.")
	})
}

// ServeHTTP answers every /ui/ request with the dashboard's security headers; without an
// admin token configured there is no way to sign in, so everything but the shared assets
// answers 403.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	if !strings.HasPrefix(r.URL.Path, "/ui/assets/") {
		h.Set("Cache-Control", "no-store")
		if !d.opts.Admin.Configured() {
			d.errorPage(w, r, http.StatusForbidden,
				"The dashboard is off: set admin_token (or admin_token_hash) in the configuration to sign in.")
			return
		}
	}
	d.mux.ServeHTTP(w, r)
}

func (d *Dashboard) serveAsset(w http.ResponseWriter, r *http.Request) {
	// The assets change only with the binary; an hour keeps pages quick without pinning
	// an old stylesheet for long after an upgrade.
	w.Header().Set("Cache-Control", "public, max-age=3600")
	d.assets.ServeHTTP(w, r)
}

// Run does the dashboard's housekeeping until ctx ends: expired sign-ins are deleted.
func (d *Dashboard) Run(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		err := d.deps.Store.Update(ctx, func(tx store.Tx) error {
			_, err := tx.DeleteExpiredUISessions(ctx, tx.Now())
			return err
		})
		if err != nil && ctx.Err() == nil {
			d.log.Warn("dashboard: deleting expired sign-ins failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type clientAddrKey struct{}

// WithClientAddr records the client address the HTTP front resolved (trusted proxies
// applied), which sign-in throttling is keyed by.
func WithClientAddr(ctx context.Context, addr netip.Addr) context.Context {
	return context.WithValue(ctx, clientAddrKey{}, addr)
}

func clientAddr(r *http.Request) netip.Addr {
	if a, ok := r.Context().Value(clientAddrKey{}).(netip.Addr); ok && a.IsValid() {
		return a
	}
	ap, _ := netip.ParseAddrPort(r.RemoteAddr)
	return ap.Addr()
}

var tenantName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// tenant resolves the {tenant} path value, answering 404 itself when there is none.
func (d *Dashboard) tenant(w http.ResponseWriter, r *http.Request) (*catalog.Snapshot, bool) {
	name := r.PathValue("tenant")
	if !tenantName.MatchString(name) {
		d.errorPage(w, r, http.StatusNotFound, "No such tenant.")
		return nil, false
	}
	snap, err := d.deps.Catalog.Get(r.Context(), name)
	if errors.Is(err, domain.ErrNotFound) {
		d.errorPage(w, r, http.StatusNotFound, "No such tenant: "+name+".")
		return nil, false
	} else if err != nil {
		d.internalError(w, r, err)
		return nil, false
	}
	return snap, true
}

func (d *Dashboard) internalError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return
	}
	d.log.Error("dashboard: internal error", "path", r.URL.Path, "err", err)
	d.errorPage(w, r, http.StatusServiceUnavailable, "The server could not complete the request; try again.")
}
