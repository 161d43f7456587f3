// Command desktop-app is a desktop program that holds a licensed feature while it runs.
//
// It logs its user in (a password session), keeps its state in the user's configuration
// directory — so that a restart resumes the same session and lease instead of taking new
// ones, and a checkout lease keeps the feature usable offline — and switches the feature
// off and on as the lease is lost and restored. On exit it releases the lease and logs
// off, so the seat is free for a colleague at once.
//
//	LEASEHOLD_PASSWORD=alice-pw go run ./examples/desktop-app -url http://127.0.0.1:8080 -user alice
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/leasehold/leasehold/client"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "Leasehold server")
	user := flag.String("user", "alice", "user name (the password is read from $LEASEHOLD_PASSWORD)")
	feature := flag.String("feature", "AppFeature-XYZ", "licensed feature")
	offline := flag.Duration("offline", 0, "check the feature out for this long, to use it offline")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	dir, err := os.UserConfigDir()
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(ctx, client.Config{
		BaseURL:  *url,
		Username: *user,
		Password: os.Getenv("LEASEHOLD_PASSWORD"),
		StateDir: filepath.Join(dir, "desktop-app", "license"),
	})
	var le *client.LicenseError
	if errors.As(err, &le) {
		log.Fatalf("no license free (%s): %s", le.Code, le.Message)
	}
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Close(cctx); err != nil {
			log.Print(err)
		}
	}()

	var opts []client.ConsumeOption
	if *offline > 0 {
		opts = append(opts, client.WithCheckout(*offline))
	}
	lease, err := c.Consume(ctx, *feature, opts...)
	if errors.As(err, &le) {
		log.Printf("%s is not available (%s); running without it", *feature, le.Code)
		<-ctx.Done()
		return
	}
	if err != nil {
		log.Print(err)
		return
	}

	var enabled atomic.Bool
	enabled.Store(lease.Valid())
	fmt.Printf("%s enabled until %s (offline: %v)\n", *feature, lease.Expiry().Format(time.Kitchen), c.Offline())
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-lease.Events():
			if !ok {
				return
			}
			switch ev.Kind {
			case client.Lost:
				enabled.Store(false)
				fmt.Printf("%s disabled: %v\n", *feature, ev.Err)
			case client.Restored:
				enabled.Store(true)
				fmt.Printf("%s enabled again\n", *feature)
			case client.Retrying:
				fmt.Printf("license server unreachable, still licensed until %s\n", ev.Expiry.Format(time.Kitchen))
			}
		}
	}
}
