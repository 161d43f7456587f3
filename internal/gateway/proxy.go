package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/leasehold/leasehold/internal/session"
)

// admission is what the gateway decided about a request it proxies: the clean path to send,
// who the request acts as, and which credentials to strip.
type admission struct {
	path       string
	identity   Identity
	usedBearer bool
	docuware   bool
	clientAddr netip.Addr
	proto      string // http or https, as the client reached the gateway
	// leaseRoot is the lease that admitted the request (its item lease, else its session's
	// seat): its end closes the request.
	leaseRoot string
	// principal is the request's session (nil on a public route): an open request keeps
	// using it.
	principal *session.Principal
}

type admissionKey struct{}

func withAdmission(ctx context.Context, a *admission) context.Context {
	return context.WithValue(ctx, admissionKey{}, a)
}

// newProxy proxies admitted requests to upstream. Bodies stream both ways (never buffered
// whole), a streamed response is flushed as it comes (server-sent events), upgrades
// (WebSocket) and trailers pass; an unreachable upstream is a 502, one that sends no
// response headers within timeout a 504.
func newProxy(upstream *url.URL, timeout time.Duration, log *slog.Logger) *httputil.ReverseProxy {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.ResponseHeaderTimeout = timeout
	transport.Proxy = nil // the upstream is named in the configuration, never via the environment
	// Every admitted request goes to this one host: keep as many idle connections as the
	// clients keep busy, not the default two, or most requests would dial anew.
	transport.MaxIdleConns = 1024
	transport.MaxIdleConnsPerHost = 1024
	// The client's Accept-Encoding goes to the upstream as it is, and the body comes back as
	// the upstream sent it: the transport neither asks for gzip on its own nor unpacks it.
	transport.DisableCompression = true
	// One bound on an answer's headers whichever transport carries the request (the
	// default would be 10 MB here and 1 MiB on the direct transport).
	transport.MaxResponseHeaderBytes = maxResponseHeaderBytes
	var rt http.RoundTripper = transport
	if upstream.Scheme == "http" {
		port := upstream.Port()
		if port == "" {
			port = "80"
		}
		rt = newDirectTransport(transport, net.JoinHostPort(upstream.Hostname(), port), timeout)
	}
	return &httputil.ReverseProxy{
		Transport:  rt,
		BufferPool: &bufferPool{},
		Rewrite: func(pr *httputil.ProxyRequest) {
			a, _ := pr.In.Context().Value(admissionKey{}).(*admission)
			pr.SetURL(upstream)
			// The clean path, under the upstream's own prefix; Go escapes it again.
			pr.Out.URL.Path = singleJoin(upstream.Path, a.path)
			pr.Out.URL.RawPath = ""
			h := pr.Out.Header
			scrubInbound(h)
			stripCredentials(h, a.usedBearer, a.docuware)
			setIdentity(h, a.identity)
			// Canonical names assigned directly: Set would canonicalize each one again.
			if a.clientAddr.IsValid() {
				h["X-Forwarded-For"] = []string{a.clientAddr.String()}
			}
			h["X-Forwarded-Proto"] = []string{a.proto}
			h["X-Forwarded-Host"] = []string{pr.In.Host}
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client went away
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				writeJSON(w, http.StatusGatewayTimeout, errorBody{Error: "upstream_timeout", Message: "the upstream sent no response in time"})
				return
			}
			log.Warn("gateway upstream", "err", err)
			writeJSON(w, http.StatusBadGateway, errorBody{Error: "upstream_unreachable", Message: "the upstream could not be reached"})
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// bufferPool lends ReverseProxy its copy buffers: without one it allocates (and zeroes) 32
// KiB for every response, which was 5 % of a proxied request's CPU.
type bufferPool struct{ p sync.Pool }

const copyBufferSize = 32 << 10

func (b *bufferPool) Get() []byte {
	if buf, ok := b.p.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, copyBufferSize)
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) >= copyBufferSize {
		buf = buf[:copyBufferSize]
		b.p.Put(&buf)
	}
}

func singleJoin(prefix, path string) string {
	if prefix == "" || prefix == "/" {
		return path
	}
	return strings.TrimSuffix(prefix, "/") + path
}

type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
