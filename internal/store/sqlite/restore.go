package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Restore replaces the database that dsn names with a copy of src, a file Backup wrote.
// No process may have the database open: a server would go on writing to the file it
// opened, and its writes would be lost or mixed with the copy. src is checked to be a
// Leasehold SQLite store before anything is replaced; the copy is synced and then takes
// the database's name atomically, and the database's write-ahead log is removed first so
// that none of it is ever applied to the copy. The restored file is readable by its
// owner only, as Backup writes it.
func Restore(ctx context.Context, src, dsn string) (err error) {
	st, err := parseDSN(dsn)
	if err != nil {
		return err
	}
	dest, err := filepath.Abs(st.path)
	if err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	if abs, err := filepath.Abs(src); err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	} else if abs == dest {
		return fmt.Errorf("sqlite: restore: %s is the database itself", src)
	}
	if err := checkBackup(ctx, src); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o750); err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), filepath.Base(dest)+".restore-*")
	if err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	defer func() {
		tmp.Close()
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	defer in.Close()
	if _, err := io.Copy(tmp, in); err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	for _, side := range []string{dest + "-wal", dest + "-shm"} {
		if err := os.Remove(side); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("sqlite: restore: %w", err)
		}
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	return syncFile(filepath.Dir(dest))
}

// checkBackup opens src read-only and checks that it is a SQLite database with Leasehold's
// schema, so that restoring a wrong file fails before the store is touched.
func checkBackup(ctx context.Context, src string) error {
	if fi, err := os.Stat(src); err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("sqlite: restore: %s is not a regular file", src)
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	// immutable: nothing is written beside the backup (no -wal or -shm), even on a
	// read-only medium.
	db, err := openDB(abs, connOptions{busyTimeout: 5000, immutable: true})
	if err != nil {
		return fmt.Errorf("sqlite: restore: %w", err)
	}
	defer db.Close()
	var version int
	if err := db.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&version); err != nil || version == 0 {
		return fmt.Errorf("sqlite: restore: %s is not a Leasehold backup (%v)", src, err)
	}
	if version > len(migrations) {
		return fmt.Errorf("sqlite: restore: %s comes from a newer Leasehold (schema %d, this one knows %d)", src, version, len(migrations))
	}
	return nil
}
