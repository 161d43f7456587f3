package server

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientAddr(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	cases := []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"no proxy: the peer", "203.0.113.9:5000", nil, "203.0.113.9"},
		{"untrusted peer: header ignored", "203.0.113.9:5000", []string{"1.2.3.4"}, "203.0.113.9"},
		{"trusted proxy: nearest untrusted hop", "10.0.0.2:80", []string{"1.2.3.4, 198.51.100.7"}, "198.51.100.7"},
		{"trusted chain skipped", "10.0.0.2:80", []string{"198.51.100.7, 10.1.1.1", "10.2.2.2"}, "198.51.100.7"},
		{"garbled hop: last believable address", "10.0.0.2:80", []string{"bogus, 10.3.3.3"}, "10.3.3.3"},
		{"IPv4-mapped peer unmapped", "[::ffff:203.0.113.9]:1", nil, "203.0.113.9"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := clientAddr(r, proxies).String(); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
}

func TestForwardedTLS(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:1"
	r.Header.Set("X-Forwarded-Proto", "https")
	if !forwardedTLS(r, proxies) {
		t.Error("trusted proxy's X-Forwarded-Proto ignored")
	}
	r.RemoteAddr = "192.0.2.1:1"
	if forwardedTLS(r, proxies) {
		t.Error("untrusted X-Forwarded-Proto believed")
	}
}
