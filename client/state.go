package client

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// stateFile is the file in Config.StateDir that holds the client's state. It holds tokens:
// it is written with mode 0600 in a directory of mode 0700.
const stateFile = "leasehold-client.json"

// lockFile is locked while a Client uses the directory.
const lockFile = "leasehold-client.lock"

// savedState is what a Client keeps in its StateDir.
type savedState struct {
	// Identity is the server, tenant and credentials' identity the state belongs to; a
	// state of another identity is ignored (its process id excepted).
	Identity string `json:"identity"`
	// Process is the Client's process id, sent as `process=` on every consumption.
	Process string          `json:"process"`
	Session *savedSession   `json:"session,omitempty"`
	Leases  []savedLease    `json:"leases,omitempty"`
	JWKS    json.RawMessage `json:"jwks,omitempty"`
}

type savedSession struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry"` // local clock
	LoginToken   string    `json:"login_token,omitempty"`
}

type savedLease struct {
	Item     string    `json:"item"`
	Mode     string    `json:"mode"` // "cache" or "checkout"
	Token    string    `json:"token"`
	Received time.Time `json:"received"` // local clock when the token was received
}

// stateDir is a locked StateDir.
type stateDir struct {
	dir    string
	unlock func()

	mu sync.Mutex // serializes writes
}

func openStateDir(dir string) (*stateDir, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("leasehold: state directory: %w", err)
	}
	unlock, err := lockDir(filepath.Join(dir, lockFile))
	if err != nil {
		return nil, err
	}
	return &stateDir{dir: dir, unlock: unlock}, nil
}

func (s *stateDir) read() (savedState, error) {
	var st savedState
	b, err := os.ReadFile(filepath.Join(s.dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("leasehold: state: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		// A damaged file is not fatal: the client logs in again.
		return savedState{}, nil
	}
	return st, nil
}

// write replaces the state file atomically (a crash leaves the old or the new file).
func (s *stateDir) write(st savedState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.dir, stateFile+".*.tmp")
	if err != nil {
		return fmt.Errorf("leasehold: state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("leasehold: state: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("leasehold: state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("leasehold: state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("leasehold: state: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(s.dir, stateFile)); err != nil {
		return fmt.Errorf("leasehold: state: %w", err)
	}
	return nil
}

func (s *stateDir) close() {
	if s.unlock != nil {
		s.unlock()
		s.unlock = nil
	}
}

func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
