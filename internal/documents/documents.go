// Package documents is the per-session document storage of the session API (webPDF): files a
// session keeps on the server between calls, deleted when the session ends.
//
// Each session has one directory under the root, named by a hash of (tenant, session id) —
// never by anything a client sends. It holds a small owner file (which session it belongs
// to, so that an orphaned directory can be recognised and removed) and the documents, each
// stored under a fixed prefix so that no document name can collide with the owner file or
// a temporary file. Writes go to a temporary file that is synced and renamed into place: a
// reader sees the old document or the new one, never a partial one.
//
// The storage is local to the process's file system. Several server processes (PostgreSQL)
// need a shared directory or sticky sessions for documents.
package documents

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// Errors callers map to HTTP answers.
var (
	ErrBadName  = errors.New("invalid document name")
	ErrNotFound = errors.New("no such document")
	ErrQuota    = errors.New("the session's document quota is exceeded")
	ErrTooMany  = errors.New("the session holds too many documents")
)

const (
	// MaxNameLen bounds a document name (bytes); with the prefix it stays within the 255
	// bytes file systems allow.
	MaxNameLen = 200
	// MaxDocuments bounds the number of documents of one session (empty files cost no quota).
	MaxDocuments = 1000

	docPrefix = "d_"
	ownerFile = ".owner"
	tmpPrefix = ".tmp-"
)

// Store is the root of all sessions' document directories.
type Store struct {
	root string

	mu    sync.Mutex
	locks map[string]*sessionLock // serializes writes per session (quota accounting)
}

type sessionLock struct {
	sync.Mutex
	refs int
}

// Info describes one document.
type Info struct {
	Name     string    `json:"name"`
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
}

// Owner is the session a directory belongs to. Created tells one life of a session id from
// a later one (a client_credentials session id is deterministic).
type Owner struct {
	Tenant  string `json:"tenant"`
	Session string `json:"session"`
	Created int64  `json:"created"` // the session's CreatedAt, Unix milliseconds (what every store keeps)
}

// Open creates the root directory when missing.
func Open(root string) (*Store, error) {
	if root == "" {
		return nil, errors.New("documents: no directory configured")
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("documents: %w", err)
	}
	return &Store{root: root, locks: map[string]*sessionLock{}}, nil
}

// Root is the directory the store keeps documents in.
func (s *Store) Root() string { return s.root }

