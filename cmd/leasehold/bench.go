package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	loadgen "github.com/leasehold/leasehold/internal/bench"
)

const benchUsage = `usage:
  leasehold bench [flags]               load a running server with one scenario
  leasehold bench --compare [flags]     baseline, each scenario, baseline again; ratios to the baseline
  leasehold bench all [flags]           the same as --compare with every scenario
  leasehold bench list                  the scenarios
  leasehold bench serve --pprof ADDR --config FILE [--store URL]
                                        leasehold serve, plus /debug/pprof/ on ADDR (loopback only);
                                        --store replaces the file's store (postgres://…: the
                                        same scenarios on PostgreSQL, BENCHMARKS.md)

Loads go to loopback addresses only, are bounded in time (--duration at most 10m) and stop by
themselves. Flags:
`

// bench is `leasehold bench …`: the load generator (package bench) and its helpers.
func bench(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "baseline-server": // started by the load generator itself: not in the usage
			return benchBaselineServer(args[1:], stdout, stderr)
		case "serve":
			return benchServe(args[1:], stdout, stderr)
		case "list":
			for _, n := range loadgen.ScenarioNames() {
				fmt.Fprintf(stdout, "%-16s %s\n", n, loadgen.ScenarioAbout(n))
			}
			return 0
		case "all":
			args = append([]string{"--compare"}, args[1:]...)
		}
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
	}
	var cfg loadgen.Config
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "the server (loopback only)")
	fs.StringVar(&cfg.Tenant, "tenant", "", "tenant (requests go under /t/TENANT/); default: the server's default tenant")
	fs.StringVar(&cfg.ClientID, "client-id", "demo-app", "client for tokens (client_credentials)")
	fs.StringVar(&cfg.ClientSecret, "client-secret", "demo-secret", "its secret")
	fs.StringVar(&cfg.Username, "user", "alice", "user for session-login")
	fs.StringVar(&cfg.Password, "password", "alice-pw", "its password")
	fs.StringVar(&cfg.AdminToken, "admin-token", "", "admin token: consume scenarios raise the license's seats to what they need (PATCH)")
	fs.StringVar(&cfg.Scenario, "scenario", "renew", "scenario (leasehold bench list)")
	fs.StringVar(&cfg.Item, "item", "AppFeature-XYZ", "licensed item of the /authz scenarios")
	fs.IntVar(&cfg.Connections, "connections", 64, "concurrent keep-alive connections")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured time per scenario (at most 10m)")
	fs.Int64Var(&cfg.Requests, "requests", 0, "stop after this many measured operations, or at --duration if that comes first (0: --duration only)")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "load before measuring, not recorded")
	fs.IntVar(&cfg.Anchors, "anchors", 0, "live leases the renew scenarios hold and renew in turn (default: one per connection)")
	fs.DurationVar(&cfg.Timeout, "timeout", 30*time.Second, "per request")
	asJSON := fs.Bool("json", false, "write JSON instead of text")
	jsonOut := fs.String("json-out", "", "also write the JSON to this file")
	compare := fs.Bool("compare", false, "run the baseline, then --scenarios, then the baseline again")
	list := fs.String("scenarios", strings.Join(loadgen.ScenarioNames(), ","), "scenarios of --compare")
	pause := fs.Duration("pause", 2*time.Second, "pause between the runs of --compare")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "leasehold bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *pause < 0 || *pause > time.Minute {
		fmt.Fprintln(stderr, "leasehold bench: --pause must be in 0..1m")
		return 2
	}
	if _, err := loadgen.CheckLoopback(cfg.URL); err != nil {
		fmt.Fprintln(stderr, "leasehold bench:", err)
		return 2
	}
	cfg.Log = stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The gateway scenario proxies to the baseline server: the upstream hit directly.
	needBaseline := *compare || cfg.Scenario == "baseline" || cfg.Scenario == "gateway"
	var baselineURL string
	if needBaseline {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintln(stderr, "leasehold bench:", err)
			return 1
		}
		u, stopBaseline, err := loadgen.StartBaseline(ctx, exe, "bench", "baseline-server", "--listen", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(stderr, "leasehold bench:", err)
			return 1
		}
		defer stopBaseline()
		baselineURL = u
		cfg.Upstream = u
	}

	if *compare {
		names := strings.Split(*list, ",")
		for _, n := range names {
			if !slices.Contains(loadgen.ScenarioNames(), n) {
				fmt.Fprintf(stderr, "leasehold bench: unknown scenario %q (leasehold bench list)\n", n)
				return 2
			}
		}
		cmp, err := loadgen.Compare(ctx, cfg, baselineURL, names, *pause)
		if err != nil {
			fmt.Fprintln(stderr, "leasehold bench:", err)
			return 1
		}
		if *jsonOut != "" && saveJSON(*jsonOut, stderr, cmp) != 0 {
			return 1
		}
		if *asJSON {
			return writeJSONOut(stdout, stderr, cmp)
		}
		loadgen.WriteComparison(stdout, cmp)
		return 0
	}

	if cfg.Scenario == "baseline" {
		cfg.URL = baselineURL
	}
	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "leasehold bench:", err)
		return 1
	}
	out := struct {
		Machine loadgen.Machine `json:"machine"`
		*loadgen.Result
	}{loadgen.ThisMachine(), res}
	if *jsonOut != "" && saveJSON(*jsonOut, stderr, out) != 0 {
		return 1
	}
	if *asJSON {
		return writeJSONOut(stdout, stderr, out)
	}
	loadgen.WriteText(stdout, res)
	return 0
}

