package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestReadVersion(t *testing.T) {
	vcs := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/leasehold/leasehold", Version: "v0.0.0-20261203093000-1e8101f7c0ab+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "1e8101f7c0ab"},
			{Key: "vcs.time", Value: "2026-12-03T09:30:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	for _, tc := range []struct {
		name          string
		info          *debug.BuildInfo
		ldV, ldC, ldD string
		want          buildVersion
	}{
		{name: "no build info", want: buildVersion{Version: "dev"}},
		{name: "go run", info: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			want: buildVersion{Version: "dev", Go: "go1.26.8"}},
		{name: "go build in a checkout", info: vcs, want: buildVersion{
			Version: "v0.0.0-20261203093000-1e8101f7c0ab+dirty", Commit: "1e8101f7c0ab",
			Date: "2026-12-03T09:30:00Z", Modified: true, Go: "go1.26.8"}},
		{name: "release stamp wins", info: vcs, ldV: "v1.2.0", ldC: "abc123", ldD: "2026-12-24T00:00:00Z",
			want: buildVersion{Version: "v1.2.0", Commit: "abc123", Date: "2026-12-24T00:00:00Z", Go: "go1.26.8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := readVersion(tc.info, tc.ldV, tc.ldC, tc.ldD)
			if tc.want.Go == "" {
				tc.want.Go = got.Go // the running toolchain's
			}
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// The real binary, stamped as a release would be, prints the stamp.
func TestVersionLdflags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "leasehold")
	build := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X main.version=v9.8.7 -X main.commit=cafebabe -X main.date=2026-12-24T00:00:00Z", ".")
	build.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("leasehold version: %v\n%s", err, out)
	}
	for _, want := range []string{"leasehold v9.8.7\n", "commit:  cafebabe\n", "date:    2026-12-24T00:00:00Z\n", "go:      go"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("version output lacks %q:\n%s", want, out)
		}
	}
}
