package jim2_test

import (
	"context"
	"log"

	"github.com/leasehold/leasehold/client/jim2"
)

// Example takes a Jim2 API session with client credentials, calls the API, and logs off.
// It needs a server, so it has no output to check.
func Example() {
	ctx := context.Background()
	s, err := jim2.New(ctx, jim2.Config{
		BaseURL: "http://127.0.0.1:8080", Database: "acme", // Jim2: "http://jim2server", "Jim_Test"
		ClientID: "demo-app", ClientSecret: "demo-secret",
	})
	if err != nil {
		log.Fatal(err) // a *jim2.LicenseError when no licence is free
	}
	defer s.Close(ctx) // logoff: the licence is released at once
	resp, err := s.HTTPClient().Get("http://127.0.0.1:8080/entitlements/licenses")
	if err == nil {
		resp.Body.Close()
	}
}
