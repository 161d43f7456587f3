package keeper_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/leasehold/leasehold/client/internal/keeper"
)

// The background loop must be gone after Close: a leaked goroutine fails the package.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errClosed = errors.New("fake: session closed")

// vendor is a fake protocol and API server: it issues numbered access tokens, answers
// 200 to a request carrying a valid one and 401 otherwise, and counts what it is asked.
type vendor struct {
	t   *testing.T
	srv *httptest.Server

	mu         sync.Mutex
	n          int
	valid      map[string]bool
	logins     int
	refreshes  []time.Time
	loggedOff  []string
	life       time.Duration
	refreshErr error         // the answer to refreshes when set
	refreshed  chan struct{} // gets a value at every refresh, when set
	hold       chan struct{} // when set, a 401 is answered only once it is closed
	arrived    chan struct{} // gets a value for every request held
	idle       int
}

func newVendor(t *testing.T, life time.Duration) *vendor {
	v := &vendor{t: t, valid: map[string]bool{}, life: life}
	v.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		v.mu.Lock()
		ok, hold := v.valid[tok], v.hold
		v.mu.Unlock()
		if !ok {
			if hold != nil {
				v.arrived <- struct{}{}
				<-hold
			}
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, tok)
	}))
	t.Cleanup(v.srv.Close)
	return v
}

// issue makes a new valid access token.
func (v *vendor) issue() keeper.Tokens {
	v.n++
	t := keeper.Tokens{Access: fmt.Sprintf("a%d", v.n), Refresh: fmt.Sprintf("r%d", v.n), Life: v.life}
	v.valid[t.Access] = true
	return t
}

// revoke makes every access token issued so far invalid.
func (v *vendor) revoke() {
	v.mu.Lock()
	defer v.mu.Unlock()
	clear(v.valid)
}

func (v *vendor) config() keeper.Config {
	return keeper.Config{
		Login: func(ctx context.Context) (keeper.Tokens, error) {
			v.mu.Lock()
			defer v.mu.Unlock()
			v.logins++
			return v.issue(), nil
		},
		Refresh: func(ctx context.Context, rt string) (keeper.Tokens, error) {
			v.mu.Lock()
			v.refreshes = append(v.refreshes, time.Now())
			err, ch := v.refreshErr, v.refreshed
			var t keeper.Tokens
			if err == nil {
				t = v.issue()
			}
			v.mu.Unlock()
			if ch != nil {
				ch <- struct{}{}
			}
			return t, err
		},
		Logoff: func(ctx context.Context, access string) error {
			v.mu.Lock()
			defer v.mu.Unlock()
			v.loggedOff = append(v.loggedOff, access)
			return nil
		},
		DefaultLife: time.Hour,
		Next:        http.DefaultTransport,
		CloseIdle:   func() { v.mu.Lock(); v.idle++; v.mu.Unlock() },
		ErrClosed:   errClosed,
	}
}

func (v *vendor) counts() (logins, refreshes int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.logins, len(v.refreshes)
}

func start(t *testing.T, cfg keeper.Config) *keeper.Keeper {
	t.Helper()
	k, err := keeper.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close(context.Background()) })
	return k
}

