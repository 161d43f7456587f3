// Command service is a server-side program that licenses itself with OAuth2 client
// credentials: it holds one seat for as long as it runs and serves requests only while
// its lease is valid.
//
//	LEASEHOLD_CLIENT_SECRET=demo-secret go run ./examples/service -url http://127.0.0.1:8080 -client-id demo-app
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/leasehold/leasehold/client"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "Leasehold server")
	clientID := flag.String("client-id", "demo-app", "OAuth2 client (the secret is read from $LEASEHOLD_CLIENT_SECRET)")
	item := flag.String("item", "AppFeature-ABC", "licensed item")
	listen := flag.String("listen", "127.0.0.1:7070", "address to serve on")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	c, err := client.New(ctx, client.Config{
		BaseURL:      *url,
		ClientID:     *clientID,
		ClientSecret: os.Getenv("LEASEHOLD_CLIENT_SECRET"),
	})
	if err != nil {
		log.Fatal(err)
	}
	// Wait up to a minute for a seat when all are taken (another instance is stopping).
	lease, err := c.Consume(ctx, *item, client.WithQueue(time.Minute))
	if err != nil {
		_ = c.Close(context.Background())
		log.Fatal(err)
	}
	go func() {
		for ev := range lease.Events() {
			log.Printf("license: %s", ev)
		}
	}()

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if !lease.Valid() {
			http.Error(w, "license unavailable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "licensed by %s (lease %s)\n", lease.License(), lease.ID())
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Printf("serving on %s", *listen)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Print(err)
	}
	// Release the seat for the next instance, and log off.
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Close(cctx); err != nil {
		log.Print(err)
	}
}
