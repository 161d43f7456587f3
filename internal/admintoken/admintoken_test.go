package admintoken

import (
	"net/netip"
	"testing"

	"github.com/leasehold/leasehold/internal/secret"
)

func TestGuard(t *testing.T) {
	phc, err := secret.Hash("the-hashed-admin-token-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	g := New("the-plain-admin-token-0123456789", phc)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for _, tok := range []string{"the-plain-admin-token-0123456789", "the-hashed-admin-token-0123456789"} {
		if ok, _ := g.Check(tok, a); !ok {
			t.Fatalf("%s refused", tok)
		}
	}
	if ok, _ := g.Check("metrics", a, "metrics"); !ok {
		t.Fatal("an also-token refused")
	}
	if ok, _ := g.Check("", netip.MustParseAddr("192.0.2.3"), ""); ok {
		t.Fatal("an empty token accepted")
	}
	for i := 0; i < Free; i++ {
		if ok, retry := g.Check("guess", a); ok || retry != 0 {
			t.Fatalf("guess %d: %v %v", i, ok, retry)
		}
	}
	if ok, retry := g.Check("the-plain-admin-token-0123456789", a); ok || retry <= 0 {
		t.Fatalf("after %d wrong tokens the address must wait: %v %v", Free, ok, retry)
	}
	if ok, _ := g.Check("the-plain-admin-token-0123456789", b); !ok {
		t.Fatal("another address is held back")
	}
	if New("", "").Configured() || !g.Configured() {
		t.Fatal("Configured")
	}
}
