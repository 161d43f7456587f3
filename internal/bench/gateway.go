package bench

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// gatewayName is the gateway the gateway scenario creates (and replaces at every run).
const gatewayName = "bench-gateway"

// setupGateway puts a gateway (SPEC section 8) in front of the trivial upstream
// (Config.Upstream: the baseline server of the same run) through the admin API, signs in
// once, and has every connection GET / through the gateway with that session's token: an
// admitted request (authentication from the cache, one route, the reverse proxy) against
// the same upstream hit directly, which is what the run's baseline measures.
func setupGateway(ctx context.Context, r *runner) (func(int) worker, []string, error) {
	// Skipped, not failed, so that `bench all` without these still runs the rest.
	switch {
	case r.cfg.Upstream == "":
		return nil, nil, &SkipError{"the gateway scenario needs the upstream it proxies to (leasehold bench starts it: the baseline server)"}
	case r.cfg.AdminToken == "":
		return nil, nil, &SkipError{"the gateway scenario creates its gateway through the admin API: give --admin-token"}
	case r.cfg.Username == "":
		return nil, nil, &SkipError{"the gateway scenario needs --user and --password"}
	}
	tenant, err := r.adminTenant(ctx)
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	body := fmt.Sprintf(`{"name":%q,"listen":%q,"upstream":%q,"routes":[{"path":"/","access":"session"}]}`, gatewayName, addr, r.cfg.Upstream)
	u := r.root + "/admin/v1/tenants/" + url.PathEscape(tenant) + "/gateways/" + gatewayName
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, u, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+r.cfg.AdminToken)
	resp, err := r.exchange(req)
	if err != nil {
		return nil, nil, err
	}
	if resp.Status == http.StatusNotFound {
		return nil, nil, &SkipError{"PUT " + u + " answered 404: this server has no gateways"}
	}
	if resp.Status/100 != 2 {
		return nil, nil, fmt.Errorf("PUT %s: HTTP %d: %s", u, resp.Status, truncate(resp.Body))
	}
	gw := "http://" + addr
	// The server starts the listener when it sees the new object (within a second).
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("gateway %s did not start listening on %s", gatewayName, addr)
		}
	}
	login, err := r.exchange(r.postForm(ctx, r.base+"/session/login", "", "Authorization",
		"Basic "+base64.StdEncoding.EncodeToString([]byte(r.cfg.Username+":"+r.cfg.Password))))
	if err != nil {
		return nil, nil, err
	}
	tok := jsonString(login.Body, "token")
	if login.Status != http.StatusOK || tok == "" {
		return nil, nil, fmt.Errorf("session login: HTTP %d: %s", login.Status, truncate(login.Body))
	}
	auth := "Bearer " + tok
	notes := []string{fmt.Sprintf("gateway %s of tenant %s on %s in front of %s (left in place; replaced at the next run)", gatewayName, tenant, gw, r.cfg.Upstream)}
	r.logf("%s", notes[0])
	return func(int) worker {
		judge := func(resp *Response) string { return Classify(resp, http.StatusOK) }
		return func(ctx context.Context, c *Conn) { c.Do(r.get(ctx, gw+"/", "Authorization", auth), judge) }
	}, notes, nil
}
