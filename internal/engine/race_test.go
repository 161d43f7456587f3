package engine_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
)

// race runs n consumptions at once and counts the answers by code ("" for a grant).
func (h *harness) race(n int, r func(i int) engine.Request) map[domain.ErrorCode]int {
	h.t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[domain.ErrorCode]int{}
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := h.eng.Consume(h.ctx, r(i))
			if err != nil {
				errs <- err
				return
			}
			code := domain.ErrorCode("")
			if res[0].Err != nil {
				code = res[0].Err.Code
			} else if res[0].Lease == nil {
				code = "no lease"
			}
			mu.Lock()
			got[code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		h.t.Fatal(err)
	}
	return got
}

func TestRaceForSeats(t *testing.T) {
	h := newHarness(t)
	h.setup(10, func(m *domain.LicenseModel) { m.Anchors = []string{"user", "hw"} })
	got := h.race(200, func(i int) engine.Request { return req("alice", "FeatA", hw(fmt.Sprint("hw-", i))) })
	if got[""] != 10 || got[domain.CodeQuotaExceeded] != 190 || len(got) != 2 {
		t.Errorf("answers: %v; want 10 grants and 190 licenseQuotaExceeded", got)
	}
	if st := h.state("L1"); st.SeatsHeld != 10 || h.liveSeats("L1") != 10 || len(h.leases()) != 10 {
		t.Errorf("SeatsHeld %d, live seats %d, leases %d; want 10", st.SeatsHeld, h.liveSeats("L1"), len(h.leases()))
	}
}

func TestRaceSharedSeat(t *testing.T) {
	h := newHarness(t)
	h.setup(10, func(m *domain.LicenseModel) {
		m.Anchors = []string{"user"}
		m.SessionsPerSeat = 5
	})
	got := h.race(200, func(i int) engine.Request { return req("alice", "FeatA", process(fmt.Sprint("p-", i))) })
	if got[""] != 5 || got[domain.CodeMaxSessions] != 195 || len(got) != 2 {
		t.Errorf("answers: %v; want 5 grants and 195 maxConcurrentSessionsExceed", got)
	}
	if st := h.state("L1"); st.SeatsHeld != 1 || h.liveSeats("L1") != 1 {
		t.Errorf("SeatsHeld %d, live seats %d; want 1", st.SeatsHeld, h.liveSeats("L1"))
	}
}

// TestRaceQueued: waiters racing for seats that are released one by one all get one, and
// the license never holds more than its seats.
func TestRaceQueued(t *testing.T) {
	h := newHarness(t)
	h.setup(2, func(m *domain.LicenseModel) {
		m.Anchors = []string{"user", "hw"}
		m.Linger = 0
	})
	var held []*domain.Lease
	for i := range 2 {
		held = append(held, h.grant(req("alice", "FeatA", hw(fmt.Sprint("first-", i)))))
	}
	var wg sync.WaitGroup
	results := make(chan engine.Result, 6)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := h.eng.Consume(h.ctx, req("bob", "FeatA", hw(fmt.Sprint("w-", i)), queue(20e9)))
			if err != nil {
				t.Error(err)
				return
			}
			results <- res[0]
		}()
	}
	for range 3 {
		for _, l := range held {
			if r := h.release(l.User, l.ID); r[0].Err != nil {
				t.Fatalf("release: %v", r[0].Err)
			}
		}
		held = held[:0]
		for range 2 {
			r := <-results
			if r.Err != nil {
				t.Fatalf("waiter: %v", r.Err)
			}
			held = append(held, r.Lease)
			if n := h.liveSeats("L1"); n > 2 {
				t.Fatalf("%d seats held", n)
			}
		}
	}
	wg.Wait()
}
