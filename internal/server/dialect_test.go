package server

import (
	"slices"
	"testing"

	"github.com/leasehold/leasehold/internal/config"
)

// TestDialectRegistry: the configuration accepts exactly the dialects that registered
// themselves, and every one of them mounts beside the other routes (ServeMux panics on a
// conflicting pattern).
func TestDialectRegistry(t *testing.T) {
	want := slices.Sorted(slices.Values(config.Dialects))
	if got := dialectNames(); !slices.Equal(got, want) {
		t.Fatalf("registered dialects %v, config.Dialects %v", got, want)
	}
	for _, name := range dialectNames() {
		d := dialects[name]
		if len(d.routes)+len(d.tenantRoutes) == 0 {
			t.Errorf("dialect %s has no routes", name)
		}
	}
	New(Options{}, Deps{})
}
