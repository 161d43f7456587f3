package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The crash loop (issue 12, "Keep it closed"): a real `leasehold serve` under concurrent
// consume / renew / release from a few clients is killed with SIGKILL at random moments,
// again and again, and restarted on the same store. After each restart, with the clients
// paused, the store (through the admin API) must agree with every answer the clients
// received:
//   - no acknowledged lease lost: a lease whose grant or renewal was answered, and that was
//     not released since, is listed under the id answered, until its exp;
//   - no released lease back: an answered release is never undone, and a lease id once
//     released is never listed again;
//   - no license over its seats: the distinct seats of the live leases never exceed seats;
//   - no seat stuck past its expiry: twice per run the clients stop, every lease is left to
//     expire, and then nothing is listed, entitlements count no seat used, and exactly
//     `seats` fresh consumptions fit (the next one is refused).
//
// A request whose answer was lost (the kill) leaves its outcome open; the client model
// below keeps only what it may rely on: a lost renewal of a live lease leaves a lease live
// at least until the old exp (a refused renewal leaves the lease untouched, a committed one
// extends it); a lost new consumption or release leaves the seat unknown until the next
// answer. Each seat (hw) is driven by one client, one request at a time, so every answer
// describes the seat's state at that moment.

const crashConfig = `
listen: "{{LISTEN}}"
public_url: "{{URL}}"
store: "{{STORE}}"
admin_token: ` + crashAdminToken + `
documents: "{{DIR}}/documents"
tenants:
  - name: acme
    default: true
    organizations: [{id: org-1}]
    users: [{username: alice, password: alice-pw, organization: org-1}]
    clients: [{client_id: app, client_secret: s3cret, user: alice}]
    products: [{name: PlatformService, items: [AppFeature-XYZ]}]
    models: [{name: crash, anchors: [hw], online_lease: 4s, linger: 0s, restart_grace: 0s}]
    licenses: [{id: lic-crash, product: PlatformService, model: crash, seats: 4, owner: {organization: org-1}}]
`

const (
	crashAdminToken = "crashloop-admin-token-0123456789"
	crashSeats      = 4
	crashLease      = 4 * time.Second
	crashKills      = 20
	crashWorkers    = 3
	crashHWsPer     = 3 // 9 seats wanted on a 4-seat license: refusals all along
	// crashMargin absorbs exp's rounding to whole seconds and the time a check takes.
	crashMargin = time.Second
)

type hwState int

const (
	hwAbsent   hwState = iota // known: no live lease
	hwHeld                    // acknowledged: lease jti, live until exp
	hwRenewing                // a renewal's answer was lost: some lease lives at least until exp
	hwUnknown                 // an answer was lost: anything
)

// hwTrack is a client's view of one seat. Only its worker writes it, inside a read lock of
// the loop's gate; the checks read it under the write lock.
type hwTrack struct {
	name  string
	state hwState
	jti   string
	exp   time.Time
}

type crashLoop struct {
	t     *testing.T
	url   string
	token string
	hc    *http.Client
	gate  sync.RWMutex
	hws   [][]*hwTrack // per worker

	mu       sync.Mutex
	released map[string]bool

	granted, renewed, releasedN, refused, lost, verified atomic.Int64
}

type listedLease struct {
	ID        string    `json:"id"`
	License   string    `json:"license"`
	HW        string    `json:"hw"`
	ExpiresAt time.Time `json:"expires_at"`
}

func TestCrashLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("long: skipped with -short")
	}
	leaseholdBinary(t) // built before the clock starts
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		runCrashLoop(t, dir, "sqlite://"+filepath.Join(dir, "leasehold.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := freshPostgres(t) // skipped without LEASEHOLD_TEST_POSTGRES
		runCrashLoop(t, t.TempDir(), dsn)
	})
}

