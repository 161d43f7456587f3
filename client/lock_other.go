//go:build (!unix && !windows) || solaris || aix

package client

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
)

// lockDir creates path exclusively and removes it on unlock. Without flock, a crash leaves
// the file behind: ErrStateDirLocked then names it, and deleting it frees the directory.
func lockDir(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%w (delete %s if no program uses it)", ErrStateDirLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("leasehold: state directory lock: %w", err)
	}
	_, _ = f.WriteString(strconv.Itoa(os.Getpid()))
	f.Close()
	return func() { _ = os.Remove(path) }, nil
}
