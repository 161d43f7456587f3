package server

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// nopResponseWriter is a ResponseWriter that costs nothing, so that the benchmark measures
// the server's own work per request.
type nopResponseWriter struct{ h http.Header }

func (w *nopResponseWriter) Header() http.Header         { return w.h }
func (w *nopResponseWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopResponseWriter) WriteHeader(int)             {}

// BenchmarkMiddleware is the root handler (logging to a JSON handler on io.Discard,
// metrics, client address, routing) around /healthz: what every request pays.
//
//	go test -run '^$' -bench Middleware -benchmem ./internal/server/
func BenchmarkMiddleware(b *testing.B) {
	s := New(Options{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}, Deps{})
	h := s.Handler()
	for _, path := range []string{"/healthz", "/t/acme/healthz"} {
		b.Run(path, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, path, nil)
			r.RemoteAddr = "127.0.0.1:40000"
			w := &nopResponseWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				r.URL.Path = path // the /t/ prefix is taken off in place
				clear(w.h)
				h.ServeHTTP(w, r)
			}
		})
	}
}
