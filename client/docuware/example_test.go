package docuware_test

import (
	"context"
	"log"

	"github.com/leasehold/leasehold/client/docuware"
)

// Example logs on once, calls the platform with the session's client, and logs off at the
// end, keeping the login token for the next run. It needs a server, so it has no output to
// check.
func Example() {
	ctx := context.Background()
	dw, err := docuware.New(ctx, docuware.Config{
		PlatformURL: "http://127.0.0.1:8080/DocuWare/Platform",
		UserName:    "alice", Password: "alice-pw",
		LoginToken: "", BrowserID: "", // from the last run, to reclaim its license
	})
	if err != nil {
		log.Fatal(err) // a *docuware.LicenseError when no license is free
	}
	resp, err := dw.HTTPClient().Get("http://127.0.0.1:8080/DocuWare/Platform/Organizations")
	if err == nil {
		resp.Body.Close()
	}
	if err := dw.Close(ctx); err != nil {
		log.Print(err)
	}
	_, _ = dw.LoginToken(), dw.BrowserID() // save both for the next run
}
