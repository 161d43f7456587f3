//go:build windows

package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// lockDir creates path exclusively, holding this process's id, and removes it on unlock.
// A file left by a process that no longer runs (a crash) is taken over.
func lockDir(path string) (func(), error) {
	for attempt := 0; attempt < 2; attempt++ {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			b, _ := os.ReadFile(path)
			holder := strings.TrimSpace(string(b))
			if pid, perr := strconv.Atoi(holder); perr == nil && pid != os.Getpid() {
				p, ferr := os.FindProcess(pid) // fails when no such process runs
				if ferr != nil {
					_ = os.Remove(path)
					continue
				}
				_ = p.Release()
			}
			return nil, fmt.Errorf("%w (held by process %s; delete %s if it no longer runs)", ErrStateDirLocked, holder, path)
		}
		if err != nil {
			return nil, fmt.Errorf("leasehold: state directory lock: %w", err)
		}
		_, _ = f.WriteString(strconv.Itoa(os.Getpid()))
		f.Close()
		return func() { _ = os.Remove(path) }, nil
	}
	return nil, ErrStateDirLocked
}
