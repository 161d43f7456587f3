package session

import (
	"context"
	"net/netip"
)

type clientAddrKey struct{}

// WithClientAddr records the request's client address (as the HTTP front resolved it, with
// trusted proxies) so that every seat a session takes or renews is checked against the
// model's ip_ranges and countries like an /authz consumption, whichever path reaches it.
func WithClientAddr(ctx context.Context, addr netip.Addr) context.Context {
	return context.WithValue(ctx, clientAddrKey{}, addr)
}

// clientAddr is the address WithClientAddr recorded (invalid when none).
func clientAddr(ctx context.Context) netip.Addr {
	a, _ := ctx.Value(clientAddrKey{}).(netip.Addr)
	return a
}
