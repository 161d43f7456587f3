package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/leasehold/leasehold/client"
)

// Example holds a licensed feature while the program runs. It needs a Leasehold server
// (go run ./cmd/leasehold serve --config examples/demo.yaml), so it has no output to check.
func Example() {
	ctx := context.Background()
	c, err := client.New(ctx, client.Config{
		BaseURL:  "http://127.0.0.1:8080",
		ClientID: "demo-app", ClientSecret: "demo-secret", // or Username and Password
		StateDir: "/var/lib/myapp/license", // optional: resume after a restart, offline checkouts
	})
	if err != nil {
		log.Fatal(err) // a *client.LicenseError when no seat is free
	}
	defer c.Close(ctx) // releases the lease and logs off

	lease, err := c.Consume(ctx, "AppFeature-XYZ")
	var le *client.LicenseError
	if errors.As(err, &le) {
		fmt.Println("not licensed:", le.Code) // e.g. licenseQuotaExceeded
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("licensed until", lease.Expiry().Format(time.RFC3339))

	// The lease is renewed in the background; its events say what happened.
	go func() {
		for ev := range lease.Events() {
			switch ev.Kind {
			case client.Lost:
				fmt.Println("feature off:", ev.Err)
			case client.Restored:
				fmt.Println("feature on again")
			}
		}
	}()
	// … the program's work; lease.Valid() says whether the feature may be used now.
}
