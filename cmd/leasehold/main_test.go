package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/store/sqlite"
)

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "leasehold ") {
		t.Fatalf("version: %d %q %q", code, out.String(), errb.String())
	}
	// It names the SQLite driver the build chose (cgo or not).
	if want := "\nsqlite:  " + sqlite.Driver() + "\n"; !strings.Contains(out.String(), want) {
		t.Errorf("version: %q lacks %q", out.String(), want)
	}
}

// A bad configuration is refused with one line naming the field, a non-zero exit, and
// nothing written (not even the store's directory).
func TestServeRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := `
store: sqlite://` + filepath.Join(data, "leasehold.db") + `
tenants:
  - name: acme
    models: [{name: m, refresh_ratio: 7}]
`
	path := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run([]string{"serve", "--config", path}, &out, &errb)
	if code == 0 {
		t.Fatal("serve accepted a bad configuration")
	}
	msg := strings.TrimSpace(errb.String())
	if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "tenants[acme].models[m].refresh_ratio") {
		t.Fatalf("want one line naming the field, got %q", msg)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("a refused configuration wrote %s", data)
	}
}

// backup copies a store that another handle is writing to, privately, and never over an
// existing file unless told to.
func TestBackup(t *testing.T) {
	dir := t.TempDir()
	dsn := "sqlite://" + filepath.Join(dir, "live.db")
	live, err := sqlite.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	ctx := context.Background()
	if err := live.Update(ctx, func(tx store.Tx) error { return tx.Heartbeat(ctx, "p1", tx.Now()) }); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "copy.db")
	var out, errb bytes.Buffer
	if code := run([]string{"backup", "--store", dsn, dest}, &out, &errb); code != 0 {
		t.Fatalf("backup: %d %s", code, errb.String())
	}
	if fi, err := os.Stat(dest); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file mode %v (%v), want 0600", fi.Mode(), err)
	}
	cp, err := sqlite.Open(dest)
	if err != nil {
		t.Fatal(err)
	}
	var beat bool
	err = cp.View(ctx, func(tx store.Tx) error {
		at, err := tx.LastHeartbeat(ctx, "")
		beat = !at.IsZero()
		return err
	})
	cp.Close()
	if err != nil || !beat {
		t.Fatalf("the copy lacks the live store's data: %v", err)
	}

	errb.Reset()
	if code := run([]string{"backup", "--store", dsn, dest}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "--force") {
		t.Fatalf("backup over an existing file: %d %q, want 1 and a hint at --force", code, errb.String())
	}
	// Flags may follow the file name.
	if code := run([]string{"backup", dest, "--store", dsn, "--force"}, &out, &errb); code != 0 {
		t.Fatalf("backup --force: %d %s", code, errb.String())
	}

	// A server is running on the live store (it beat just now): restore refuses.
	errb.Reset()
	if code := run([]string{"restore", "--store", dsn, dest}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "stop it first") {
		t.Fatalf("restore onto a running store: %d %q", code, errb.String())
	}
}

// backup, changes, restore: the store is as it was at the backup.
func TestBackupRestoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	dsn := "sqlite://" + filepath.Join(dir, "data", "leasehold.db")
	ctx := context.Background()
	beat := func(process string, at time.Time) {
		t.Helper()
		st, err := sqlite.Open(dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if err := st.Update(ctx, func(tx store.Tx) error { return tx.Heartbeat(ctx, process, at) }); err != nil {
			t.Fatal(err)
		}
	}
	lastBeat := func() time.Time {
		t.Helper()
		st, err := sqlite.Open(dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		var last time.Time
		err = st.View(ctx, func(tx store.Tx) error {
			var err error
			last, err = tx.LastHeartbeat(ctx, "")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return last
	}
	// Servers that stopped a while ago (old heartbeats), so restore goes ahead.
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	beat("before", old)
	backupFile := filepath.Join(dir, "backup.db")
	var out, errb bytes.Buffer
	if code := run([]string{"backup", "--store", dsn, backupFile}, &out, &errb); code != 0 {
		t.Fatalf("backup: %d %s", code, errb.String())
	}
	beat("after", old.Add(time.Minute))
	if got := lastBeat(); !got.Equal(old.Add(time.Minute)) {
		t.Fatalf("before restore: last beat %v, want %v", got, old.Add(time.Minute))
	}
	if code := run([]string{"restore", "--store", dsn, backupFile}, &out, &errb); code != 0 {
		t.Fatalf("restore: %d %s", code, errb.String())
	}
	if got := lastBeat(); !got.Equal(old) {
		t.Fatalf("after restore: last beat %v, want the backup's %v", got, old)
	}
	// What is not a backup is refused.
	errb.Reset()
	if code := run([]string{"restore", "--store", dsn, filepath.Join(dir, "nope.db")}, &out, &errb); code != 1 {
		t.Fatalf("restore of a missing file: %d %s", code, errb.String())
	}
}

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:hunter2@db/x?sslmode=disable": "postgres://u:xxxxx@db/x?sslmode=disable",
		"postgres://u@db/x?password=hunter2":        "postgres://u@db/x?password=xxxxx",
		"sqlite://./leasehold-data/leasehold.db":    "sqlite://./leasehold-data/leasehold.db",
	} {
		if got := redactDSN(in); got != want || strings.Contains(got, "hunter2") {
			t.Errorf("redactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestServerGCPercent(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "GOGC" {
				return v
			}
			return ""
		}
	}
	if p, ok := serverGCPercent(env("")); !ok || p != serverGCGoal {
		t.Errorf("GOGC unset: %d, %v; want %d", p, ok, serverGCGoal)
	}
	for _, v := range []string{"100", "off"} {
		if _, ok := serverGCPercent(env(v)); ok {
			t.Errorf("GOGC=%s: serve overrides the operator's choice", v)
		}
	}
}

// serve refuses an admin token short enough to guess, unless told it runs a demo.
func TestServeRefusesShortAdminToken(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "short.yaml")
	cfg := "store: sqlite://" + filepath.Join(dir, "data", "leasehold.db") + "\nadmin_token: short-token\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"serve", "--config", path}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "admin_token: shorter than 24") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Fatal("a refused configuration wrote its store")
	}
}

// TestBenchServeStore: `leasehold bench serve --store URL` serves the configuration on that
// store instead of the file's (here it opens it, then fails to listen on a taken port).
func TestBenchServeStore(t *testing.T) {
	dir := t.TempDir()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	path := filepath.Join(dir, "bench.yaml")
	cfg := "listen: " + taken.Addr().String() + "\nstore: sqlite://" + filepath.Join(dir, "file", "leasehold.db") +
		"\ndocuments: " + filepath.Join(dir, "documents") + "\nadmin_token: bench-admin-token-not-for-production\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "flag", "leasehold.db")
	var out, errb bytes.Buffer
	code := run([]string{"bench", "serve", "--pprof", "127.0.0.1:0", "--config", path, "--store", "sqlite://" + other}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "cannot listen") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("the --store database: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "file")); !os.IsNotExist(err) {
		t.Error("the file's store was opened")
	}
}
