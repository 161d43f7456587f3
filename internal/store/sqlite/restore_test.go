package sqlite

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/store"
)

// A restore brings back exactly what the backup held: what was written after the backup
// is gone, what was deleted after it is back, and no write-ahead log of the replaced
// database leaks into the copy.
func TestRestoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "data", "leasehold.db")
	backup := filepath.Join(dir, "backup.db")
	until := time.Now().Add(time.Hour)

	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	update(t, s, func(tx store.Tx) error { return tx.PutSeat(t.Context(), seat("kept", until)) })
	update(t, s, func(tx store.Tx) error { return tx.PutSeat(t.Context(), seat("deleted-later", until)) })
	if err := s.Backup(t.Context(), backup, false); err != nil {
		t.Fatal(err)
	}
	update(t, s, func(tx store.Tx) error { return tx.PutSeat(t.Context(), seat("after-backup", until)) })
	update(t, s, func(tx store.Tx) error {
		_, err := tx.DeleteSeat(t.Context(), "acme", "L1", "deleted-later")
		return err
	})
	// The log holding the writes made after the backup, as a crash would leave it beside
	// the database: it must not be replayed onto the restored file.
	wal, err := os.ReadFile(path + "-wal")
	if err != nil || len(wal) == 0 {
		t.Fatalf("no write-ahead log to leave behind: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+"-wal", wal, 0o600); err != nil {
		t.Fatal(err)
	}

	if err := Restore(t.Context(), backup, "sqlite://"+path); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("restored file mode: %v %v, want 0600", fi.Mode(), err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatalf("open the restored store: %v", err)
	}
	defer r.Close()
	for key, want := range map[string]bool{"kept": true, "deleted-later": true, "after-backup": false} {
		if got := hasSeat(t, r, key); got != want {
			t.Errorf("seat %q after restore: %v, want %v", key, got, want)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".db" && e.Name() != "leasehold.db-wal" && e.Name() != "leasehold.db-shm" {
			t.Errorf("restore left %s behind", e.Name())
		}
	}
}

func TestRestoreRefusesWhatIsNotABackup(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "leasehold.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	update(t, s, func(tx store.Tx) error { return tx.PutSeat(t.Context(), seat("live", time.Now().Add(time.Hour))) })
	s.Close()

	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{junk, filepath.Join(dir, "missing.db"), path} {
		if err := Restore(t.Context(), src, "sqlite://"+path); err == nil {
			t.Errorf("Restore(%s) succeeded", src)
		}
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !hasSeat(t, r, "live") {
		t.Error("a refused restore changed the store")
	}
}
