package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"syscall"
	"time"
)

// directTransport sends the requests that carry nothing but headers (GET and HEAD without a
// body or an upgrade, nearly all of an API's reads) to a plain-HTTP upstream on the
// calling goroutine: write the request, read the answer, hand the connection back when
// the body has been read. http.Transport hands every request to a writer and a reader
// goroutine of the connection and back; on two cores those hand-offs were a fifth of an
// admitted request's CPU. Everything else (bodies, upgrades, TLS upstreams) goes to next.
type directTransport struct {
	next    *http.Transport
	addr    string        // the upstream's host:port
	timeout time.Duration // for the response's headers (0: none)
	dialer  net.Dialer

	mu    sync.Mutex
	idle  []*upstreamConn // most recently used last
	sweep *time.Timer     // armed while idle is not empty
}

const (
	// maxIdleConns bounds the connections kept for reuse: as many as clients keep busy.
	maxIdleConns = 1024
	// idleConnTimeout is how long an unused connection is kept (http.DefaultTransport's).
	idleConnTimeout = 90 * time.Second
	// max1xx bounds the informational answers read before the final one (as net/http does).
	max1xx = 5
	// maxResponseHeaderBytes bounds what is read of an answer's headers (its informational
	// answers included): an upstream that sends headers without end costs the gateway that
	// much memory at most, then a 502.
	maxResponseHeaderBytes = 1 << 20
)

type upstreamConn struct {
	net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
	// headerLeft is what may still be read while an answer's headers are (-1: no bound,
	// the body streams).
	headerLeft int64
}

func newUpstreamConn(conn net.Conn) *upstreamConn {
	c := &upstreamConn{Conn: conn, bw: bufio.NewWriterSize(conn, 4<<10), headerLeft: -1}
	c.br = bufio.NewReaderSize(headerLimited{c}, 4<<10)
	return c
}

// headerLimited is the connection as its reader reads it, within headerLeft.
type headerLimited struct{ c *upstreamConn }

var errHeadersTooLarge = errors.New("gateway: the upstream's response headers are too large")

func (h headerLimited) Read(p []byte) (int, error) {
	c := h.c
	if c.headerLeft < 0 {
		return c.Conn.Read(p)
	}
	if c.headerLeft == 0 {
		return 0, errHeadersTooLarge
	}
	if int64(len(p)) > c.headerLeft {
		p = p[:c.headerLeft]
	}
	n, err := c.Conn.Read(p)
	c.headerLeft -= int64(n)
	return n, err
}

func newDirectTransport(next *http.Transport, addr string, timeout time.Duration) *directTransport {
	return &directTransport{next: next, addr: addr, timeout: timeout,
		dialer: net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}}
}

