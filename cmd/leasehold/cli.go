package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/leasehold/leasehold/internal/store/sqlite"
)

// Environment variables the commands read when their flag is not given.
const (
	configEnv = "LEASEHOLD_CONFIG"
	urlEnv    = "LEASEHOLD_URL"
	tokenEnv  = "LEASEHOLD_ADMIN_TOKEN"
	tenantEnv = "LEASEHOLD_TENANT"
)

// Exit statuses, the same for every command: a script can tell "you called me wrong" from
// "it did not work".
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError is a command called wrongly: unknown command or flag, wrong arguments.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitStatus is a command that has printed its own message and ends with this status.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// fromCode turns the status of a command written as `func(…) int` into an error.
func fromCode(code int) error {
	if code == exitOK {
		return nil
	}
	return exitStatus(code)
}

// run executes the command line and returns the process's exit status.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	var code exitStatus
	var usage usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &code):
		return int(code)
	case errors.As(err, &usage) || strings.HasPrefix(err.Error(), "unknown command "):
		fmt.Fprintf(stderr, "leasehold: %v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
		return exitUsage
	default:
		fmt.Fprintln(stderr, "leasehold:", err)
		return exitFailure
	}
}

// args wraps a cobra argument check so that its refusal is a usage error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// group is a command that only holds others: called alone, or with a word that names none
// of them, it shows its help and fails as a usage error.
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(c *cobra.Command, a []string) error {
		if len(a) > 0 {
			return usageErrorf("unknown command %q for %q", a[0], c.CommandPath())
		}
		c.SetOut(c.ErrOrStderr())
		_ = c.Help()
		return exitStatus(exitUsage)
	}
	return cmd
}

func envDefault(name string) string { return os.Getenv(name) }

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := group(&cobra.Command{
		Use:   "leasehold",
		Short: "Leasehold: a self-hosted license and session server",
		Long: `Leasehold: a self-hosted license and session server.

Exit status: 0 on success (and for --help), 1 when the command failed, 2 when it was called
wrongly (unknown command or flag, wrong arguments).`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       currentVersion().Version,
	})
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.SetVersionTemplate(versionText())

	root.AddCommand(
		serveCommand(stdout, stderr),
		adminCommand(stdout, stderr),
		backupCommand(stdout, stderr),
		restoreCommand(stdout, stderr),
		hashPasswordCommand(stdout, stderr),
		benchCommand(stdout, stderr),
		versionCommand(stdout),
	)

	// `leasehold demo-upstream` is the tiny API the README's gateway example licenses; it
	// parses its own flags.
	root.AddCommand(&cobra.Command{
		Use:                "demo-upstream",
		Short:              "A JSON echo API on 127.0.0.1:7000, for the gateway demo",
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, a []string) error {
			return fromCode(demoUpstream(a, stdout, stderr))
		},
	})
	// `leasehold client` runs package client's programs (consume, check, hold a lease); it
	// parses its own flags, --help included.
	root.AddCommand(&cobra.Command{
		Use:                "client",
		Short:              "Use a Leasehold server as a vendor's program would (leasehold client --help)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return fromCode(runClient(ctx, a, stdout, stderr))
		},
	})
	return root
}

func versionText() string {
	var b strings.Builder
	currentVersion().print(&b)
	// The text becomes a template: keep any brace in a stamped value literal.
	return strings.NewReplacer("{{", `{{"{{"}}`, "}}", `{{"}}"}}`).Replace(b.String())
}

func versionCommand(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and build of this binary",
		Args:  args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			currentVersion().print(stdout)
			// Which SQLite driver: the cgo build and the CGO_ENABLED=0 one differ (README).
			fmt.Fprintf(stdout, "sqlite:  %s\n", sqlite.Driver())
			return nil
		},
	}
}

func serveCommand(stdout, stderr io.Writer) *cobra.Command {
	var cfgPath string
	var allowShort bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Start the server",
		Long: `Start the server with a configuration file (docs/CONFIG.md). It runs until SIGINT or
SIGTERM, then drains: requests waiting for a seat are answered at once, requests in flight
finish within shutdown_timeout.`,
		Example: "  leasehold serve --config examples/demo.yaml",
		Args:    args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			return fromCode(serveConfig(cfgPath, allowShort, "", stdout, stderr))
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", envDefault(configEnv), "configuration file, YAML or JSON (env "+configEnv+")")
	cmd.Flags().BoolVar(&allowShort, allowShortTokenFlag, false, allowShortTokenUsage)
	return cmd
}

func backupCommand(stdout, stderr io.Writer) *cobra.Command {
	var cfgPath, store string
	var force bool
	cmd := &cobra.Command{
		Use:   "backup DEST",
		Short: "Write a consistent copy of a live SQLite store (mode 0600)",
		Long: `Write a consistent copy of a SQLite store, also while the server runs. The copy holds
signing keys and password hashes: it is readable by its owner only, and an existing file is
replaced only with --force. For PostgreSQL use pg_dump.`,
		Example: "  leasehold backup --config examples/demo.yaml backup.db",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			return fromCode(backup(cfgPath, store, force, a[0], stdout, stderr))
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", envDefault(configEnv), "configuration file naming the store (env "+configEnv+")")
	cmd.Flags().StringVar(&store, "store", "", "the store (sqlite://PATH) instead of --config")
	cmd.Flags().BoolVar(&force, "force", false, "replace DEST if it exists")
	return cmd
}

func restoreCommand(stdout, stderr io.Writer) *cobra.Command {
	var cfgPath, store string
	cmd := &cobra.Command{
		Use:   "restore BACKUP",
		Short: "Replace a stopped server's SQLite store with a backup",
		Long: `Replace the SQLite store with a file written by leasehold backup. Stop the server first:
restore refuses while a server beats on the store. For PostgreSQL use pg_restore.`,
		Example: "  leasehold restore --config examples/demo.yaml backup.db",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			return fromCode(restore(cfgPath, store, a[0], stdout, stderr))
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", envDefault(configEnv), "configuration file naming the store (env "+configEnv+")")
	cmd.Flags().StringVar(&store, "store", "", "the store (sqlite://PATH) instead of --config")
	return cmd
}

func hashPasswordCommand(stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "hash-password",
		Short: "Print the argon2id hash of a password, for password_hash / client_secret_hash",
		Long:  strings.TrimPrefix(hashPasswordUsage, "usage: leasehold hash-password\n"),
		Args:  args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			return fromCode(hashPassword(nil, stdinPassword(), stdout, stderr))
		},
	}
}

func benchCommand(stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "bench",
		Short: "Load generator for a running server (leasehold bench -h)",
		// bench has its own flags and sub-commands.
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, a []string) error {
			return fromCode(bench(a, stdout, stderr))
		},
	}
}
