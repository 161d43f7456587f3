package domain

import "time"

// Gateway access levels of a route (SPEC section 8).
const (
	AccessPublic  = "public"
	AccessSession = "session"
	AccessSeat    = "seat"
)

// Gateway puts a tenant's sessions and licenses in front of an upstream HTTP API: its own
// listener admits or refuses every request by its routes and proxies what it admits.
type Gateway struct {
	Name string `json:"name"`
	// Listen is the gateway's own address (host:port).
	Listen string `json:"listen"`
	// PublicURL is what browsers see: the login page's redirects and the origin checks of
	// cookie-authenticated state changes use it. Default: from Listen.
	PublicURL string `json:"public_url,omitempty"`
	// Upstream is the proxied API (http or https; its path prefix is kept). Empty: the
	// gateway serves only forward-auth and its /.leasehold/ pages.
	Upstream string `json:"upstream,omitempty"`
	// Timeout bounds the wait for the upstream's response headers (then 504).
	Timeout Duration `json:"timeout"`
	Routes  []Route  `json:"routes"`
	// TLS, when set, makes the gateway's listener serve HTTPS (and HTTP/2) with this
	// certificate, re-read when its files change; PublicURL then defaults to https.
	TLS TLS `json:"tls,omitzero"`
}

// TLS names a PEM certificate (chain) and its key, as the files of the process that serves
// them (the main listener's, or a gateway's on every process).
type TLS struct {
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
}

// Route admits the requests under Path (whole segments; a Path ending in / is that folder
// and below) with one of Methods (none: any) at an Access level.
type Route struct {
	Path    string   `json:"path"`
	Methods []string `json:"methods,omitempty"`
	Access  string   `json:"access"`
	// Item, for access seat, is a licensed item the session must also hold a lease on.
	Item string `json:"item,omitempty"`
	// Scopes: the session must carry one of them.
	Scopes []string `json:"scopes,omitempty"`
}

// DefaultGatewayTimeout is a gateway's upstream timeout when none is given.
const DefaultGatewayTimeout = 60 * time.Second

func (g *Gateway) UnmarshalJSON(b []byte) error {
	type plain Gateway
	v := plain{Timeout: Duration(DefaultGatewayTimeout)}
	if err := DecodeStrict(b, &v); err != nil {
		return err
	}
	*g = Gateway(v)
	return nil
}
