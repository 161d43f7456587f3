package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Planner statistics. The hot statements find one row by its key (a seat by tenant,
// license and seat key), but without statistics PostgreSQL may pick another index on a
// prefix of it: an ExtendSeat on a never-analyzed seats table was measured scanning every
// seat of the license through seats_license_user (1,271 rows removed by the filter, 6 ms)
// instead of one primary-key probe (0.1 ms), so a renewal's cost grew with the license's
// seats. autovacuum analyzes a table once 50 rows + 10 % of it changed, but it may be off
// (a test server) or behind, and a fresh database grows from nothing to thousands of rows
// in its first minute. So the store checks the tables it keeps hot every analyzeEvery and
// ANALYZEs those that changed by more than analyzeMinRows + 10 % since their last analysis.
// ANALYZE samples at most 30,000 rows per table and takes a lock that blocks neither reads
// nor writes. PostgreSQL only (lazyCommit): other servers keep their own statistics. The
// check itself is one catalog query, so it runs often: on a fresh database every second of
// the first ten without statistics, grants were measured 30–40 % slower than after.
const (
	analyzeEvery   = 2 * time.Second
	analyzeMinRows = 500
)

// hotTables are the tables whose statements run on every renewal, grant or token.
var hotTables = []string{"seats", "leases", "license_state", "lease_chain", "sessions", "tokens", "session_leases"}

// analyzeLoop runs analyzeStale every analyzeEvery, the first time right away, until ctx
// ends.
func (s *Store) analyzeLoop(ctx context.Context) {
	defer close(s.analyzeDone)
	t := time.NewTicker(analyzeEvery)
	defer t.Stop()
	for {
		_, _ = s.analyzeStale(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// analyzeStale ANALYZEs the hot tables that changed enough since their last analysis and
// returns their names.
func (s *Store) analyzeStale(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT relname FROM pg_stat_user_tables
		WHERE schemaname = current_schema() AND relname = ANY($1)
			AND n_mod_since_analyze > $2 + 0.1 * n_live_tup`, hotTables, analyzeMinRows)
	if err != nil {
		return nil, err
	}
	stale, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	for _, name := range stale {
		if _, err := s.pool.Exec(ctx, `ANALYZE `+pgx.Identifier{name}.Sanitize()); err != nil {
			return nil, err
		}
	}
	return stale, nil
}
