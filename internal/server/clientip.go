package server

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// clientAddr is the address used for ip_ranges, countries, throttling and logs: the TCP
// peer, or — only when the peer is a trusted proxy — the nearest untrusted hop of
// X-Forwarded-For. Trusting the header from anyone would let a client pick its own address.
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := peerAddr(r)
	if !isTrusted(peer, trusted) {
		return peer
	}
	hops := r.Header.Values("X-Forwarded-For")
	addr := peer
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return addr // a garbled hop: stop at the last address we could believe
			}
			addr = a.Unmap()
			if !isTrusted(addr, trusted) {
				return addr
			}
		}
	}
	return addr
}

// ClientAddr is clientAddr for the other HTTP fronts (the gateways), which share the
// server's trusted_proxies.
func ClientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr { return clientAddr(r, trusted) }

// forwardedTLS reports whether the request reached us over TLS, believing
// X-Forwarded-Proto only from a trusted proxy.
func forwardedTLS(r *http.Request, trusted []netip.Prefix) bool {
	if r.TLS != nil {
		return true
	}
	return isTrusted(peerAddr(r), trusted) && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func peerAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
