package domain

import (
	"strings"
	"testing"
)

func TestChainRoot(t *testing.T) {
	for _, c := range []struct {
		id, root string
		ok       bool
	}{
		{"870f46a4-1faa-4847-955b-14ee5f74f3fe.3.AbCd", "870f46a4-1faa-4847-955b-14ee5f74f3fe", true},
		{"a.b.c.1.tag", "a.b.c", true},
		{"870f46a4-1faa-4847-955b-14ee5f74f3fe", "", false},
		{"root.1", "", false},
		{".1.tag", "", false},
		{"root..tag", "", false},
		{"", "", false},
	} {
		root, ok := ChainRoot(c.id)
		if root != c.root || ok != c.ok {
			t.Errorf("ChainRoot(%q) = %q, %v; want %q, %v", c.id, root, ok, c.root, c.ok)
		}
	}
}

func TestDerivedChainID(t *testing.T) {
	l := &Lease{Root: "r-1", ID: "r-1", ChainKey: NewChainKey()}
	var ids []string
	for range 3 {
		l.ChainSeq++
		l.ID = ChainedLeaseID(l.Root, l.ChainKey, l.ChainSeq)
		ids = append(ids, l.ID)
	}
	if ids[0] == ids[1] || !strings.HasPrefix(ids[2], "r-1.3.") {
		t.Fatalf("derived ids %v: want distinct ids r-1.N.tag", ids)
	}
	for _, id := range append(ids, "r-1") {
		if !l.HasChainID(id) {
			t.Errorf("HasChainID(%s) = false", id)
		}
	}
	same := &Lease{Root: "r-1", ChainKey: NewChainKey(), ChainSeq: 3}
	for _, id := range []string{
		ChainedLeaseID("r-1", l.ChainKey, 4),
		ChainedLeaseID("r-1", l.ChainKey, 0),
		ChainedLeaseID("r-1", l.ChainKey, -1),
		ChainedLeaseID("r-2", l.ChainKey, 1),
		"r-1.1." + strings.Repeat("A", 16),
		"r-1.x.tag",
		"r-1.1",
	} {
		if l.HasChainID(id) {
			t.Errorf("HasChainID(%s) = true for an id never issued", id)
		}
	}
	// The key decides: the same root and count under another key are other ids.
	if same.HasChainID(ids[0]) {
		t.Error("an id derived with another key was accepted")
	}
	// A lease from before derived ids has no key and no derived ids.
	if (&Lease{Root: "r-1", ChainSeq: 3}).DerivedChainID(ids[0]) {
		t.Error("a lease without a chain key accepted a derived id")
	}
}

// Derived ids are handed to clients and kept in their chains: their form must never change.
// These were made by the first implementation.
func TestChainedLeaseIDGolden(t *testing.T) {
	k := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	for _, c := range []struct {
		root string
		n    int64
		want string
	}{
		{"870f46a4-1faa-4847-955b-14ee5f74f3fe", 3, "870f46a4-1faa-4847-955b-14ee5f74f3fe.3.OQbgFfHzYPNYofww"},
		{"r-1", 12345678901, "r-1.12345678901.obGLjpQK31Jgz3w4"},
	} {
		if got := ChainedLeaseID(c.root, k, c.n); got != c.want {
			t.Errorf("ChainedLeaseID(%s, %d) = %s, want %s", c.root, c.n, got, c.want)
		}
	}
	l := &Lease{Root: "r-1", ChainKey: k, ChainSeq: 20000000000}
	for id, want := range map[string]bool{
		"r-1.12345678901.obGLjpQK31Jgz3w4":  true,
		"r-1.012345678901.obGLjpQK31Jgz3w4": false, // the same n, not the same id
		"r-1.+12345678901.obGLjpQK31Jgz3w4": false,
		"r-1.12345678901.obGLjpQK31Jgz3w":   false,
		"r-1.12345678901.obGLjpQK31Jgz3w4A": false,
		"r-1.12345678901.obGLjpQK31Jgz3w5":  false,
	} {
		if got := l.DerivedChainID(id); got != want {
			t.Errorf("DerivedChainID(%s) = %v, want %v", id, got, want)
		}
	}
	// crypto/hmac's own state is most of it (7 with Go 1.26); building strings around it
	// took 16.
	if n := testing.AllocsPerRun(100, func() { l.DerivedChainID("r-1.12345678901.obGLjpQK31Jgz3w4") }); n > 10 {
		t.Errorf("DerivedChainID allocates %v times", n)
	}
}
