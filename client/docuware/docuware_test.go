package docuware_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/leasehold/leasehold/client/docuware"
	"github.com/leasehold/leasehold/client/internal/testserver"
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

// TestSession: one logon serves every call (one session, one seat); a lost session is
// logged on again with the login token and the call replayed (body included); Close makes
// a token and logs off; the token logs the next run on again.
func TestSession(t *testing.T) {
	t.Parallel()
	s := testserver.Shared(t)
	ctx := testserver.Ctx(t)
	cfg := docuware.Config{PlatformURL: s.URL + "/DocuWare/Platform", UserName: "bob", Password: "bob-pw",
		Organization: "Acme Ltd", BrowserID: "dw-1"}
	dw, err := docuware.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	hc := dw.HTTPClient()
	for i := 0; i < 3; i++ {
		if code := get(t, hc, s.URL+"/entitlements/licenses"); code != 200 {
			t.Fatalf("call %d: %d", i, code)
		}
	}
	ss := s.Sessions(t, "dw-1")
	if len(ss) != 1 || dw.LoginToken() == "" || dw.BrowserID() != "dw-1" {
		t.Fatalf("sessions %+v, token %q, browser id %q", ss, dw.LoginToken(), dw.BrowserID())
	}

	// The session is lost (an administrator ends it): the next call, a PUT with a body,
	// logs on again with the login token and is replayed.
	s.Admin(t, http.MethodDelete, "/sessions/"+ss[0].ID, nil)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, s.URL+"/session/documents/note.txt", bytes.NewReader([]byte("hello")))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PUT after the session was lost: %d", resp.StatusCode)
	}
	now := s.Sessions(t, "dw-1")
	if len(now) != 1 || now[0].ID == ss[0].ID {
		t.Fatalf("sessions after the re-logon: %+v", now)
	}
	if n := testserver.Seats(s.Leases(t, "dw-1")); n != 1 {
		t.Fatalf("seats: %d", n)
	}
	resp, err = hc.Get(s.URL + "/session/documents/note.txt")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello" {
		t.Fatalf("document: %d %q", resp.StatusCode, body)
	}

	first := dw.LoginToken()
	if err := dw.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if ss := s.Sessions(t, "dw-1"); len(ss) != 0 {
		t.Fatalf("sessions after Close: %+v", ss)
	}
	if _, err := hc.Get(s.URL + "/entitlements/licenses"); err == nil {
		t.Fatal("a closed session still sends")
	}
	token := dw.LoginToken()
	if token == "" || token == first {
		t.Fatal("Close made no new login token")
	}

	// The next run logs on with the saved token, on the same device.
	cfg.LoginToken, cfg.Password = token, "not needed"
	dw2, err := docuware.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if code := get(t, dw2.HTTPClient(), s.URL+"/entitlements/licenses"); code != 200 {
		t.Fatalf("after token logon: %d", code)
	}
	if ss := s.Sessions(t, "dw-1"); len(ss) != 1 {
		t.Fatalf("sessions: %+v", ss)
	}
	if err := dw2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if ls := s.Leases(t, "dw-1"); len(ls) != 0 {
		t.Fatalf("leases after Close: %+v", ls)
	}
}

// TestWrongPassword: a refused logon is an error from New.
func TestWrongPassword(t *testing.T) {
	t.Parallel()
	s := testserver.Shared(t)
	ctx := testserver.Ctx(t)
	_, err := docuware.New(ctx, docuware.Config{PlatformURL: s.URL + "/DocuWare/Platform", UserName: "bob", Password: "nope", BrowserID: "dw-2"})
	if err == nil {
		t.Fatal("wrong password accepted")
	}
}

// TestNoLicense: with every seat taken, a logon is refused with DocuWare's 401 text, as a
// *docuware.LicenseError; the session that holds the seat goes on.
func TestNoLicense(t *testing.T) {
	t.Parallel()
	s := testserver.Start(t)
	ctx := testserver.Ctx(t)
	holder, err := docuware.New(ctx, docuware.Config{PlatformURL: s.URL + "/DocuWare/Platform", UserName: "alice", Password: "alice-pw", BrowserID: "dw-a"})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	req, _ := http.NewRequest(http.MethodPatch, s.URL+"/admin/v1/tenants/acme/licenses/lic-platform", bytes.NewReader([]byte(`{"seats": 1}`)))
	req.Header.Set("Authorization", "Bearer "+testserver.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PATCH seats: %d", resp.StatusCode)
	}
	_, err = docuware.New(ctx, docuware.Config{PlatformURL: s.URL + "/DocuWare/Platform", UserName: "bob", Password: "bob-pw", BrowserID: "dw-b"})
	var le *docuware.LicenseError
	if !errors.As(err, &le) || !strings.Contains(le.Message, "None of the registered licenses are available for client bob") {
		t.Fatalf("want a LicenseError, got %v", err)
	}
	if code := get(t, holder.HTTPClient(), s.URL+"/entitlements/licenses"); code != 200 {
		t.Fatalf("holder: %d", code)
	}
}
