package ui_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/store/postgres/pgtest"
	"github.com/leasehold/leasehold/internal/ui"
)

// seedLeases gives lic-1 n live leases, each on a seat of its own, written straight to the
// store (the engine would take minutes to grant them one by one on a shared machine).
func seedLeases(t testing.TB, s *server, n int) {
	t.Helper()
	ctx := context.Background()
	err := s.App.Store.Update(ctx, func(tx store.Tx) error {
		now := tx.Now()
		st, err := tx.LockLicense(ctx, "acme", "lic-1")
		if err != nil {
			return err
		}
		for i := range n {
			key := fmt.Sprintf("seat-%06d", i)
			if err := tx.PutSeat(ctx, &domain.Seat{Tenant: "acme", LicenseID: "lic-1", Key: key, User: "alice",
				HeldUntil: now.Add(time.Hour)}); err != nil {
				return err
			}
			id := fmt.Sprintf("lease-%06d", i)
			if err := tx.InsertLease(ctx, &domain.Lease{ID: id, Root: id, Tenant: "acme", LicenseID: "lic-1", Item: "Feature",
				SeatKey: key, SessionKey: "sk-" + key, User: "alice", Client: "app", HW: fmt.Sprintf("hw-%06d", i),
				Mode: domain.ModeCache, IssuedAt: now, RenewedAt: now, ExpiresAt: now.Add(time.Hour),
				RefreshAt: now.Add(45 * time.Minute)}); err != nil {
				return err
			}
		}
		st.SeatsHeld += n
		return tx.SaveLicenseState(ctx, st)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestLicensePagePaginates: a license with thousands of leases shows a page of seats with a
// link to the next, and the next page starts where the first ended.
func TestLicensePagePaginates(t *testing.T) {
	s := start(t, true)
	c := browser(t)
	signIn(t, s, c)
	seedLeases(t, s, 2*ui.SeatsPerPage+10)
	_, body := get(t, c, s.URL+"/ui/t/acme/licenses/lic-1")
	if n := strings.Count(body, ">End</button></form></td>"); n != ui.SeatsPerPage {
		t.Errorf("first page shows %d leases, want %d", n, ui.SeatsPerPage)
	}
	if !strings.Contains(body, "210 of 5 seats held") || !strings.Contains(body, "lease-000099") || strings.Contains(body, "lease-000100") {
		t.Error("first page: wrong summary or seats")
	}
	next := regexpFind(body, `href="(/ui/t/acme/licenses/lic-1\?after=[^"]+)" rel="next"`)
	if next == "" {
		t.Fatal("no next page link")
	}
	_, body = get(t, c, s.URL+strings.ReplaceAll(next, "&amp;", "&"))
	if !strings.Contains(body, "lease-000100") || strings.Contains(body, "lease-000099") || !strings.Contains(body, "First page") {
		t.Error("second page does not start after the first")
	}
}

func regexpFind(s, re string) string {
	m := regexpMust(re).FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return m[1]
}

// BenchmarkLicensePage10k renders, over HTTP, pages of a license with 10,000 live leases
// (SPEC §10 asks for under 0.5 s): the first page, one in the middle, and the JSON twin the
// script polls. BENCHMARKS.md has the figures.
func BenchmarkLicensePage10k(b *testing.B) { benchLicensePage(b, "") }

// BenchmarkLicensePage10kPostgres is the same on PostgreSQL (LEASEHOLD_TEST_POSTGRES).
func BenchmarkLicensePage10kPostgres(b *testing.B) {
	benchLicensePage(b, pgtest.FreshDatabase(b, "lh_ui_bench_"))
}

func benchLicensePage(b *testing.B, storeDSN string) {
	s := startOn(b, true, storeDSN)
	c := browser(b)
	signIn(b, s, c)
	seedLeases(b, s, 10000)
	for _, bc := range []struct{ name, query string }{
		{"first", ""},
		{"middle", "?after=seat-005000"},
		{"json", "?format=json"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			u := s.URL + "/ui/t/acme/licenses/lic-1" + bc.query
			for b.Loop() {
				resp, err := c.Get(u)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatal(resp.Status)
				}
			}
		})
	}
}
