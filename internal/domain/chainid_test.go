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