func runCrashLoop(t *testing.T, dir, storeDSN string) {
	began := time.Now()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	addr := freePort(t)
	p := startProcess(t, crashConfig, dir, storeDSN, addr)
	cl := &crashLoop{
		t: t, url: p.URL, token: ccToken(t, p.URL, "app", "s3cret", ""),
		hc:       &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: crashWorkers}},
		released: map[string]bool{},
	}
	for w := range crashWorkers {
		var own []*hwTrack
		for i := range crashHWsPer {
			own = append(own, &hwTrack{name: fmt.Sprintf("w%d-h%d", w, i)})
		}
		cl.hws = append(cl.hws, own)
	}

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range crashWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(w+1)))
			for ctx.Err() == nil {
				cl.gate.RLock()
				cl.step(r, cl.hws[w])
				cl.gate.RUnlock()
				time.Sleep(time.Duration(r.IntN(20)) * time.Millisecond)
			}
		}()
	}

	var down time.Duration // killed until ready again
	for k := range crashKills {
		time.Sleep(time.Duration(100+rng.IntN(600)) * time.Millisecond)
		p.kill() // SIGKILL, whatever the clients are doing
		killed := time.Now()
		cl.gate.Lock()
		p = startProcess(t, crashConfig, dir, storeDSN, addr)
		down += time.Since(killed)
		cl.hc.CloseIdleConnections()
		cl.check(fmt.Sprintf("restart %d", k+1))
		if k == crashKills/2 {
			cl.checkExpiry(fmt.Sprintf("restart %d", k+1))
		}
		cl.gate.Unlock()
		if t.Failed() {
			break
		}
	}
	stop()
	wg.Wait()
	cl.gate.Lock()
	cl.check("end")
	cl.checkExpiry("end")
	cl.gate.Unlock()

	t.Logf("%d kills in %v (%v down after each on average): granted %d, renewed %d, released %d, refused %d, answers lost %d, acknowledged leases found after restarts %d",
		crashKills, time.Since(began).Round(time.Millisecond), (down / crashKills).Round(time.Millisecond), cl.granted.Load(), cl.renewed.Load(), cl.releasedN.Load(),
		cl.refused.Load(), cl.lost.Load(), cl.verified.Load())
	if !t.Failed() && (cl.granted.Load() < 30 || cl.releasedN.Load() < 10 || cl.refused.Load() < 1 ||
		cl.lost.Load() < 3 || cl.verified.Load() < crashKills) {
		t.Fatal("the run proves little (too few grants, releases, refusals, lost answers or leases checked after a restart)")
	}
}

// authz sends one /authz/.json request; err is a transport error (the answer was lost).
func (cl *crashLoop) authz(query string) (map[string]any, error) {
	req, err := http.NewRequest(http.MethodGet, cl.url+"/authz/.json?"+query, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+cl.token)
	resp, err := cl.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return nil, err // cut off mid-body: lost as well
	}
	if resp.StatusCode != http.StatusOK {
		cl.t.Errorf("authz %s: HTTP %d %v", query, resp.StatusCode, m)
	}
	return m, nil
}

// step runs one request for one of the worker's seats and records what its answer proves.
func (cl *crashLoop) step(r *rand.Rand, own []*hwTrack) {
	h := own[r.IntN(len(own))]
	if h.state == hwHeld && r.IntN(10) < 3 {
		cl.release(h)
		return
	}
	q := "AppFeature-XYZ&hw=" + h.name
	if h.jti != "" {
		q += "&leaseId=" + h.jti
	}
	before := time.Now()
	m, err := cl.authz(q)
	switch {
	case err != nil:
		cl.lost.Add(1)
		if h.state == hwHeld || h.state == hwRenewing {
			h.state = hwRenewing // jti and exp kept: a lease lives at least that long
		} else {
			h.state = hwUnknown
		}
	case m["AppFeature-XYZ"] == true:
		jti, _ := m["jti"].(string)
		exp, _ := m["exp"].(float64)
		if jti == "" || exp == 0 {
			cl.t.Errorf("grant without jti or exp: %v", m)
			return
		}
		if h.state == hwHeld {
			cl.renewed.Add(1)
		} else {
			cl.granted.Add(1)
		}
		h.state, h.jti, h.exp = hwHeld, jti, time.Unix(int64(exp), 0)
		if h.exp.Before(before) || h.exp.After(time.Now().Add(crashLease+crashMargin)) {
			cl.t.Errorf("%s: exp %v outside (request time, now + online_lease]", h.name, h.exp)
		}
	case m["AppFeature-XYZ_errorCode"] == "licenseQuotaExceeded":
		// A consumption of a seat that holds a live lease renews it and is never refused
		// for want of seats: a refusal proves the seat holds none.
		if h.state == hwHeld && time.Now().Before(h.exp.Add(-crashMargin)) {
			cl.t.Errorf("%s: renewal of acknowledged lease %s (exp %v) refused with licenseQuotaExceeded: the lease was lost",
				h.name, h.jti, h.exp)
		}
		cl.refused.Add(1)
		h.state, h.jti = hwAbsent, ""
	default:
		cl.t.Errorf("%s: unexpected answer %v", h.name, m)
	}
}

