package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/leasehold/leasehold/internal/config"
	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/store/sqlite"
)

// runningWithin: a store whose last heartbeat is this recent has a server on it. A
// server beats every second (app.SweepEvery); the margin covers a busy writer.
const runningWithin = 5 * time.Second

// backup copies the store (named by --store, else by the configuration file) to dest.
func backup(cfgPath, storeDSN string, force bool, dest string, stdout, stderr io.Writer) int {
	dsn, code := storeFromFlags("backup", cfgPath, storeDSN, stderr)
	if code != 0 {
		return code
	}
	if !strings.HasPrefix(dsn, "sqlite:") {
		fmt.Fprintln(stderr, "leasehold: backup works on SQLite stores only; for PostgreSQL use pg_dump (README, \"Backup and restore\")")
		return 1
	}
	st, err := sqlite.Open(dsn)
	if err != nil {
		fmt.Fprintln(stderr, "leasehold: backup:", err)
		return 1
	}
	defer st.Close()
	if err := st.Backup(context.Background(), dest, force); err != nil {
		if errors.Is(err, fs.ErrExist) {
			fmt.Fprintf(stderr, "leasehold: backup: %s exists (--force replaces it)\n", dest)
			return 1
		}
		fmt.Fprintln(stderr, "leasehold: backup:", err)
		return 1
	}
	fmt.Fprintln(stdout, "backup written to", dest, "(mode 0600: it holds signing keys and password hashes)")
	return 0
}

// restore replaces a stopped server's store with the backup at src.
func restore(cfgPath, storeDSN, src string, stdout, stderr io.Writer) int {
	dsn, code := storeFromFlags("restore", cfgPath, storeDSN, stderr)
	if code != 0 {
		return code
	}
	if !strings.HasPrefix(dsn, "sqlite:") {
		fmt.Fprintln(stderr, "leasehold: restore works on SQLite stores only; for PostgreSQL use pg_restore (README, \"Backup and restore\")")
		return 1
	}
	ctx := context.Background()
	if last, now, err := lastBeat(ctx, dsn); err != nil {
		fmt.Fprintln(stderr, "leasehold: restore:", err)
		return 1
	} else if !last.IsZero() && now.Sub(last) < runningWithin {
		fmt.Fprintf(stderr, "leasehold: restore: a server is running on this store (last heartbeat %s ago): stop it first (one stopped just now: retry in %s)\n",
			now.Sub(last).Round(time.Millisecond), runningWithin)
		return 1
	}
	if err := sqlite.Restore(ctx, src, dsn); err != nil {
		fmt.Fprintln(stderr, "leasehold: restore:", err)
		return 1
	}
	fmt.Fprintln(stdout, "store restored from", src)
	return 0
}

// lastBeat reads the store's latest server heartbeat and its clock; zero when the store
// does not exist yet or no server ever ran on it.
func lastBeat(ctx context.Context, dsn string) (last, now time.Time, err error) {
	path, err := sqlite.FilePath(dsn)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, time.Time{}, nil
	}
	st, err := sqlite.Open(dsn)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	defer st.Close()
	err = st.View(ctx, func(tx store.Tx) error {
		now = tx.Now()
		last, err = tx.LastHeartbeat(ctx, "")
		return err
	})
	return last, now, err
}

func storeFromFlags(cmd, cfgPath, dsn string, stderr io.Writer) (string, int) {
	if dsn != "" {
		return dsn, 0
	}
	if cfgPath == "" {
		fmt.Fprintf(stderr, "leasehold: %s needs --config FILE (or %s) or --store sqlite://PATH\n", cmd, configEnv)
		return "", 2
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		fmt.Fprintln(stderr, "leasehold:", err)
		return "", 2
	}
	return cfg.Store, 0
}
