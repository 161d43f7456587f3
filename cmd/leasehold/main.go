// Command leasehold is the Leasehold license and session server, and the command line of
// its admin API. `leasehold --help` lists the commands; cli.go builds them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/leasehold/leasehold/internal/app"
	"github.com/leasehold/leasehold/internal/config"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// serve parses `--config FILE [--store URL]` itself, for `leasehold bench serve`.
func serve(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML or JSON)")
	allowShort := fs.Bool(allowShortTokenFlag, false, allowShortTokenUsage)
	store := fs.String("store", "", "store URL instead of the file's (e.g. postgres://…)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	return serveConfig(*cfgPath, *allowShort, *store, stdout, stderr)
}

// The admin token guards every tenant: serve refuses one shorter than
// config.MinAdminTokenLen, which guessing could reach, unless told it runs a demo or a test.
const (
	allowShortTokenFlag  = "allow-short-admin-token"
	allowShortTokenUsage = "accept an admin_token shorter than 24 characters (demos and tests only)"
)

// serveConfig runs the server until SIGINT or SIGTERM. A non-empty store replaces the
// file's store (leasehold bench serve --store).
func serveConfig(cfgPath string, allowShortToken bool, store string, stdout, stderr io.Writer) int {
	if cfgPath == "" {
		fmt.Fprintf(stderr, "leasehold: serve needs --config FILE (or %s)\n", configEnv)
		return 2
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "leasehold:", err)
		return 2
	}
	if store != "" {
		cfg.Store = store
	}
	if cfg.AdminTokenTooShort() && !allowShortToken {
		fmt.Fprintf(stderr, "leasehold: admin_token: shorter than %d characters, which guessing could reach; use a long random one (openssl rand -hex 24), or admin_token_hash, or --%s for a demo\n",
			config.MinAdminTokenLen, allowShortTokenFlag)
		return 2
	}
	if percent, ok := serverGCPercent(os.Getenv); ok {
		debug.SetGCPercent(percent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The request log is buffered (a write(2) per request would cost more than many
	// requests); serve's own messages go through the same buffer, so they stay in order,
	// and it is flushed when serve returns.
	lw := app.NewLogWriter(stderr, app.LogFlushEvery)
	defer lw.Close()
	stderr = lw
	// One format on one stream: the request log, the startup lines and a fatal error.
	var handler slog.Handler = slog.NewJSONHandler(lw, nil)
	if cfg.LogFormat == "text" {
		handler = slog.NewTextHandler(lw, nil)
	}
	log := slog.New(handler)
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	defer a.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		log.Error("cannot listen", "addr", cfg.Listen, "err", err)
		return 1
	}
	log.Info("listening", "version", currentVersion().Version, "addr", ln.Addr().String(), "public_url", cfg.PublicURL, "store", redactDSN(cfg.Store))
	for _, t := range cfg.Tenants {
		log.Info("tenant", "tenant", t.Name(), "users", len(t.Users), "clients", len(t.Clients), "licenses", len(t.Licenses))
	}
	if err := a.Serve(ctx, ln); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("stopped", "err", err)
		return 1
	}
	return 0
}

// serverGCGoal is the server's GOGC unless the environment sets one. The live Go heap of a
// server is small (leases, tokens and sessions live in the store), while each request
// allocates: at Go's default of 100 the collector ran many times a second and the runtime
// kept handing memory back to the kernel and faulting it in again. 400 cost 0.72x the
// server CPU per renewal, 0.8x per new seat and 0.95x per token (A/B, BENCHMARKS.md) for
// about 20-60 MB more RSS.
const serverGCGoal = 400

// serverGCPercent says what GOGC serve sets: serverGCGoal, unless GOGC is in the
// environment (the operator's choice, which the runtime has applied already).
func serverGCPercent(getenv func(string) string) (int, bool) {
	if getenv("GOGC") != "" {
		return 0, false
	}
	return serverGCGoal, true
}

// redactDSN hides a password in a store URL: the start-up line must not print a secret.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable store URL)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