func (cl *crashLoop) release(h *hwTrack) {
	id := h.jti
	m, err := cl.authz("release&" + id)
	switch {
	case err != nil:
		cl.lost.Add(1)
		h.state = hwUnknown // jti kept: the next consumption names it (ignored if released)
	case m[id+"_released"] == true:
		cl.releasedN.Add(1)
		cl.mu.Lock()
		cl.released[id] = true
		cl.mu.Unlock()
		h.state, h.jti = hwAbsent, ""
	case m[id+"_errorCode"] == "noConsumptionFoundById":
		if time.Now().Before(h.exp.Add(-crashMargin)) {
			cl.t.Errorf("%s: acknowledged lease %s (exp %v) not found at release: lost", h.name, id, h.exp)
		}
		h.state, h.jti = hwAbsent, ""
	default:
		cl.t.Errorf("%s: unexpected release answer %v", h.name, m)
	}
}

func (cl *crashLoop) leases() []listedLease {
	t := cl.t
	t.Helper()
	r := get(t, cl.url+"/admin/v1/tenants/acme/leases", crashAdminToken)
	var body struct {
		Leases []listedLease `json:"leases"`
	}
	if r.Status != http.StatusOK || json.Unmarshal([]byte(r.Body), &body) != nil {
		t.Fatalf("admin leases: %d %s", r.Status, r.Body)
	}
	return body.Leases
}

// check compares the store with every client's view; the clients are paused.
func (cl *crashLoop) check(when string) {
	t := cl.t
	t.Helper()
	now := time.Now()
	list := cl.leases()
	byHW := map[string][]listedLease{}
	for _, l := range list {
		if l.License != "lic-crash" {
			t.Errorf("%s: lease of license %q", when, l.License)
		}
		cl.mu.Lock()
		back := cl.released[l.ID]
		cl.mu.Unlock()
		if back {
			t.Errorf("%s: released lease %s (%s) is back", when, l.ID, l.HW)
		}
		byHW[l.HW] = append(byHW[l.HW], l)
	}
	if len(byHW) > crashSeats {
		t.Errorf("%s: %d seats held on a %d-seat license: %v", when, len(byHW), crashSeats, list)
	}
	for _, own := range cl.hws {
		for _, h := range own {
			got := byHW[h.name]
			if len(got) > 1 {
				t.Errorf("%s: %s holds %d leases for one session key: %v", when, h.name, len(got), got)
			}
			live := now.Before(h.exp.Add(-crashMargin))
			switch h.state {
			case hwAbsent:
				if len(got) != 0 {
					t.Errorf("%s: %s released or refused, yet lease %v is listed", when, h.name, got)
				}
			case hwHeld:
				if live {
					if !slices.ContainsFunc(got, func(l listedLease) bool { return l.ID == h.jti }) {
						t.Errorf("%s: acknowledged lease %s of %s (exp %v) lost; listed: %v", when, h.jti, h.name, h.exp, got)
					}
					cl.verified.Add(1)
				}
			case hwRenewing:
				if live && len(got) == 0 {
					t.Errorf("%s: lease of %s (renewal lost; exp at least %v) gone", when, h.name, h.exp)
				}
			}
		}
	}
}

// checkExpiry lets every lease expire (the clients are paused), then proves that no seat
// outlived its lease: nothing listed, no seat used, exactly crashSeats fresh consumptions
// granted. The seats are released again and every client starts from a free seat.
func (cl *crashLoop) checkExpiry(when string) {
	t := cl.t
	t.Helper()
	time.Sleep(crashLease + crashMargin + 500*time.Millisecond)
	if list := cl.leases(); len(list) != 0 {
		t.Errorf("%s: leases outlive their exp: %v", when, list)
	}
	if r := get(t, cl.url+"/entitlements/licenses", cl.token); !strings.Contains(r.Body, `"seats_used":0`) {
		t.Errorf("%s: seats still used after every lease expired: %s", when, r.Body)
	}
	var fresh []string
	for i := range crashSeats + 1 {
		m := authzJSON(t, cl.url, cl.token, fmt.Sprintf("AppFeature-XYZ&hw=fresh-%s-%d", strings.ReplaceAll(when, " ", ""), i))
		switch {
		case i < crashSeats && m["AppFeature-XYZ"] == true:
			fresh = append(fresh, m["jti"].(string))
		case i == crashSeats && m["AppFeature-XYZ_errorCode"] == "licenseQuotaExceeded":
		default:
			t.Errorf("%s: fresh consumption %d of %d seats after expiry: %v", when, i+1, crashSeats, m)
		}
	}
	if len(fresh) > 0 {
		m := authzJSON(t, cl.url, cl.token, "release&"+strings.Join(fresh, "&"))
		for _, id := range fresh {
			if m[id+"_released"] != true {
				t.Errorf("%s: releasing fresh lease %s: %v", when, id, m)
			}
		}
	}
	for _, own := range cl.hws {
		for _, h := range own {
			h.state, h.jti = hwAbsent, ""
		}
	}
}
