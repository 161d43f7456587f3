package documents

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "docs"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var created = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func read(t *testing.T, b *Box, name string) string {
	t.Helper()
	f, _, err := b.Open(name)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer f.Close()
	data, _ := io.ReadAll(f)
	return string(data)
}

func TestPutGetListDelete(t *testing.T) {
	s := open(t)
	b := s.Session("acme", "s1", created)
	if l, err := b.List(); err != nil || len(l) != 0 {
		t.Fatalf("empty list: %v %v", l, err)
	}
	if _, err := b.Put("a.pdf", strings.NewReader("hello"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put("b.txt", strings.NewReader("x"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put("a.pdf", strings.NewReader("replaced"), 0); err != nil {
		t.Fatal(err)
	}
	if got := read(t, b, "a.pdf"); got != "replaced" {
		t.Fatalf("read back %q", got)
	}
	l, err := b.List()
	if err != nil || len(l) != 2 || l[0].Name != "a.pdf" || l[0].Size != 8 || l[1].Name != "b.txt" {
		t.Fatalf("list: %+v %v", l, err)
	}
	if err := b.Delete("b.txt"); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete("b.txt"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if _, _, err := b.Open("b.txt"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open deleted: %v", err)
	}
	// Other sessions, tenants and lives of the same id see nothing.
	for _, o := range []*Box{s.Session("acme", "s2", created), s.Session("other", "s1", created), s.Session("acme", "s1", created.Add(time.Millisecond))} {
		if l, _ := o.List(); len(l) != 0 {
			t.Fatalf("another box lists %v", l)
		}
		if _, _, err := o.Open("a.pdf"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("another box opens: %v", err)
		}
	}
	if err := s.DeleteSession("acme", "s1"); err != nil {
		t.Fatal(err)
	}
	if l, _ := b.List(); len(l) != 0 {
		t.Fatalf("after DeleteSession: %v", l)
	}
	if entries, _ := os.ReadDir(s.Root()); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}

func TestNewLifeOfASessionIDStartsEmpty(t *testing.T) {
	s := open(t)
	old := s.Session("acme", "cc-1", created)
	if _, err := old.Put("a", strings.NewReader("old"), 0); err != nil {
		t.Fatal(err)
	}
	fresh := s.Session("acme", "cc-1", created.Add(time.Hour))
	if _, err := fresh.Put("b", strings.NewReader("new"), 0); err != nil {
		t.Fatal(err)
	}
	if l, _ := fresh.List(); len(l) != 1 || l[0].Name != "b" {
		t.Fatalf("the new life sees %v", l)
	}
}

func TestQuota(t *testing.T) {
	s := open(t)
	b := s.Session("acme", "s1", created)
	if _, err := b.Put("a", strings.NewReader(strings.Repeat("x", 60)), 100); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put("b", strings.NewReader(strings.Repeat("x", 41)), 100); !errors.Is(err, ErrQuota) {
		t.Fatalf("over quota: %v", err)
	}
	if _, err := b.Put("b", strings.NewReader(strings.Repeat("x", 40)), 100); err != nil {
		t.Fatalf("exactly the quota: %v", err)
	}
	// Replacing a document counts its new size instead of the old one.
	if _, err := b.Put("a", strings.NewReader(strings.Repeat("y", 60)), 100); err != nil {
		t.Fatalf("replace within quota: %v", err)
	}
	if got := read(t, b, "a"); got != strings.Repeat("y", 60) {
		t.Fatal("replace lost data")
	}
	// A refused write leaves the old document and no temporary file.
	if _, err := b.Put("a", strings.NewReader(strings.Repeat("z", 61)), 100); !errors.Is(err, ErrQuota) {
		t.Fatalf("replace over quota: %v", err)
	}
	if got := read(t, b, "a"); got != strings.Repeat("y", 60) {
		t.Fatalf("a refused write changed the document: %q", got)
	}
	entries, _ := os.ReadDir(b.dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			t.Fatalf("temporary file left: %s", e.Name())
		}
	}
}

func TestConcurrentPutsRespectQuota(t *testing.T) {
	s := open(t)
	b := s.Session("acme", "s1", created)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = b.Put(string(rune('a'+i)), strings.NewReader(strings.Repeat("x", 10)), 55)
		}()
	}
	wg.Wait()
	l, _ := b.List()
	var total int64
	for _, d := range l {
		total += d.Size
	}
	if total > 55 || len(l) != 5 {
		t.Fatalf("%d documents, %d bytes (quota 55)", len(l), total)
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "report.pdf", "résumé 2026.docx", "a..b", strings.Repeat("n", MaxNameLen)} {
		if err := ValidName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", ".hidden", "a/b", `a\b`, "../x", "a\x00b", "a\nb", " a", "a ", "\xff", strings.Repeat("n", MaxNameLen+1)} {
		if err := ValidName(bad); !errors.Is(err, ErrBadName) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestOwnersAndRemoveDir(t *testing.T) {
	s := open(t)
	b := s.Session("acme", "s1", created)
	if _, err := b.Put("a", strings.NewReader("x"), 0); err != nil {
		t.Fatal(err)
	}
	owners, err := s.Owners(0)
	if err != nil || len(owners) != 1 {
		t.Fatalf("owners: %v %v", owners, err)
	}
	for name, o := range owners {
		if o.Tenant != "acme" || o.Session != "s1" || o.Created != created.UnixMilli() {
			t.Fatalf("owner: %+v", o)
		}
		// A stale view of the owner removes nothing.
		if err := s.RemoveDir(name, Owner{Tenant: "acme", Session: "s1"}); err != nil {
			t.Fatal(err)
		}
		if l, _ := b.List(); len(l) != 1 {
			t.Fatal("removed with a stale owner")
		}
		if err := s.RemoveDir(name, o); err != nil {
			t.Fatal(err)
		}
	}
	if l, _ := b.List(); len(l) != 0 {
		t.Fatal("not removed")
	}
	if err := s.RemoveDir("../x", Owner{}); !errors.Is(err, ErrBadName) {
		t.Fatalf("RemoveDir outside the root: %v", err)
	}
}
