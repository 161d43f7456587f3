package sqlite

// Benchmarks of the SQLite store on a temp file: the write a new seat makes (LockLicense +
// PutSeat + SaveLicenseState in one Update), serial and with 64 parallel callers (which the
// writer group-commits), an empty Update (the floor of one commit), and the reads on the
// hot path (a lease by session key, in a View).
//
//	go test -run '^$' -bench . -benchmem ./internal/store/sqlite/

import (
	"context"
	"database/sql"
	"path/filepath"
	"runtime"
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
				key := "sess-" + strconv.Itoa(i%n)
				if !hit {
					key = "none-" + strconv.Itoa(i)
				}
				err := s.View(ctx, func(tx store.Tx) error {
					_, err := tx.GetLeaseBySessionKey(ctx, "bench", "lic-1", key)
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
	db, err := sql.Open("sqlite3", path+"?_query_only=1")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	for _, q := range []struct{ name, sql string }{
		{"point", `SELECT id FROM leases WHERE tenant = ? AND license_id = ? AND session_key = ?`},
		{"order-by-limit", `SELECT id FROM leases WHERE tenant = ? AND license_id = ? AND session_key = ? ORDER BY expires_at DESC LIMIT 1`},
		{"max", `SELECT MAX(expires_at) FROM leases WHERE tenant = ? AND license_id = ? AND session_key = ?`},
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
				if err := st.QueryRowContext(ctx, "bench", "lic-1", "sess-"+strconv.Itoa(i%n)).Scan(&v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
