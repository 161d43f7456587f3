package gateway

import (
	"context"
	"sync"
)

// openRequests tracks the admitted requests still open (streams, upgraded connections) by
// session and by the lease that admitted them, so that they are closed when their session
// or their route's item lease ends (SPEC section 8: within 1 s). Cancelling a proxied
// request's context stops the proxy's copy and closes an upgraded connection's upstream.
type openRequests struct {
	mu    sync.Mutex
	next  uint64
	byKey map[openKey]map[uint64]context.CancelFunc
}

// openKey is a session (kind 's') or a lease root (kind 'l') of a tenant.
type openKey struct {
	kind       byte
	tenant, id string
}

func newOpenRequests() *openRequests {
	return &openRequests{byKey: map[openKey]map[uint64]context.CancelFunc{}}
}

// track registers cancel under every key and returns the function that unregisters it.
func (o *openRequests) track(cancel context.CancelFunc, keys ...openKey) func() {
	o.mu.Lock()
	o.next++
	id := o.next
	for _, k := range keys {
		m := o.byKey[k]
		if m == nil {
			m = map[uint64]context.CancelFunc{}
			o.byKey[k] = m
		}
		m[id] = cancel
	}
	o.mu.Unlock()
	return func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		for _, k := range keys {
			if m := o.byKey[k]; m != nil {
				delete(m, id)
				if len(m) == 0 {
					delete(o.byKey, k)
				}
			}
		}
	}
}

// close cancels every request open under k.
func (o *openRequests) close(k openKey) {
	o.mu.Lock()
	m := o.byKey[k]
	delete(o.byKey, k)
	o.mu.Unlock()
	for _, cancel := range m {
		cancel()
	}
}
