package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Release builds stamp these with -ldflags, e.g.
//
//	go build -ldflags "-X main.version=v1.2.0 -X main.commit=$(git rev-parse HEAD) -X main.date=$(date -u +%FT%TZ)" ./cmd/leasehold
//
// A value left empty is read from the build information the Go toolchain records (the
// module version and the VCS revision, time and dirty flag of a `go build` in a checkout),
// so an ordinary build from a clone still says exactly what it was built from.
var (
	version string
	commit  string
	date    string
)

// buildVersion is what `leasehold version` reports.
type buildVersion struct {
	Version  string // module version, or "dev" when the toolchain recorded none
	Commit   string // VCS revision; empty when unknown
	Date     string // commit time (RFC 3339); empty when unknown
	Modified bool   // the working tree had uncommitted changes
	Go       string
}

// readVersion merges the -ldflags values over the recorded build information. info may
// be nil (no build information: a binary built without module support).
func readVersion(info *debug.BuildInfo, ldVersion, ldCommit, ldDate string) buildVersion {
	v := buildVersion{Version: "dev", Go: runtime.Version()}
	if info != nil {
		// "(devel)" is what go run and go test record: no version worth printing.
		if mv := info.Main.Version; mv != "" && mv != "(devel)" {
			v.Version = mv
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.time":
				v.Date = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
		if info.GoVersion != "" {
			v.Go = info.GoVersion
		}
	}
	if ldVersion != "" {
		v.Version = ldVersion
	}
	if ldCommit != "" {
		// A release stamps a clean commit; the toolchain's dirty flag is about a
		// different checkout than the one named.
		v.Commit, v.Modified = ldCommit, false
	}
	if ldDate != "" {
		v.Date = ldDate
	}
	return v
}

func currentVersion() buildVersion {
	info, _ := debug.ReadBuildInfo()
	return readVersion(info, version, commit, date)
}

func (v buildVersion) print(w io.Writer) {
	fmt.Fprintln(w, "leasehold", v.Version)
	if v.Commit != "" {
		modified := ""
		if v.Modified {
			modified = " (modified)"
		}
		fmt.Fprintf(w, "commit:  %s%s\n", v.Commit, modified)
	}
	if v.Date != "" {
		fmt.Fprintf(w, "date:    %s\n", v.Date)
	}
	fmt.Fprintf(w, "go:      %s %s/%s\n", v.Go, runtime.GOOS, runtime.GOARCH)
}
