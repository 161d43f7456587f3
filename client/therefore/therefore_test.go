package therefore_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client/internal/testserver"
	"github.com/leasehold/leasehold/client/therefore"
)

func TestMain(m *testing.M) { testserver.Main(m, "../..") }

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]*)"`)

// browser signs in as user on the authorization page, as a person would, and follows the
// redirect to the client's listener.
func browser(user, password string, opened *int) func(context.Context, string) error {
	return func(ctx context.Context, authURL string) error {
		*opened++
		jar, _ := cookiejar.New(nil)
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		hc := &http.Client{Jar: jar, Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := hc.Get(authURL)
		if err != nil {
			return err
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := csrfRE.FindSubmatch(page)
		if m == nil {
			return fmt.Errorf("no login form: %d %s", resp.StatusCode, page)
		}
		resp, err = hc.PostForm(authURL, url.Values{"csrf": {string(m[1])}, "username": {user}, "password": {password}})
		if err != nil {
			return err
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode/100 != 3 || loc == "" {
			return fmt.Errorf("login: %d, Location %q", resp.StatusCode, loc)
		}
		resp, err = hc.Get(loc) // the client's redirect listener
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
}

func sessionsOf(t *testing.T, s *testserver.Server, client string) []testserver.Session {
	var r struct {
		Sessions []testserver.Session `json:"sessions"`
	}
	s.Admin(t, http.MethodGet, "/sessions", &r)
	var out []testserver.Session
	for _, x := range r.Sessions {
		if x.Client == client {
			out = append(out, x)
		}
	}
	return out
}

// TestSession: sign-in by authorization code with PKCE on the registered redirect URI's
// port; the token is refreshed in the background (4 s access tokens on the test server) on
// one session; a refused refresh (the session ended) has the user sign in again; Close
// logs off.
func TestSession(t *testing.T) {
	s := testserver.Start(t)
	ctx := testserver.Ctx(t)
	opened := 0
	cfg := therefore.Config{
		BaseURL: s.URL, Tenant: "acme", ClientID: "web-app",
		RedirectURL: "http://127.0.0.1:" + s.TFPort + "/callback",
		OpenBrowser: browser("alice", "alice-pw", &opened),
		LogoffURL:   s.URL + "/oauth2/logoff",
	}
	tf, err := therefore.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	hc := tf.HTTPClient()
	call := func() int {
		t.Helper()
		resp, err := hc.Get(s.URL + "/entitlements/licenses")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	first := tf.AccessToken()
	ss := sessionsOf(t, s, "web-app")
	if len(ss) != 1 || !ss[0].Seat {
		t.Fatalf("sessions: %+v", ss)
	}
	time.Sleep(5 * time.Second)
	if tf.AccessToken() == first {
		t.Fatal("no background refresh")
	}
	if code := call(); code != 200 {
		t.Fatalf("call: %d", code)
	}
	if now := sessionsOf(t, s, "web-app"); len(now) != 1 || now[0].ID != ss[0].ID {
		t.Fatalf("sessions after the refresh: %+v", now)
	}

	s.Admin(t, http.MethodDelete, "/sessions/"+ss[0].ID, nil)
	if code := call(); code != 200 {
		t.Fatalf("call after the session ended: %d", code)
	}
	if opened != 2 {
		t.Fatalf("sign-in page opened %d times, want 2", opened)
	}
	if now := sessionsOf(t, s, "web-app"); len(now) != 1 {
		t.Fatalf("sessions after signing in again: %+v", now)
	}

	if err := tf.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if now := sessionsOf(t, s, "web-app"); len(now) != 0 {
		t.Fatalf("sessions after Close: %+v", now)
	}
}
