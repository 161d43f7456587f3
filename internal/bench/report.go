package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Target is a goal of issue 6 for a scenario, relative to the baseline of the same run.
type Target struct {
	MinRatio    float64 // OK requests/s at least this share of the baseline's
	MaxP99Ratio float64 // p99 at most this multiple of the baseline's (0: no bound)
	NoErrors    bool
}

// Targets are issue 6's goals on the 2-core reference machine, at 64 connections.
var Targets = map[string]Target{
	"renew":      {MinRatio: 0.4, MaxP99Ratio: 3},
	"consume":    {MinRatio: 0.3, NoErrors: true},
	"jwt-renew":  {MinRatio: 0.25},
	"token":      {MinRatio: 0.15},
	"introspect": {MinRatio: 0.4},
	// Issue 13: admitted requests through a gateway at half the upstream's own throughput.
	"gateway": {MinRatio: 0.5},
}

func (t Target) String() string {
	s := fmt.Sprintf("≥%.2f×", t.MinRatio)
	if t.MaxP99Ratio > 0 {
		s += fmt.Sprintf(", p99≤%.0f×", t.MaxP99Ratio)
	}
	if t.NoErrors {
		s += ", no errors"
	}
	return s
}

// Machine describes where a run happened.
type Machine struct {
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpu_model"`
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	Time       string `json:"time"`
}

// ThisMachine describes the machine the load generator runs on (the server's, on loopback).
func ThisMachine() Machine {
	return Machine{
		CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), CPUModel: cpuModel(),
		GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH,
		Time: time.Now().UTC().Format(time.RFC3339),
	}
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Row is one scenario of a comparison, relative to the run's baseline.
type Row struct {
	*Result
	Ratio    float64 `json:"ratio"`     // OK requests/s ÷ the baseline's
	P99Ratio float64 `json:"p99_ratio"` // p99 ÷ the baseline's
	Target   string  `json:"target,omitempty"`
	Met      *bool   `json:"met,omitempty"`
	// Shortfall is how far the throughput is from its target, as a factor (1.6 = needs 1.6×).
	Shortfall float64 `json:"shortfall,omitempty"`
}

// Comparison is a baseline measured before and after a list of scenarios, each scenario
// reported as a ratio to the baselines' mean.
type Comparison struct {
	Machine     Machine   `json:"machine"`
	Baselines   []*Result `json:"baselines"`
	BaselineRPS float64   `json:"baseline_ok_per_sec"`
	BaselineP99 float64   `json:"baseline_p99_ms"`
	Rows        []Row     `json:"results"`
}

