// Package deploy holds the files that install Leasehold (a Dockerfile, a systemd unit);
// its tests check them as far as this machine allows.
package deploy

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnitVerifies runs systemd-analyze verify on the unit, with ExecStart pointed
// at a binary that exists here (verify refuses a missing one).
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	unit, err := os.ReadFile("leasehold.service")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(unit), "/usr/local/bin/leasehold", self)
	if text == string(unit) {
		t.Fatal("the unit does not start /usr/local/bin/leasehold")
	}
	path := filepath.Join(t.TempDir(), "leasehold.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestDockerfileSources: every path the Dockerfile copies from the build context exists,
// and it builds the command that exists (docker itself does not run here).
func TestDockerfileSources(t *testing.T) {
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var sawBuild, sawUser bool
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "COPY":
			if strings.HasPrefix(fields[1], "--from") {
				continue
			}
			for _, src := range fields[1 : len(fields)-1] {
				if _, err := os.Stat(filepath.Join("..", src)); err != nil {
					t.Errorf("COPY %s: %v", src, err)
				}
			}
		case "RUN":
			if strings.Contains(sc.Text(), "go build") {
				sawBuild = true
				pkg := fields[len(fields)-1]
				if _, err := os.Stat(filepath.Join("..", pkg, "main.go")); err != nil {
					t.Errorf("the build's package %s: %v", pkg, err)
				}
			}
		case "USER":
			sawUser = fields[1] != "root" && fields[1] != "0"
		}
	}
	if !sawBuild || !sawUser {
		t.Fatalf("the Dockerfile must build the binary (%v) and run as a non-root user (%v)", sawBuild, sawUser)
	}
}

// TestDockerfileCopiesReplacedModules: every module go.mod replaces with a local directory
// has its go.mod copied before `go mod download`, which otherwise fails to find it.
func TestDockerfileCopiesReplacedModules(t *testing.T) {
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	var local []string
	for _, line := range strings.Split(string(mod), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "replace"))
		if _, target, ok := strings.Cut(line, "=>"); ok {
			if dir := strings.TrimSpace(target); strings.HasPrefix(dir, "./") {
				local = append(local, strings.TrimPrefix(dir, "./"))
			}
		}
	}
	if len(local) == 0 {
		t.Skip("go.mod replaces no module with a local directory")
	}
	docker, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(docker)
	download := strings.Index(text, "go mod download")
	if download < 0 {
		t.Fatal("the Dockerfile runs no go mod download")
	}
	for _, dir := range local {
		if i := strings.Index(text, dir+"/go.mod"); i < 0 || i > download {
			t.Errorf("the Dockerfile does not copy %s/go.mod before go mod download", dir)
		}
	}
}