func writeJSONOut(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintln(stderr, "leasehold bench:", err)
		return 1
	}
	return 0
}

func saveJSON(path string, stderr io.Writer, v any) int {
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(stderr, "leasehold bench:", err)
		return 1
	}
	if code := writeJSONOut(f, stderr, v); code != 0 {
		f.Close()
		return code
	}
	if err := f.Close(); err != nil {
		fmt.Fprintln(stderr, "leasehold bench:", err)
		return 1
	}
	return 0
}

// benchBaselineServer serves the bare handler the load generator compares against.
func benchBaselineServer(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench baseline-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address (loopback only)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := loopbackAddr(*listen); err != nil {
		fmt.Fprintln(stderr, "leasehold bench baseline-server:", err)
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(stderr, "leasehold bench baseline-server:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(stdout, "%shttp://%s\n", loadgen.BaselineReady, ln.Addr())
	if err := loadgen.ServeBaseline(ctx, ln); err != nil {
		fmt.Fprintln(stderr, "leasehold bench baseline-server:", err)
		return 1
	}
	return 0
}

// benchServe is `leasehold serve` with the runtime profiler on a second, loopback-only
// listener, so that a profile is taken of exactly what `serve` runs.
func benchServe(args []string, stdout, stderr io.Writer) int {
	var addr string
	rest := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--pprof" || a == "-pprof":
			if i+1 == len(args) {
				fmt.Fprintln(stderr, "leasehold bench serve: --pprof needs an address")
				return 2
			}
			addr = args[i+1]
			i++
		case strings.HasPrefix(a, "--pprof="), strings.HasPrefix(a, "-pprof="):
			_, addr, _ = strings.Cut(a, "=")
		default:
			rest = append(rest, a)
		}
	}
	if addr == "" {
		fmt.Fprintln(stderr, "leasehold bench serve: needs --pprof 127.0.0.1:PORT (else use leasehold serve)")
		return 2
	}
	if err := loopbackAddr(addr); err != nil {
		fmt.Fprintln(stderr, "leasehold bench serve:", err)
		return 2
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(stderr, "leasehold bench serve: pprof:", err)
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ps := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := ps.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(stderr, "leasehold bench serve: pprof:", err)
		}
	}()
	defer ps.Close()
	fmt.Fprintf(stdout, "pprof on http://%s/debug/pprof/\n", ln.Addr())
	return serve(rest, stdout, stderr)
}

func loopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("%s: loopback addresses only", addr)
	}
	return nil
}