// Compare measures the baseline at baselineURL, then each scenario against cfg.URL, then
// the baseline again, all with cfg's client settings, pausing between runs so that one
// run's backlog (WAL checkpoints, sweeps) falls less on the next.
func Compare(ctx context.Context, cfg Config, baselineURL string, names []string, pause time.Duration) (*Comparison, error) {
	cmp := &Comparison{Machine: ThisMachine()}
	base := cfg
	base.URL, base.Scenario = baselineURL, "baseline"
	runBaseline := func() error {
		res, err := Run(ctx, base)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		cmp.Baselines = append(cmp.Baselines, res)
		return nil
	}
	if err := runBaseline(); err != nil {
		return nil, err
	}
	for _, name := range names {
		if name == "baseline" {
			continue
		}
		sleep(ctx, pause)
		c := cfg
		c.Scenario = name
		res, err := Run(ctx, c)
		if err != nil {
			return nil, err
		}
		cmp.Rows = append(cmp.Rows, Row{Result: res})
	}
	sleep(ctx, pause)
	if err := runBaseline(); err != nil {
		return nil, err
	}
	var rps, p99 float64
	for _, b := range cmp.Baselines {
		rps += b.OKPerSec
		p99 += b.Latency.P99
	}
	cmp.BaselineRPS = rps / float64(len(cmp.Baselines))
	cmp.BaselineP99 = p99 / float64(len(cmp.Baselines))
	for i := range cmp.Rows {
		cmp.Rows[i].judge(cmp.BaselineRPS, cmp.BaselineP99)
	}
	return cmp, nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

func (row *Row) judge(baseRPS, baseP99 float64) {
	if row.Skipped != "" {
		return
	}
	if baseRPS > 0 {
		row.Ratio = row.OKPerSec / baseRPS
	}
	if baseP99 > 0 {
		row.P99Ratio = row.Latency.P99 / baseP99
	}
	t, ok := Targets[row.Scenario]
	if !ok {
		return
	}
	row.Target = t.String()
	met := row.Ratio >= t.MinRatio &&
		(t.MaxP99Ratio == 0 || row.P99Ratio <= t.MaxP99Ratio) &&
		(!t.NoErrors || row.ErrorCount() == 0)
	row.Met = &met
	if row.Ratio > 0 && row.Ratio < t.MinRatio {
		row.Shortfall = t.MinRatio / row.Ratio
	}
}

// WriteText writes one result as a few human lines.
func WriteText(w io.Writer, r *Result) {
	if r.Skipped != "" {
		fmt.Fprintf(w, "%s: skipped: %s\n", r.Scenario, r.Skipped)
		return
	}
	fmt.Fprintf(w, "%s against %s, %d connections, %.1fs measured\n", r.Scenario, r.Target, r.Connections, r.Seconds)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	fmt.Fprintf(w, "  requests  %d (%d ops), %d ok, %d errors\n", r.Requests, r.Ops, r.OK, r.ErrorCount())
	fmt.Fprintf(w, "  throughput %.0f req/s (%.0f ok/s)\n", r.RequestsPerSec, r.OKPerSec)
	l := r.Latency
	fmt.Fprintf(w, "  latency ms mean %.3f  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", l.Mean, l.P50, l.P90, l.P99, l.Max)
	writeErrors(w, r.Errors)
}

func writeErrors(w io.Writer, errs map[string]int64) {
	kinds := make([]string, 0, len(errs))
	for k := range errs {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return errs[kinds[i]] > errs[kinds[j]] })
	for _, k := range kinds {
		fmt.Fprintf(w, "  error %-40s %d\n", k, errs[k])
	}
}

// WriteComparison writes the comparison as a table with the ratio columns.
func WriteComparison(w io.Writer, c *Comparison) {
	m := c.Machine
	fmt.Fprintf(w, "machine: %d CPUs (GOMAXPROCS %d), %s, %s, %s\n", m.CPUs, m.GOMAXPROCS, m.CPUModel, m.GoVersion, m.OS)
	for i, b := range c.Baselines {
		fmt.Fprintf(w, "baseline %d: %.0f ok/s, p99 %.3f ms\n", i+1, b.OKPerSec, b.Latency.P99)
	}
	fmt.Fprintf(w, "baseline (mean): %.0f ok/s, p99 %.3f ms\n\n", c.BaselineRPS, c.BaselineP99)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tok/s\tratio\tp50 ms\tp90 ms\tp99 ms\tp99×\tmax ms\terrors\ttarget\tmet\t")
	for _, r := range c.Rows {
		if r.Skipped != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t-\t%s\tskipped\t\n", r.Scenario, r.Target)
			continue
		}
		met := ""
		if r.Met != nil {
			met = "yes"
			if !*r.Met {
				met = "NO"
				if r.Shortfall > 0 {
					met += fmt.Sprintf(" (%.1f× short)", r.Shortfall)
				}
			}
		}
		l := r.Latency
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%.3f\t%.3f\t%.3f\t%.1f\t%.1f\t%d\t%s\t%s\t\n",
			r.Scenario, r.OKPerSec, r.Ratio, l.P50, l.P90, l.P99, r.P99Ratio, l.Max, r.ErrorCount(), r.Target, met)
	}
	tw.Flush()
	for _, r := range c.Rows {
		if r.Skipped != "" {
			fmt.Fprintf(w, "\n%s: skipped: %s", r.Scenario, r.Skipped)
			continue
		}
		if len(r.Errors) > 0 || len(r.Notes) > 0 {
			fmt.Fprintf(w, "\n%s:\n", r.Scenario)
			for _, n := range r.Notes {
				fmt.Fprintf(w, "  note: %s\n", n)
			}
			writeErrors(w, r.Errors)
		}
	}
	fmt.Fprintln(w)
}
