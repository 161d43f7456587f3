package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// TestAnalyzeStale: a hot table that grew since its last analysis is analyzed, and then
// the key lookup of ExtendSeat probes the primary key instead of scanning the license's
// seats.
func TestAnalyzeStale(t *testing.T) {
	st := mustOpen(t, newDatabase(t), func(o *options) { o.noAnalyze = true })
	ctx := context.Background()
	until := time.Now().Add(time.Hour)
	err := st.Update(ctx, func(tx store.Tx) error {
		for i := range 2000 {
			if err := tx.PutSeat(ctx, &domain.Seat{Tenant: "acme", LicenseID: "L", Key: fmt.Sprintf("seat-%064d", i), User: "alice", HeldUntil: until}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The statistics of the inserts reach pg_stat_user_tables within about a second.
	var analyzed []string
	for deadline := time.Now().Add(10 * time.Second); !slices.Contains(analyzed, "seats") && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		if analyzed, err = st.analyzeStale(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Contains(analyzed, "seats") {
		t.Fatalf("analyzed %v, want seats", analyzed)
	}
	var plan string
	rows, err := st.pool.Query(ctx, `EXPLAIN (COSTS OFF) UPDATE seats SET held_until = GREATEST(held_until, $4), lingering = false
		WHERE tenant = $1 AND license_id = $2 AND seat_key = $3 AND (held_until < $4 OR lingering)`,
		"acme", "L", fmt.Sprintf("seat-%064d", 7), until)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan += line + "\n"
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan, "seats_pkey") {
		t.Errorf("ExtendSeat's plan after ANALYZE:\n%s\nwant the primary key", plan)
	}
	if again, err := st.analyzeStale(ctx); err != nil || slices.Contains(again, "seats") {
		t.Errorf("analyzed again right away: %v, %v", again, err)
	}
}
