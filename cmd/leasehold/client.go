package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/leasehold/leasehold/client"
)

const clientUsage = `usage:
  leasehold client consume --item ITEM [--item ITEM …] [--hold 1m] [--checkout 24h] [--queue 30s] CONNECTION
  leasehold client check --item ITEM [--item ITEM …] CONNECTION
  leasehold client release --item ITEM --state-dir DIR CONNECTION

consume takes the leases, prints them, then holds them for --hold (renewing them and
printing each event as it happens; Ctrl-C ends the hold early) and releases them and logs
off. Checkout leases (--checkout) are not released: with --state-dir they are kept there,
usable offline, until "release".

CONNECTION:
  --url URL                 server (default $LEASEHOLD_URL, else http://127.0.0.1:8080)
  --tenant NAME             tenant (default: the server's default tenant)
  --client-id ID            client credentials ($LEASEHOLD_CLIENT_ID); the secret is
  --client-secret SECRET      read from $LEASEHOLD_CLIENT_SECRET when not given
  --user NAME               or a password login ($LEASEHOLD_USER); the password is
  --password PASSWORD         read from $LEASEHOLD_PASSWORD when not given
  --device ID               hardware id (default: a stable id of this machine)
  --version V               version sent with consumptions
  --state-dir DIR           keep the session and leases there (resume, offline use)
`

// runClient is `leasehold client …`: the Go client package from the shell.
func runClient(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, clientUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd := args[0]
	fs := flag.NewFlagSet("client "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, clientUsage) }
	var items multiFlag
	fs.Var(&items, "item", "licensed item (repeatable)")
	hold := fs.Duration("hold", 0, "hold the leases this long, printing events")
	checkout := fs.Duration("checkout", 0, "take checkout (offline) leases of this duration")
	queue := fs.Duration("queue", 0, "wait up to this long for a seat")
	url := fs.String("url", clientEnv("LEASEHOLD_URL", "http://127.0.0.1:8080"), "server URL")
	tenant := fs.String("tenant", "", "tenant")
	clientID := fs.String("client-id", os.Getenv("LEASEHOLD_CLIENT_ID"), "OAuth2 client id")
	secret := fs.String("client-secret", "", "OAuth2 client secret (default $LEASEHOLD_CLIENT_SECRET)")
	user := fs.String("user", os.Getenv("LEASEHOLD_USER"), "user name")
	password := fs.String("password", "", "password (default $LEASEHOLD_PASSWORD)")
	device := fs.String("device", "", "hardware id")
	version := fs.String("version", "", "version")
	stateDir := fs.String("state-dir", "", "state directory")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "leasehold client: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	switch cmd {
	case "consume", "check", "release":
	default:
		fmt.Fprintf(stderr, "leasehold client: unknown command %q\n%s", cmd, clientUsage)
		return 2
	}
	if len(items) == 0 {
		fmt.Fprintln(stderr, "leasehold client: --item is required")
		return 2
	}
	if cmd == "release" && *stateDir == "" {
		fmt.Fprintln(stderr, "leasehold client: release needs --state-dir (the leases kept there)")
		return 2
	}
	cfg := client.Config{BaseURL: *url, Tenant: *tenant, Device: *device, Version: *version, StateDir: *stateDir}
	switch {
	case *clientID != "":
		cfg.ClientID, cfg.ClientSecret = *clientID, *secret
		if cfg.ClientSecret == "" {
			cfg.ClientSecret = os.Getenv("LEASEHOLD_CLIENT_SECRET")
		}
	case *user != "":
		cfg.Username, cfg.Password = *user, *password
		if cfg.Password == "" {
			cfg.Password = os.Getenv("LEASEHOLD_PASSWORD")
		}
	default:
		fmt.Fprintln(stderr, "leasehold client: give --client-id (and a secret) or --user (and a password)")
		return 2
	}

	c, err := client.New(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "leasehold client:", err)
		return 1
	}
	// The session is ended even when the hold was interrupted.
	closeCtx := context.WithoutCancel(ctx)
	closeClient := func() int {
		cctx, cancel := context.WithTimeout(closeCtx, 30*time.Second)
		defer cancel()
		if err := c.Close(cctx); err != nil {
			fmt.Fprintln(stderr, "leasehold client: close:", err)
			return 1
		}
		return 0
	}
	if c.Offline() {
		fmt.Fprintln(stdout, "offline: the server cannot be reached; using the leases kept in", *stateDir)
	}

	switch cmd {
	case "check":
		code := 0
		for _, item := range items {
			ok, err := c.Check(ctx, item)
			var le *client.LicenseError
			switch {
			case ok:
				fmt.Fprintf(stdout, "%s: available\n", item)
			case errors.As(err, &le):
				fmt.Fprintf(stdout, "%s: refused (%s) %s\n", item, le.Code, le.Message)
				code = 1
			default:
				fmt.Fprintf(stderr, "leasehold client: %s: %v\n", item, err)
				code = 1
			}
		}
		if closeClient() != 0 {
			return 1
		}
		return code

	case "release":
		code := 0
		for _, item := range items {
			if err := c.Release(ctx, item); err != nil {
				fmt.Fprintf(stderr, "leasehold client: release %s: %v\n", item, err)
				code = 1
				continue
			}
			fmt.Fprintf(stdout, "%s: released\n", item)
		}
		if closeClient() != 0 {
			return 1
		}
		return code
	}

	// consume
	var opts []client.ConsumeOption
	if *checkout > 0 {
		opts = append(opts, client.WithCheckout(*checkout))
	}
	if *queue > 0 {
		opts = append(opts, client.WithQueue(*queue))
	}
	var leases []*client.Lease
	code := 0
	for _, item := range items {
		l, err := c.Consume(ctx, item, opts...)
		if err != nil {
			var le *client.LicenseError
			if errors.As(err, &le) {
				fmt.Fprintf(stdout, "%s: refused (%s) %s\n", item, le.Code, le.Message)
			} else {
				fmt.Fprintf(stderr, "leasehold client: %s: %v\n", item, err)
			}
			code = 1
			continue
		}
		mode := "online"
		if l.Checkout() {
			mode = "checkout"
		}
		fmt.Fprintf(stdout, "%s: granted (%s) lease=%s license=%s expires=%s\n",
			item, mode, l.ID(), l.License(), l.Expiry().Format(time.RFC3339))
		leases = append(leases, l)
	}
	if *hold > 0 && len(leases) > 0 {
		fmt.Fprintf(stdout, "holding for %s (Ctrl-C to stop)\n", *hold)
		holdCtx, cancel := context.WithTimeout(ctx, *hold)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, l := range leases {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-holdCtx.Done():
						return
					case ev, ok := <-l.Events():
						if !ok {
							return
						}
						mu.Lock()
						fmt.Fprintf(stdout, "%s %s: %s\n", ev.Time.Format(time.TimeOnly), l.Item(), ev)
						mu.Unlock()
					}
				}
			}()
		}
		<-holdCtx.Done()
		cancel()
		wg.Wait()
	}
	if closeClient() != 0 {
		return 1
	}
	for _, l := range leases {
		if !l.Checkout() {
			fmt.Fprintf(stdout, "%s: released\n", l.Item())
		}
	}
	return code
}

type multiFlag []string

func (m *multiFlag) String() string     { return fmt.Sprint([]string(*m)) }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// clientEnv is the environment variable name, or def when it is unset or empty.
func clientEnv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
