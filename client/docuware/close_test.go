package docuware_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leasehold/leasehold/client/docuware"
)

// TestCloseDuringLogon: when Close begins while a call that found the session lost is
// logging on again, the logon ends first and Close logs off the session it opened; no
// session is left logged on. (A fake platform, to hold the logon at the right moment.)
func TestCloseDuringLogon(t *testing.T) {
	var (
		mu        sync.Mutex
		events    []string
		n         int
		live      = map[string]bool{}
		arrived   = make(chan struct{}, 1)
		loggedOff = make(chan struct{})
	)
	logon := func(w http.ResponseWriter) {
		n++
		id := fmt.Sprintf("s%d", n)
		live[id] = true
		events = append(events, "logon")
		http.SetCookie(w, &http.Cookie{Name: docuware.AuthCookie, Value: id, Path: "/"})
	}
	session := func(r *http.Request) string {
		if c, err := r.Cookie(docuware.AuthCookie); err == nil && live[c.Value] {
			return c.Value
		}
		return ""
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/Account/TokenLogOn") {
			select {
			case arrived <- struct{}{}:
			default:
			}
			select { // held until the logoff, or long enough for Close to have begun
			case <-loggedOff:
			case <-time.After(500 * time.Millisecond):
			}
		}
		mu.Lock()
		defer mu.Unlock()
		switch p := r.URL.Path; {
		case strings.HasSuffix(p, "/Account/Logon"), strings.HasSuffix(p, "/Account/TokenLogOn"):
			logon(w)
		case session(r) == "":
			w.WriteHeader(http.StatusUnauthorized)
		case strings.HasSuffix(p, "/Organizations/LoginToken"):
			fmt.Fprint(w, `"tok"`)
		case strings.HasSuffix(p, "/Account/LogOff"):
			delete(live, session(r))
			events = append(events, "logoff")
			close(loggedOff)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	dw, err := docuware.New(ctx, docuware.Config{PlatformURL: srv.URL + "/DocuWare/Platform", UserName: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	clear(live) // the session is lost
	mu.Unlock()
	called := make(chan int, 1)
	go func() {
		resp, err := dw.HTTPClient().Get(srv.URL + "/DocuWare/Platform/Organization")
		if err != nil {
			called <- 0
			return
		}
		resp.Body.Close()
		called <- resp.StatusCode
	}()
	<-arrived // the call logs on again with the login token
	closed := make(chan error, 1)
	go func() { closed <- dw.Close(ctx) }()
	var closeErr error
	select {
	case closeErr = <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	<-called
	mu.Lock()
	defer mu.Unlock()
	if len(live) != 0 || events[len(events)-1] != "logoff" {
		t.Fatalf("after Close (%v): sessions %v still logged on, events %v", closeErr, live, events)
	}
	if closeErr != nil {
		t.Fatal(closeErr)
	}
}