// get calls the vendor's API through k; it returns the status and the token the server
// accepted.
func get(t *testing.T, k *keeper.Keeper, url string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Transport: k}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestOneRenewalForConcurrent401s: two requests refused together with the same stale token
// cause one refresh; the second finds the token replaced and replays with the new one.
func TestOneRenewalForConcurrent401s(t *testing.T) {
	v := newVendor(t, time.Hour)
	k := start(t, v.config())
	v.revoke()
	hold := make(chan struct{})
	v.mu.Lock()
	v.hold, v.arrived = hold, make(chan struct{}, 2)
	v.mu.Unlock()

	type answer struct {
		code int
		tok  string
	}
	answers := make(chan answer, 2)
	for range 2 {
		go func() {
			resp, err := (&http.Client{Transport: k}).Get(v.srv.URL)
			if err != nil {
				answers <- answer{}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers <- answer{resp.StatusCode, string(b)}
		}()
	}
	// Both requests are at the server with the stale token before either is refused.
	for i := range 2 {
		select {
		case <-v.arrived:
		case <-time.After(5 * time.Second):
			t.Fatalf("request %d did not arrive", i+1)
		}
	}
	close(hold)
	for range 2 {
		a := <-answers
		if a.code != http.StatusOK || a.tok != "a2" {
			t.Errorf("answer %d with token %q, want 200 with a2", a.code, a.tok)
		}
	}
	if logins, refreshes := v.counts(); logins != 1 || refreshes != 1 {
		t.Fatalf("logins %d, refreshes %d; want 1 and 1", logins, refreshes)
	}
}

// TestRenewal: a 401 refreshes the session; a failed refresh falls back to a new login
// unless Config.Final says the error is final; a session without a refresh token logs in.
func TestRenewal(t *testing.T) {
	errFinal := errors.New("no license")
	for _, tc := range []struct {
		name        string
		refreshErr  error
		noRefresh   bool
		wantCode    int
		wantLogins  int
		wantRefresh int
	}{
		{name: "refresh", wantCode: 200, wantLogins: 1, wantRefresh: 1},
		{name: "failed refresh logs in", refreshErr: errors.New("refused"), wantCode: 200, wantLogins: 2, wantRefresh: 1},
		{name: "final refresh error", refreshErr: errFinal, wantCode: 401, wantLogins: 1, wantRefresh: 1},
		{name: "no refresh token logs in", noRefresh: true, wantCode: 200, wantLogins: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVendor(t, time.Hour)
			v.refreshErr = tc.refreshErr
			cfg := v.config()
			cfg.Final = func(err error) bool { return errors.Is(err, errFinal) }
			if tc.noRefresh {
				login := cfg.Login
				cfg.Login = func(ctx context.Context) (keeper.Tokens, error) {
					t, err := login(ctx)
					t.Refresh = ""
					return t, err
				}
			}
			k := start(t, cfg)
			v.revoke()
			if code, _ := get(t, k, v.srv.URL); code != tc.wantCode {
				t.Errorf("status %d, want %d", code, tc.wantCode)
			}
			if logins, refreshes := v.counts(); logins != tc.wantLogins || refreshes != tc.wantRefresh {
				t.Errorf("logins %d, refreshes %d; want %d and %d", logins, refreshes, tc.wantLogins, tc.wantRefresh)
			}
		})
	}
}

// TestLoopRenewsBeforeExpiry: the background loop refreshes at 80 % of the tokens' life
// (or MaxInterval after they were issued, when that is sooner), and goes on doing so.
func TestLoopRenewsBeforeExpiry(t *testing.T) {
	for _, tc := range []struct {
		name     string
		life     time.Duration
		max      time.Duration
		min, due time.Duration // the first refresh comes between min and due (expiry) after login
	}{
		{name: "80 % of life", life: 2 * time.Second, min: 1200 * time.Millisecond, due: 2 * time.Second},
		{name: "MaxInterval", life: time.Hour, max: time.Second, min: 800 * time.Millisecond, due: 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVendor(t, tc.life)
			v.refreshed = make(chan struct{}, 10)
			cfg := v.config()
			cfg.MaxInterval = tc.max
			began := time.Now()
			k := start(t, cfg)
			for i := range 2 {
				select {
				case <-v.refreshed:
				case <-time.After(5 * time.Second):
					t.Fatalf("no refresh %d", i+1)
				}
			}
			v.mu.Lock()
			first := v.refreshes[0].Sub(began)
			v.mu.Unlock()
			if first < tc.min || first > tc.due {
				t.Errorf("first refresh after %v, want between %v and %v", first, tc.min, tc.due)
			}
			// The refreshed token is installed just after the refresh returns.
			for end := time.Now().Add(time.Second); k.AccessToken() == "a2" && time.Now().Before(end); {
				time.Sleep(10 * time.Millisecond)
			}
			if got := k.AccessToken(); got != "a3" {
				t.Errorf("access token %q after two refreshes, want a3", got)
			}
		})
	}
}

// TestLoopRetries: a failed background renewal is retried (with backoff).
func TestLoopRetries(t *testing.T) {
	v := newVendor(t, 200*time.Millisecond)
	v.refreshed = make(chan struct{}, 10)
	v.refreshErr = errors.New("unreachable")
	cfg := v.config()
	cfg.Final = func(error) bool { return true } // no login: the refresh is retried
	start(t, cfg)
	for i := range 2 {
		select {
		case <-v.refreshed:
		case <-time.After(5 * time.Second):
			t.Fatalf("no refresh attempt %d", i+1)
		}
	}
}

