package jim2_test

import (
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client/internal/testserver"
	"github.com/leasehold/leasehold/client/jim2"
)

func TestMain(m *testing.M) { testserver.Main(m, "../..") }

func get(t *testing.T, hc *http.Client, url string) int {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestSession: one token serves every call and is refreshed in the background before it
// expires (the test server's access tokens live 4 s), on one session and one seat; a lost
// session is re-established and the call replayed; Close logs off.
func TestSession(t *testing.T) {
	t.Parallel()
	s := testserver.Shared(t)
	ctx := testserver.Ctx(t)
	j, err := jim2.New(ctx, jim2.Config{BaseURL: s.URL, Database: "acme", ClientID: "jim-app", ClientSecret: "s3cret", Device: "jim-1"})
	if err != nil {
		t.Fatal(err)
	}
	hc := j.HTTPClient()
	first := j.AccessToken()
	ss := s.Sessions(t, "jim-1")
	if len(ss) != 1 {
		t.Fatalf("sessions: %+v", ss)
	}
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		if code := get(t, hc, s.URL+"/entitlements/licenses"); code != 200 {
			t.Fatalf("call: %d", code)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if j.AccessToken() == first {
		t.Fatal("the access token was not refreshed in the background")
	}
	if now := s.Sessions(t, "jim-1"); len(now) != 1 || now[0].ID != ss[0].ID {
		t.Fatalf("refreshing changed the session: %+v, was %+v", now, ss)
	}

	s.Admin(t, http.MethodDelete, "/sessions/"+ss[0].ID, nil)
	if code := get(t, hc, s.URL+"/entitlements/licenses"); code != 200 {
		t.Fatalf("call after the session was lost: %d", code)
	}
	if now := s.Sessions(t, "jim-1"); len(now) != 1 || testserver.Seats(s.Leases(t, "jim-1")) != 1 {
		t.Fatalf("after re-establishing: sessions %+v", now)
	}

	if err := j.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if now := s.Sessions(t, "jim-1"); len(now) != 0 {
		t.Fatalf("sessions after Close: %+v", now)
	}
	if ls := s.Leases(t, "jim-1"); len(ls) != 0 {
		t.Fatalf("leases after Close: %+v", ls)
	}
	if _, err := hc.Get(s.URL + "/entitlements/licenses"); !errors.Is(err, jim2.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestViewScope: scope view takes no seat.
func TestViewScope(t *testing.T) {
	t.Parallel()
	s := testserver.Shared(t)
	ctx := testserver.Ctx(t)
	j, err := jim2.New(ctx, jim2.Config{BaseURL: s.URL, Database: "ACME", ClientID: "viewer", ClientSecret: "s3cret", Scope: "view", Device: "jim-view"})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close(ctx)
	if code := get(t, j.HTTPClient(), s.URL+"/entitlements/licenses"); code != 200 {
		t.Fatalf("call: %d", code)
	}
	if ss := s.Sessions(t, "jim-view"); len(ss) != 1 {
		t.Fatalf("sessions: %+v", ss)
	}
	if ls := s.Leases(t, "jim-view"); len(ls) != 0 {
		t.Fatalf("a view session holds a seat: %+v", ls)
	}
}
