package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/store/sqlite"
)

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "leasehold ") {
		t.Fatalf("version: %d %q %q", code, out.String(), errb.String())
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

// backup copies a store that another handle is writing to.
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
	cp, err := sqlite.Open(dest)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	var beat bool
	err = cp.View(ctx, func(tx store.Tx) error {
		at, err := tx.LastHeartbeat(ctx, "")
		beat = !at.IsZero()
		return err
	})
	if err != nil || !beat {
		t.Fatalf("the copy lacks the live store's data: %v", err)
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
