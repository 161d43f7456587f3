// Command leasehold is the Leasehold license and session server.
//
//	leasehold serve --config FILE
//	leasehold admin [--url URL] [--token TOKEN] COMMAND …
//	leasehold backup [--config FILE] DEST
//	leasehold version
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
	"github.com/leasehold/leasehold/internal/store/sqlite"
)

// version is set at build time (-ldflags "-X main.version=…").
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  leasehold serve --config FILE      start the server
  leasehold admin COMMAND …          drive the admin API (leasehold admin help)
  leasehold backup --config FILE DEST  consistent copy of a live SQLite store
  leasehold bench [flags]            load generator for a running server (leasehold bench -h)
  leasehold demo-upstream            a JSON echo API on 127.0.0.1:7000, for the gateway demo
  leasehold version
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "admin":
		return admin(args[1:], stdout, stderr)
	case "backup":
		return backup(args[1:], stdout, stderr)
	case "bench":
		return bench(args[1:], stdout, stderr)
	case "demo-upstream":
		return demoUpstream(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "leasehold", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "leasehold: unknown command %q\n%s", args[0], usage)
		return 2
	}
}

func serve(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML or JSON)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cfgPath == "" {
		fmt.Fprintln(stderr, "leasehold: serve needs --config FILE")
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "leasehold:", err)
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
	log := slog.New(slog.NewJSONHandler(lw, nil))
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "leasehold:", err)
		return 1
	}
	defer a.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		fmt.Fprintln(stderr, "leasehold: listen:", err)
		return 1
	}
	fmt.Fprintf(stdout, "Leasehold %s listening on %s (public URL %s, store %s)\n", version, ln.Addr(), cfg.PublicURL, redactDSN(cfg.Store))
	for _, t := range cfg.Tenants {
		fmt.Fprintf(stdout, "  tenant %s: %d users, %d clients, %d licenses\n", t.Name(), len(t.Users), len(t.Clients), len(t.Licenses))
	}
	if err := a.Serve(ctx, ln); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "leasehold:", err)
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

func backup(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file naming the SQLite store")
	storeDSN := fs.String("store", "", "the store (sqlite://PATH) instead of --config")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "leasehold: backup needs one destination file")
		return 2
	}
	dsn := *storeDSN
	if dsn == "" {
		if *cfgPath == "" {
			fmt.Fprintln(stderr, "leasehold: backup needs --config FILE or --store sqlite://PATH")
			return 2
		}
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			fmt.Fprintln(stderr, "leasehold:", err)
			return 2
		}
		dsn = cfg.Store
	}
	st, err := sqlite.Open(dsn)
	if err != nil {
		fmt.Fprintln(stderr, "leasehold: backup works on SQLite stores only (PostgreSQL has pg_dump):", err)
		return 1
	}
	defer st.Close()
	if err := st.Backup(context.Background(), fs.Arg(0)); err != nil {
		fmt.Fprintln(stderr, "leasehold: backup:", err)
		return 1
	}
	fmt.Fprintln(stdout, "backup written to", fs.Arg(0))
	return 0
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
