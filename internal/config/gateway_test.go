package config

import (
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
)

const gwLics = "    licenses: [{id: L1, product: P, model: m, owner: {user: alice}}]"

func withGateway(gw string) string {
	return with(gwLics, gwLics+"\n    gateways:\n"+gw)
}

func TestGatewayParses(t *testing.T) {
	y := withGateway(`      - name: reports
        listen: 127.0.0.1:9090
        upstream: http://127.0.0.1:7000/api
        routes:
          - {path: /health, access: public}
          - {path: /admin/, access: seat, item: I1, scopes: [all]}
          - {path: /, methods: [GET, HEAD], access: session}
          - {path: /, access: seat}
`)
	cfg, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	gws := cfg.Tenants[0].Gateways
	if len(gws) != 1 {
		t.Fatalf("%d gateways", len(gws))
	}
	g := gws[0].Spec
	if g.Name != "reports" || g.Timeout.D() != 60*time.Second || len(g.Routes) != 4 || g.Routes[1].Item != "I1" || g.Routes[2].Methods[1] != "HEAD" {
		t.Fatalf("%+v", g)
	}
	if g.Routes[0].Access != domain.AccessPublic {
		t.Fatalf("%+v", g.Routes[0])
	}
}

func TestGatewayValidationErrors(t *testing.T) {
	const okRoute = "        routes: [{path: /, access: session}]\n"
	for _, tc := range []struct{ name, gw, want string }{
		{"name", "      - {name: Reports, listen: '127.0.0.1:9090', routes: [{path: /, access: session}]}\n",
			`config: tenants[acme].gateways[Reports].name: "Reports" must match [a-z0-9][a-z0-9-]{0,62} (metrics and cookies carry it)`},
		{"listen", "      - name: r\n        listen: localhost\n" + okRoute,
			"config: tenants[acme].gateways[r].listen: must be host:port, e.g. 127.0.0.1:9090"},
		{"public_url path", "      - name: r\n        listen: 127.0.0.1:9090\n        public_url: http://x/app\n" + okRoute,
			"config: tenants[acme].gateways[r].public_url: must be an origin (scheme, host and port), without path or query"},
		{"upstream scheme", "      - name: r\n        listen: 127.0.0.1:9090\n        upstream: ftp://x\n" + okRoute,
			`config: tenants[acme].gateways[r].upstream: "ftp://x": scheme must be http or https`},
		{"timeout", "      - name: r\n        listen: 127.0.0.1:9090\n        timeout: 0s\n" + okRoute,
			"config: tenants[acme].gateways[r].timeout: must be more than 0"},
		{"tls without key", "      - name: r\n        listen: 127.0.0.1:9090\n        tls: {cert_file: /c.pem}\n" + okRoute,
			"config: tenants[acme].gateways[r].tls: needs both cert_file and key_file"},
		{"no routes", "      - name: r\n        listen: 127.0.0.1:9090\n",
			"config: tenants[acme].gateways[r].routes: required: at least one route"},
		{"path", "      - name: r\n        listen: 127.0.0.1:9090\n        routes: [{path: api, access: session}]\n",
			`config: tenants[acme].gateways[r].routes[0].path: "api" must start with /`},
		{"path unclean", "      - name: r\n        listen: 127.0.0.1:9090\n        routes: [{path: /a/../b, access: session}]\n",
			`config: tenants[acme].gateways[r].routes[0].path: "/a/../b" is not a clean path (no . or .. segment, //, \, %-escape or control character)`},
		{"path reserved", "      - name: r\n        listen: 127.0.0.1:9090\n        routes: [{path: /.leasehold/x, access: public}]\n",
			`config: tenants[acme].gateways[r].routes[0].path: "/.leasehold/x" is under /.leasehold/, the gateway's own pages`},
		{"method", "      - name: r\n        listen: 127.0.0.1:9090\n        routes: [{path: /, methods: [get], access: session}]\n",
			`config: tenants[acme].gateways[r].routes[0].methods[0]: unknown method "get" (use GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, CONNECT, TRACE)`},
		{"access", "      - name: r\n        listen: 127.0.0.1:9090\n        routes: [{path: /, access: open}]\n",
			`config: tenants[acme].gateways[r].routes[0].access: unknown access "open" (use public, session or seat)`},
		{"item unlicensed", "      - name: r\n        listen: 127.0.0.1:9090\n        routes: [{path: /, access: seat, item: Nope}]\n",
			`config: tenants[acme].gateways[r].routes[0].item: "Nope" is not an item any license of the tenant covers`},
		{"item on session", "      - name: r\n        listen: 127.0.0.1:9090\n        routes: [{path: /, access: session, item: I1}]\n",
			"config: tenants[acme].gateways[r].routes[0].item: only a seat route takes an item"},
		{"scope", "      - name: r\n        listen: 127.0.0.1:9090\n        routes: [{path: /, access: seat, scopes: ['a b']}]\n",
			`config: tenants[acme].gateways[r].routes[0].scopes[0]: "a b" is not a valid scope (printable ASCII without spaces, quotes or backslashes)`},
		{"same listen", "      - name: r\n        listen: 127.0.0.1:9090\n" + okRoute + "      - name: s\n        listen: 127.0.0.1:9090\n" + okRoute,
			"config: tenants[acme].gateways[s].listen: 127.0.0.1:9090 is already gateway r's"},
		{"server's address", "      - name: r\n        listen: 127.0.0.1:8080\n" + okRoute,
			"config: tenants[acme].gateways[r].listen: 127.0.0.1:8080 is the server's own listen address"},
		{"unknown field", "      - name: r\n        listen: 127.0.0.1:9090\n        upstrem: http://x\n" + okRoute,
			"config: tenants[acme].gateways[r].upstrem: unknown field…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(withGateway(tc.gw)))
			if err == nil {
				t.Fatalf("no error; want %s", tc.want)
			}
			got := err.Error()
			if prefix, ok := strings.CutSuffix(tc.want, "…"); ok {
				if !strings.HasPrefix(got, prefix) {
					t.Fatalf("\n got %s\nwant %s", got, tc.want)
				}
			} else if got != tc.want {
				t.Fatalf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}
