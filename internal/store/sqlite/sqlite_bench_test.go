package sqlite

// Benchmarks of the SQLite store on a temp file: the write a new seat makes (LockLicense +
// PutSeat + SaveLicenseState in one Update), serial and with 64 parallel callers (which the
// writer group-commits), an empty Update (the floor of one commit), and the reads on the
// hot path (a lease by session key, in a View).
//
//	go test -run '^$' -bench . -benchmem ./internal/store/sqlite/

import (
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

func benchOpen(b *testing.B, opts string) *Store {
	b.Helper()
	s, _ := benchOpenAt(b, opts)
	return s
}

func benchOpenAt(b *testing.B, opts string) (*Store, string) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "leasehold.db")
	s, err := Open("sqlite://" + path + opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s, path
}

// benchLeases writes n live leases (session keys sess-0 … sess-(n-1)).
func benchLeases(b *testing.B, s *Store, n int) {
	b.Helper()
	ctx := context.Background()
	now := time.Now()
	err := s.Update(ctx, func(tx store.Tx) error {
		for i := range n {
			id := "lease-" + strconv.Itoa(i)
			if err := tx.InsertLease(ctx, &domain.Lease{
				ID: id, Root: id, Tenant: "bench", LicenseID: "lic-1", Item: "Feat",
				SeatKey: "seat-" + strconv.Itoa(i), SessionKey: "sess-" + strconv.Itoa(i), User: "alice",
				Mode: domain.ModeCache, IssuedAt: now, RenewedAt: now, ExpiresAt: now.Add(time.Hour),
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

var benchDSNs = []struct{ name, opts string }{
	{"normal", ""},
	{"full", "?synchronous=full"},
}

// benchSerialParallel runs op serially, then from 64 goroutines.
func benchSerialParallel(b *testing.B, op func(b *testing.B, s *Store, i int64)) {
	for _, d := range benchDSNs {
		b.Run(d.name, func(b *testing.B) {
			b.Run("serial", func(b *testing.B) {
				s := benchOpen(b, d.opts)
				b.ReportAllocs()
				var i int64
				for b.Loop() {
					i++
					op(b, s, i)
				}
			})
			b.Run("parallel64", func(b *testing.B) {
				s := benchOpen(b, d.opts)
				b.ReportAllocs()
				b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
				var n atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						op(b, s, n.Add(1))
					}
				})
			})
		})
	}
}

// BenchmarkStoreSeatUpdate is the store's share of a new seat.
func BenchmarkStoreSeatUpdate(b *testing.B) {
	ctx := context.Background()
	held := time.Now().Add(15 * time.Minute)
	benchSerialParallel(b, func(b *testing.B, s *Store, i int64) {
		err := s.Update(ctx, func(tx store.Tx) error {
			st, err := tx.LockLicense(ctx, "bench", "lic-1")
			if err != nil {
				return err
			}
			if err := tx.PutSeat(ctx, &domain.Seat{
				Tenant: "bench", LicenseID: "lic-1", Key: "seat-" + strconv.FormatInt(i, 10), User: "alice", HeldUntil: held,
			}); err != nil {
				return err
			}
			st.SeatsHeld++
			return tx.SaveLicenseState(ctx, st)
		})
		if err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkStoreEmptyUpdate is the cost of an Update that writes nothing: queueing to the
// writer, BEGIN/SAVEPOINT/COMMIT, answering.
func BenchmarkStoreEmptyUpdate(b *testing.B) {
	ctx := context.Background()
	benchSerialParallel(b, func(b *testing.B, s *Store, i int64) {
		if err := s.Update(ctx, func(tx store.Tx) error { return nil }); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkStoreViewLeaseBySessionKey is the lookup every /authz consumption starts with,
// among 10,000 leases, in a read transaction.
func BenchmarkStoreViewLeaseBySessionKey(b *testing.B) {
	ctx := context.Background()
	for _, hit := range []bool{true, false} {
		name := "miss"
		if hit {
			name = "hit"
		}
		b.Run(name, func(b *testing.B) {
			s := benchOpen(b, "")
			const n = 10_000
			benchLeases(b, s, n)
			b.ReportAllocs()
			var i int
			for b.Loop() {
				i++
				seat, key := "seat-"+strconv.Itoa(i%n), "sess-"+strconv.Itoa(i%n)
				if !hit {
					key = "none-" + strconv.Itoa(i)
				}
				err := s.View(ctx, func(tx store.Tx) error {
					_, err := tx.GetLeaseBySessionKey(ctx, "bench", "lic-1", seat, key)
					if hit || err != domain.ErrNotFound {
						return err
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLeaseLookupShape measures, on the store's own schema and file with 10,000
// leases, the shape of the hot lookups against a plain point lookup through the same index:
// GetLeaseBySessionKey orders by expires_at and takes one row; LatestLiveExpiryOnSeat takes
// a MAX. It uses its own connection, outside the store, so only the statement is measured.
func BenchmarkLeaseLookupShape(b *testing.B) {
	s, path := benchOpenAt(b, "")
	const n = 10_000
	benchLeases(b, s, n)
	db, err := openDB(path, connOptions{busyTimeout: 5000, queryOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	for _, q := range []struct{ name, sql string }{
		{"point", `SELECT id FROM leases WHERE tenant = ? AND license_id = ? AND seat_key = ? AND session_key = ?`},
		{"order-by-limit", `SELECT id FROM leases WHERE tenant = ? AND license_id = ? AND seat_key = ? AND session_key = ?
			ORDER BY expires_at DESC LIMIT 1`},
		{"max", `SELECT MAX(expires_at) FROM leases WHERE tenant = ? AND license_id = ? AND seat_key = ? AND session_key = ?`},
	} {
		b.Run(q.name, func(b *testing.B) {
			st, err := db.PrepareContext(ctx, q.sql)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			b.ReportAllocs()
			var i int
			for b.Loop() {
				i++
				var v any
				j := strconv.Itoa(i % n)
				if err := st.QueryRowContext(ctx, "bench", "lic-1", "seat-"+j, "sess-"+j).Scan(&v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStoreRenewLarge is the store's share of a renewal (lease by session key, the
// lease rewritten with a new chain id, its seat, a usage row, in one Update) on a random
// lease among LEASEHOLD_BENCH_LEASES (default 200,000) live ones, serially, with the
// writer's page cache at SQLite's default (2 MB) and at 64 MiB (the store's default), and
// with mmap besides. It reports p50 and p99 latency: such pragmas would be for the tail of
// large stores (proposal 9 of BENCHMARKS.md; neither helped the tail, but the larger
// cache saves the writer's preads under load, so it became the default).
func BenchmarkStoreRenewLarge(b *testing.B) {
	n := 200_000
	if v, err := strconv.Atoi(os.Getenv("LEASEHOLD_BENCH_LEASES")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	tmpl := filepath.Join(b.TempDir(), "template.db")
	s, err := Open(tmpl)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for lo := 0; lo < n; lo += 10_000 {
		err := s.Update(ctx, func(tx store.Tx) error {
			for i := lo; i < min(n, lo+10_000); i++ {
				id, seat := "lease-"+strconv.Itoa(i), "seat-"+strconv.Itoa(i)
				if err := tx.PutSeat(ctx, &domain.Seat{Tenant: "bench", LicenseID: "lic-1", Key: seat, User: "alice",
					HeldUntil: now.Add(time.Hour)}); err != nil {
					return err
				}
				if err := tx.InsertLease(ctx, &domain.Lease{
					ID: id, Root: id, Tenant: "bench", LicenseID: "lic-1", Item: "Feat", SeatKey: seat,
					SessionKey: "sess-" + strconv.Itoa(i), User: "alice", HW: "hw-" + strconv.Itoa(i),
					Mode: domain.ModeCache, IssuedAt: now, RenewedAt: now, ExpiresAt: now.Add(time.Hour),
				}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, opts string }{
		{"cache-2MB", "?cache_size=2000"},
		{"cache-64MB", "?cache_size=65536"},
		{"cache-64MB-mmap-256MB", "?cache_size=65536&mmap_size=268435456"},
	} {
		b.Run(c.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "leasehold.db")
			if err := copyFile(tmpl, path); err != nil {
				b.Fatal(err)
			}
			s, err := Open("sqlite://" + path + c.opts)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			rnd := rand.New(rand.NewPCG(1, 2))
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			var seq int64
			for b.Loop() {
				i := rnd.IntN(n)
				start := time.Now()
				err := s.Update(ctx, func(tx store.Tx) error {
					j := strconv.Itoa(i)
					l, err := tx.GetLeaseBySessionKey(ctx, "bench", "lic-1", "seat-"+j, "sess-"+j)
					if err != nil {
						return err
					}
					seq++
					l.PrevID, l.ID = l.ID, "r-"+strconv.FormatInt(seq, 10)
					l.RenewedAt, l.ExpiresAt = tx.Now(), tx.Now().Add(time.Hour)
					if err := tx.UpdateLease(ctx, l); err != nil {
						return err
					}
					seat, err := tx.GetSeat(ctx, "bench", "lic-1", l.SeatKey)
					if err != nil {
						return err
					}
					seat.HeldUntil = l.ExpiresAt
					if err := tx.PutSeat(ctx, seat); err != nil {
						return err
					}
					return tx.AppendUsage(ctx, []domain.UsageEvent{{Tenant: "bench", At: tx.Now(), LicenseID: "lic-1",
						Item: l.Item, User: l.User, HW: l.HW, LeaseID: l.ID, Event: domain.EventRenew}})
				})
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
