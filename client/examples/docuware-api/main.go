// Command docuware-api calls a DocuWare-style API (a DocuWare platform, or Leasehold's
// docuware dialect) through client/docuware: one logon, the session cookie kept and sent
// with every call, a login token to get the license back when the session is lost or the
// program restarts, and a logoff at the end.
//
//	DW_PASSWORD=alice-pw go run ./examples/docuware-api -platform http://127.0.0.1:8080/DocuWare/Platform -user alice
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/leasehold/leasehold/client/docuware"
)

func main() {
	platform := flag.String("platform", "http://127.0.0.1:8080/DocuWare/Platform", "DocuWare platform URL")
	user := flag.String("user", "alice", "user name (the password is read from $DW_PASSWORD)")
	org := flag.String("org", "", "organization")
	call := flag.String("get", "http://127.0.0.1:8080/entitlements/licenses", "URL to GET with the session")
	flag.Parse()

	// The login token and browser id of the last run: logging on with them reclaims the
	// license that run held, even within the two minutes it lingers after a logoff.
	dir, err := os.UserCacheDir()
	if err != nil {
		log.Fatal(err)
	}
	stateFile := filepath.Join(dir, "docuware-api.state")
	var token, browser string
	if b, err := os.ReadFile(stateFile); err == nil {
		token, browser, _ = strings.Cut(strings.TrimSpace(string(b)), "\n")
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dw, err := docuware.New(ctx, docuware.Config{
		PlatformURL: *platform, UserName: *user, Password: os.Getenv("DW_PASSWORD"), Organization: *org,
		LoginToken: token, BrowserID: browser,
	})
	var le *docuware.LicenseError
	if errors.As(err, &le) {
		log.Fatalf("no license free: %s", le.Message)
	}
	if err != nil {
		log.Fatal(err)
	}

	hc := dw.HTTPClient() // sends the session cookie; logs on again if the session is lost
	for i := 0; i < 3; i++ {
		resp, err := hc.Get(*call)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		resp.Body.Close()
		fmt.Printf("%d %s\n", resp.StatusCode, body)
	}

	// Close makes a fresh login token, then logs off; keep the token for the next run.
	if err := dw.Close(ctx); err != nil {
		log.Print(err)
	}
	if err := os.MkdirAll(dir, 0o700); err == nil {
		_ = os.WriteFile(stateFile, []byte(dw.LoginToken()+"\n"+dw.BrowserID()), 0o600)
	}
}
