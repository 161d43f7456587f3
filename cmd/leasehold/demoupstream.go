package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
)

// demoUpstream runs the tiny API the README's gateway example puts Leasehold in front of:
// it answers every request with what it received (method, path, query, the identity the
// gateway vouches for, and which headers arrived), so a reader can see what the gateway
// forwards and what it strips.
func demoUpstream(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo-upstream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:7000", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	srv := &http.Server{Addr: *listen, Handler: http.HandlerFunc(echo), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	fmt.Fprintf(stdout, "demo upstream: a JSON echo API on http://%s\n", *listen)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(stderr, "leasehold demo-upstream:", err)
		return 1
	}
	return 0
}

func echo(w http.ResponseWriter, r *http.Request) {
	n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	identity := map[string]string{}
	var names []string
	for name := range r.Header {
		names = append(names, name)
		if strings.HasPrefix(name, "X-Leasehold-") || strings.HasPrefix(name, "X-Forwarded-") {
			identity[name] = r.Header.Get(name)
		}
	}
	sort.Strings(names)
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(map[string]any{
		"method":           r.Method,
		"path":             r.URL.Path,
		"query":            r.URL.RawQuery,
		"body_bytes":       n,
		"identity":         identity,
		"headers_received": names,
		"authorization":    r.Header.Get("Authorization") != "",
	})
}