// TestInteractiveLoopNeverLogsIn: with an interactive Login, the loop refreshes but never
// logs in, neither without a refresh token nor after a failed refresh: a request's 401
// does.
func TestInteractiveLoopNeverLogsIn(t *testing.T) {
	for _, tc := range []struct {
		name       string
		noRefresh  bool
		refreshErr error
	}{
		{name: "no refresh token", noRefresh: true},
		{name: "failed refresh", refreshErr: errors.New("refused")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVendor(t, 100*time.Millisecond)
			v.refreshErr = tc.refreshErr
			cfg := v.config()
			cfg.Interactive = true
			if tc.noRefresh {
				cfg.Refresh = nil
			}
			k := start(t, cfg)
			time.Sleep(400 * time.Millisecond)
			if logins, _ := v.counts(); logins != 1 {
				t.Fatalf("logins %d, want 1", logins)
			}
			v.revoke()
			code, tok := get(t, k, v.srv.URL)
			v.mu.Lock()
			logins, last := v.logins, fmt.Sprintf("a%d", v.n)
			v.mu.Unlock()
			if code != 200 || tok != last || logins != 2 {
				t.Fatalf("after a 401: %d with %q, %d logins; want 200 with %s, 2 logins", code, tok, logins, last)
			}
		})
	}
}

// TestClose: Close logs off once with the last access token, stops the loop (goleak in
// TestMain), closes idle connections once, and later requests get ErrClosed.
func TestClose(t *testing.T) {
	v := newVendor(t, 200*time.Millisecond)
	v.refreshed = make(chan struct{}, 100)
	k := start(t, v.config())
	<-v.refreshed // a2
	if err := k.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, before := v.counts()
	time.Sleep(500 * time.Millisecond) // more than two renewal periods
	if _, after := v.counts(); after != before {
		t.Errorf("%d refreshes after Close", after-before)
	}
	v.mu.Lock()
	if last := fmt.Sprintf("a%d", v.n); len(v.loggedOff) != 1 || v.loggedOff[0] != last || v.idle != 1 {
		t.Errorf("logged off %q, idle closed %d times; want [%s] and 1", v.loggedOff, v.idle, last)
	}
	v.mu.Unlock()
	if _, err := (&http.Client{Transport: k}).Get(v.srv.URL); !errors.Is(err, errClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}

// TestCloseDuringRenewal: a renewal under way when Close begins is cancelled, no login
// follows it, and the logoff comes after it with the last token.
func TestCloseDuringRenewal(t *testing.T) {
	v := newVendor(t, time.Hour)
	cfg := v.config()
	inRefresh := make(chan struct{})
	cfg.Refresh = func(ctx context.Context, rt string) (keeper.Tokens, error) {
		close(inRefresh)
		<-ctx.Done()
		return keeper.Tokens{}, ctx.Err()
	}
	k := start(t, cfg)
	v.revoke()
	got := make(chan int)
	go func() {
		resp, err := (&http.Client{Transport: k}).Get(v.srv.URL)
		if err != nil {
			got <- 0
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	<-inRefresh
	closed := make(chan error, 1)
	go func() { closed <- k.Close(context.Background()) }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close waits for the renewal under way instead of cancelling it")
	}
	if code := <-got; code != http.StatusUnauthorized {
		t.Errorf("the request whose renewal Close cancelled got %d, want its 401", code)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.logins != 1 || len(v.loggedOff) != 1 || v.loggedOff[0] != "a1" {
		t.Fatalf("logins %d, logged off %q; want 1 and [a1]", v.logins, v.loggedOff)
	}
}

// TestLoginFails: New returns Login's error, having closed the idle connections.
func TestLoginFails(t *testing.T) {
	v := newVendor(t, time.Hour)
	cfg := v.config()
	errNo := errors.New("no seat")
	cfg.Login = func(context.Context) (keeper.Tokens, error) { return keeper.Tokens{}, errNo }
	if _, err := keeper.New(context.Background(), cfg); !errors.Is(err, errNo) {
		t.Fatalf("New: %v", err)
	}
	if v.idle != 1 {
		t.Fatalf("idle connections closed %d times, want 1", v.idle)
	}
}