// ValidName checks a document name: 1 to MaxNameLen bytes of UTF-8 without path
// separators, control characters or a leading dot.
func ValidName(name string) error {
	switch {
	case name == "" || len(name) > MaxNameLen:
		return fmt.Errorf("%w: 1 to %d bytes", ErrBadName, MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: not UTF-8", ErrBadName)
	case strings.HasPrefix(name, "."):
		return fmt.Errorf("%w: may not start with a dot", ErrBadName)
	case strings.ContainsAny(name, `/\`):
		return fmt.Errorf("%w: may not contain / or \\", ErrBadName)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("%w: may not start or end with spaces", ErrBadName)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: may not contain control characters", ErrBadName)
		}
	}
	return nil
}

func dirName(tenant, session string) string {
	sum := sha256.Sum256([]byte("leasehold-documents\x00" + tenant + "\x00" + session))
	return hex.EncodeToString(sum[:20])
}

// Box is one session's storage.
type Box struct {
	s     *Store
	dir   string
	owner Owner
}

// Session returns the storage of a session. It creates nothing until the first write.
func (s *Store) Session(tenant, session string, created time.Time) *Box {
	return &Box{
		s:     s,
		dir:   filepath.Join(s.root, dirName(tenant, session)),
		owner: Owner{Tenant: tenant, Session: session, Created: created.UnixMilli()},
	}
}

// current reports whether the box's directory belongs to this life of the session. With
// clean (the session's lock held), a directory left by an earlier session with the same id
// is removed.
func (b *Box) current(clean bool) (bool, error) {
	raw, err := os.ReadFile(filepath.Join(b.dir, ownerFile))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	var o Owner
	if json.Unmarshal(raw, &o) == nil && o == b.owner {
		return true, nil
	}
	if !clean {
		return false, nil
	}
	return false, os.RemoveAll(b.dir)
}

func (s *Store) lock(dir string) func() {
	s.mu.Lock()
	l := s.locks[dir]
	if l == nil {
		l = &sessionLock{}
		s.locks[dir] = l
	}
	l.refs++
	s.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		s.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(s.locks, dir)
		}
		s.mu.Unlock()
	}
}

// Put stores a document from r, replacing one of the same name. The session's documents
// may hold at most quota bytes in all (ErrQuota; quota <= 0: no limit).
func (b *Box) Put(name string, r io.Reader, quota int64) (Info, error) {
	if err := ValidName(name); err != nil {
		return Info{}, err
	}
	unlock := b.s.lock(b.dir)
	defer unlock()
	ok, err := b.current(true)
	if err != nil {
		return Info{}, err
	}
	if !ok {
		if err := b.create(); err != nil {
			return Info{}, err
		}
	}
	list, err := b.list()
	if err != nil {
		return Info{}, err
	}
	var used, replaced int64
	exists := false
	for _, d := range list {
		if d.Name == name {
			replaced, exists = d.Size, true
		}
		used += d.Size
	}
	if !exists && len(list) >= MaxDocuments {
		return Info{}, ErrTooMany
	}
	tmp, err := os.CreateTemp(b.dir, tmpPrefix+"*")
	if err != nil {
		return Info{}, err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	var src io.Reader = r
	room := int64(-1)
	if quota > 0 {
		room = quota - (used - replaced)
		src = io.LimitReader(r, max(room, 0)+1)
	}
	n, err := io.Copy(tmp, src)
	if err == nil && room >= 0 && n > room {
		err = ErrQuota
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Info{}, err
	}
	path := filepath.Join(b.dir, docPrefix+name)
	if err := os.Rename(tmp.Name(), path); err != nil {
		return Info{}, err
	}
	syncDir(b.dir)
	st, err := os.Stat(path)
	if err != nil {
		return Info{}, err
	}
	return Info{Name: name, Size: st.Size(), Modified: st.ModTime().UTC()}, nil
}

func (b *Box) create() error {
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return err
	}
	raw, _ := json.Marshal(b.owner)
	tmp := filepath.Join(b.dir, tmpPrefix+"owner")
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(b.dir, ownerFile)); err != nil {
		return err
	}
	syncDir(b.dir)
	syncDir(b.s.root)
	return nil
}

// Open opens a document for reading.
func (b *Box) Open(name string) (*os.File, Info, error) {
	if err := ValidName(name); err != nil {
		return nil, Info{}, err
	}
	if ok, err := b.current(false); err != nil || !ok {
		return nil, Info{}, notFoundOr(err)
	}
	f, err := os.Open(filepath.Join(b.dir, docPrefix+name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Info{}, ErrNotFound
	} else if err != nil {
		return nil, Info{}, err
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, Info{}, notFoundOr(err)
	}
	return f, Info{Name: name, Size: st.Size(), Modified: st.ModTime().UTC()}, nil
}

func notFoundOr(err error) error {
	if err != nil {
		return err
	}
	return ErrNotFound
}

// List returns the session's documents by name.
func (b *Box) List() ([]Info, error) {
	if ok, err := b.current(false); err != nil || !ok {
		return []Info{}, err
	}
	return b.list()
}

func (b *Box) list() ([]Info, error) {
	entries, err := os.ReadDir(b.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return []Info{}, nil
	} else if err != nil {
		return nil, err
	}
	out := []Info{}
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), docPrefix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		st, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, Info{Name: name, Size: st.Size(), Modified: st.ModTime().UTC()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete removes a document (ErrNotFound when there is none).
func (b *Box) Delete(name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	unlock := b.s.lock(b.dir)
	defer unlock()
	if ok, err := b.current(true); err != nil || !ok {
		return notFoundOr(err)
	}
	err := os.Remove(filepath.Join(b.dir, docPrefix+name))
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNotFound
	}
	return err
}

// DeleteSession removes a session's storage and everything in it.
func (s *Store) DeleteSession(tenant, session string) error {
	dir := filepath.Join(s.root, dirName(tenant, session))
	unlock := s.lock(dir)
	defer unlock()
	return os.RemoveAll(dir)
}

// Owners lists the sessions that have a storage directory (up to limit; 0: all). A
// directory without a readable owner file is reported with an empty Owner.
func (s *Store) Owners(limit int) (map[string]Owner, error) {
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return nil, err
	}
	out := map[string]Owner{}
	for _, e := range entries {
		if limit > 0 && len(out) >= limit {
			break
		}
		if !e.IsDir() {
			continue
		}
		var o Owner
		if raw, err := os.ReadFile(filepath.Join(s.root, e.Name(), ownerFile)); err == nil {
			_ = json.Unmarshal(raw, &o)
		}
		out[e.Name()] = o
	}
	return out, nil
}

// RemoveDir removes one directory listed by Owners, unless it has meanwhile been taken by
// a write (its owner changed).
func (s *Store) RemoveDir(name string, want Owner) error {
	if strings.ContainsAny(name, `/\`) || name == "." || name == ".." || name == "" {
		return ErrBadName
	}
	dir := filepath.Join(s.root, name)
	unlock := s.lock(dir)
	defer unlock()
	var o Owner
	if raw, err := os.ReadFile(filepath.Join(dir, ownerFile)); err == nil {
		_ = json.Unmarshal(raw, &o)
	}
	if o != want {
		return nil
	}
	return os.RemoveAll(dir)
}

// syncDir makes a rename or create in dir durable. Errors are ignored: some file systems
// do not support syncing a directory, and the data itself was already synced.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}
