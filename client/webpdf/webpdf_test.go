package webpdf_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client/internal/testserver"
	"github.com/leasehold/leasehold/client/webpdf"
)

func TestMain(m *testing.M) { testserver.Main(m, "../..") }

// TestSession: the session (and its document storage) is kept across calls and extended
// in the background before expiresIn (4 s on the test server); a lost session is logged
// in again on the same device (one seat) and the call replayed; Close logs out.
func TestSession(t *testing.T) {
	t.Parallel()
	s := testserver.Shared(t)
	ctx := testserver.Ctx(t)
	wp, err := webpdf.New(ctx, webpdf.Config{BaseURL: s.URL + "/webPDF", UserName: "alice", Password: "alice-pw", Device: "wp-1"})
	if err != nil {
		t.Fatal(err)
	}
	hc := wp.HTTPClient()
	first := wp.AccessToken()
	put := func(name, body string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, s.URL+"/session/documents/"+name, bytes.NewReader([]byte(body)))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("PUT %s: %d", name, resp.StatusCode)
		}
	}
	get := func(name string) (int, string) {
		t.Helper()
		resp, err := hc.Get(s.URL + "/session/documents/" + name)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	put("a.txt", "kept")
	ss := s.Sessions(t, "wp-1")
	if len(ss) != 1 {
		t.Fatalf("sessions: %+v", ss)
	}
	time.Sleep(5 * time.Second) // past the first token's expiresIn
	if wp.AccessToken() == first {
		t.Fatal("the session was not extended in the background")
	}
	if code, body := get("a.txt"); code != 200 || body != "kept" {
		t.Fatalf("document after the refresh: %d %q", code, body)
	}
	if now := s.Sessions(t, "wp-1"); len(now) != 1 || now[0].ID != ss[0].ID {
		t.Fatalf("the refresh changed the session: %+v", now)
	}

	s.Admin(t, http.MethodDelete, "/sessions/"+ss[0].ID, nil)
	put("b.txt", "new session") // 401, login again, replayed
	if now := s.Sessions(t, "wp-1"); len(now) != 1 || now[0].ID == ss[0].ID {
		t.Fatalf("sessions after the re-login: %+v", now)
	}
	if n := testserver.Seats(s.Leases(t, "wp-1")); n != 1 {
		t.Fatalf("seats: %d", n)
	}

	if err := wp.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if now := s.Sessions(t, "wp-1"); len(now) != 0 {
		t.Fatalf("sessions after Close: %+v", now)
	}
	if _, err := hc.Get(s.URL + "/session/documents"); !errors.Is(err, webpdf.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestDeviceFromFirstLogin: without Config.Device, the device cookie of the first login is
// sent with the next, so a re-login lands on the same seat.
func TestDeviceFromFirstLogin(t *testing.T) {
	t.Parallel()
	s := testserver.Shared(t)
	ctx := testserver.Ctx(t)
	wp, err := webpdf.New(ctx, webpdf.Config{BaseURL: s.URL + "/webPDF", UserName: "bob", Password: "bob-pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer wp.Close(ctx)
	var mine []testserver.Session
	var r struct {
		Sessions []testserver.Session `json:"sessions"`
	}
	s.Admin(t, http.MethodGet, "/sessions", &r)
	for _, x := range r.Sessions {
		if x.User == "bob" && x.Client == "" {
			mine = append(mine, x)
		}
	}
	if len(mine) == 0 {
		t.Fatal("no session for bob")
	}
	for _, x := range mine {
		s.Admin(t, http.MethodDelete, "/sessions/"+x.ID, nil)
	}
	resp, err := wp.HTTPClient().Get(s.URL + "/session/documents")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("after re-login: %d", resp.StatusCode)
	}
	r.Sessions = nil
	s.Admin(t, http.MethodGet, "/sessions", &r)
	var devices []string
	for _, x := range r.Sessions {
		if x.User == "bob" && x.Client == "" {
			devices = append(devices, x.Device)
		}
	}
	if len(devices) != 1 || devices[0] != mine[0].Device {
		t.Fatalf("device after re-login %v, first %s", devices, mine[0].Device)
	}
}
