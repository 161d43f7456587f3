package client

import (
	"context"
	"github.com/leasehold/leasehold/client/internal/testserver"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCLI runs `leasehold client …` (the server binary's client subcommands, built on this
// package) against the shared server.
func TestCLI(t *testing.T) {
	t.Parallel()
	s := testserver.Shared(t)
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, testserver.Bin, append([]string{"client"}, args...)...)
		cmd.Env = append(cmd.Environ(), "LEASEHOLD_CLIENT_SECRET=s3cret")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	conn := []string{"--url", s.URL, "--client-id", "cli-app", "--device", "cli-1"}
	out, err := run(append([]string{"consume", "--item", "AppFeature-XYZ", "--hold", "4s"}, conn...)...)
	if err != nil {
		t.Fatalf("consume: %v\n%s", err, out)
	}
	for _, want := range []string{"AppFeature-XYZ: granted (online) lease=", "holding for 4s", "AppFeature-XYZ: Renewed lease=", "AppFeature-XYZ: released"} {
		if !strings.Contains(out, want) {
			t.Errorf("consume output lacks %q:\n%s", want, out)
		}
	}
	if ls := s.Leases(t, "cli-1"); len(ls) != 0 {
		t.Fatalf("leases after the command: %+v", ls)
	}

	out, err = run(append([]string{"check", "--item", "AppFeature-ABC", "--item", "NoSuchItem"}, conn...)...)
	if err == nil || !strings.Contains(out, "AppFeature-ABC: available") || !strings.Contains(out, "NoSuchItem: refused (noLicenseFound)") {
		t.Fatalf("check: %v\n%s", err, out)
	}

	// A checkout lease kept in a state directory, then released from it.
	dir := t.TempDir()
	out, err = run(append([]string{"consume", "--item", "AppFeature-ABC", "--checkout", "10m", "--state-dir", dir}, conn...)...)
	if err != nil || !strings.Contains(out, "AppFeature-ABC: granted (checkout)") {
		t.Fatalf("checkout: %v\n%s", err, out)
	}
	if ls := s.Leases(t, "cli-1"); len(testserver.ItemLeases(ls, "AppFeature-ABC")) != 1 {
		t.Fatalf("checkout lease not held: %+v", ls)
	}
	out, err = run(append([]string{"release", "--item", "AppFeature-ABC", "--state-dir", dir}, conn...)...)
	if err != nil || !strings.Contains(out, "AppFeature-ABC: released") {
		t.Fatalf("release: %v\n%s", err, out)
	}
	if ls := s.Leases(t, "cli-1"); len(ls) != 0 {
		t.Fatalf("leases after release: %+v", ls)
	}
	if out, err := run("bogus"); err == nil {
		t.Fatalf("unknown command accepted: %s", out)
	}
}