// direct tells the requests this transport sends itself: idempotent (a request on a kept
// connection the upstream had just closed is sent again, as http.Transport does), with
// nothing to stream up, and expecting no upgrade.
func direct(r *http.Request) bool {
	return r.URL.Scheme == "http" && (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		(r.Body == nil || r.Body == http.NoBody) && r.ContentLength == 0 && !r.Close &&
		len(r.TransferEncoding) == 0 && r.Header.Get("Upgrade") == ""
}

func (t *directTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !direct(r) {
		return t.next.RoundTrip(r)
	}
	c, reused := t.get()
	for {
		if c == nil {
			conn, err := t.dialer.DialContext(r.Context(), "tcp", t.addr)
			if err != nil {
				return nil, err
			}
			c = newUpstreamConn(conn)
		}
		resp, err := t.exchange(c, r)
		if err == nil {
			return resp, nil
		}
		c.Close()
		// A kept connection may have been closed by the upstream while it was idle: the
		// request then failed before any answer came, and (idempotent) goes once more on
		// a new one, as http.Transport sends it again.
		if !reused || r.Context().Err() != nil || !closedByPeer(err) {
			return nil, err
		}
		c, reused = nil, false
	}
}

func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// exchange writes r on c and reads the answer's headers; the body reads from c and gives c
// back (or closes it) when done. Ending r's context closes c, which ends the exchange.
func (t *directTransport) exchange(c *upstreamConn, r *http.Request) (*http.Response, error) {
	stop := context.AfterFunc(r.Context(), func() { c.Close() })
	if t.timeout > 0 {
		_ = c.SetReadDeadline(time.Now().Add(t.timeout))
	}
	resp, err := t.writeAndRead(c, r)
	if err != nil {
		stop()
		return nil, err
	}
	if t.timeout > 0 {
		_ = c.SetReadDeadline(time.Time{})
	}
	resp.Body = &upstreamBody{t: t, c: c, rc: resp.Body, stop: stop,
		keep: !resp.Close, empty: resp.Body == http.NoBody}
	return resp, nil
}

func (t *directTransport) writeAndRead(c *upstreamConn, r *http.Request) (*http.Response, error) {
	if err := r.Write(c.bw); err != nil {
		return nil, err
	}
	if err := c.bw.Flush(); err != nil {
		return nil, err
	}
	c.headerLeft = maxResponseHeaderBytes
	for n := 0; ; n++ {
		resp, err := http.ReadResponse(c.br, r)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 {
			c.headerLeft = -1
			return resp, nil
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, errors.New("gateway: the upstream switched protocols on a request that asked for no upgrade")
		case n == max1xx:
			return nil, errors.New("gateway: the upstream sent too many informational answers")
		}
		// Informational answers (103 Early Hints) pass on to the client as ReverseProxy
		// passes them from http.Transport.
		if trace := httptrace.ContextClientTrace(r.Context()); trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				return nil, err
			}
		}
	}
}

// upstreamBody is an answer's body read from a connection of the pool: read to its end, the
// connection goes back to the pool; closed before, it is closed.
type upstreamBody struct {
	t     *directTransport
	c     *upstreamConn
	rc    io.ReadCloser
	stop  func() bool
	keep  bool // the upstream keeps the connection open
	empty bool // no body (HEAD, 204, 304): done before the first read
	done  bool
}

func (b *upstreamBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.release(true)
	}
	return n, err
}

func (b *upstreamBody) Close() error {
	if !b.done {
		b.release(b.empty)
	}
	return nil
}

func (b *upstreamBody) release(finished bool) {
	b.done = true
	// stop false: the request's context ended and closed the connection.
	if b.stop() && finished && b.keep && b.c.br.Buffered() == 0 {
		b.t.put(b.c)
		return
	}
	b.c.Close()
}

// get takes the most recently used idle connection, if any.
func (t *directTransport) get() (*upstreamConn, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.idle)
	if n == 0 {
		return nil, false
	}
	c := t.idle[n-1]
	t.idle[n-1] = nil
	t.idle = t.idle[:n-1]
	return c, true
}

func (t *directTransport) put(c *upstreamConn) {
	c.idleSince = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.idle) >= maxIdleConns {
		c.Close()
		return
	}
	t.idle = append(t.idle, c)
	if t.sweep == nil {
		t.sweep = time.AfterFunc(idleConnTimeout, t.closeExpired)
	}
}

// closeExpired closes the connections idle for longer than idleConnTimeout (the oldest are
// first in the list), and comes back while any remain.
func (t *directTransport) closeExpired() {
	t.mu.Lock()
	defer t.mu.Unlock()
	cut := time.Now().Add(-idleConnTimeout)
	n := 0
	for n < len(t.idle) && !t.idle[n].idleSince.After(cut) {
		t.idle[n].Close()
		n++
	}
	t.idle = append(t.idle[:0], t.idle[n:]...)
	clear(t.idle[len(t.idle):cap(t.idle)])
	if len(t.idle) == 0 {
		t.sweep = nil
		return
	}
	t.sweep.Reset(time.Until(t.idle[0].idleSince.Add(idleConnTimeout)))
}

// CloseIdleConnections closes the kept connections of both transports (ReverseProxy's
// users call it when the upstream changes).
func (t *directTransport) CloseIdleConnections() {
	t.mu.Lock()
	for _, c := range t.idle {
		c.Close()
	}
	clear(t.idle)
	t.idle = t.idle[:0]
	t.mu.Unlock()
	t.next.CloseIdleConnections()
}
