package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// A scenario prepares what its load needs (tokens, seeded leases, cookies) and returns a
// worker per connection. Setup requests are not measured.
type scenario struct {
	about string
	setup func(ctx context.Context, r *runner) (newWorker func(conn int) worker, notes []string, err error)
}

// order is how scenarios are listed and how Compare runs them.
var order = []string{
	"baseline", "healthz", "check", "consume", "renew", "jwt-renew", "consume-release",
	"token", "introspect", "session-login", "gateway",
}

var scenarios = map[string]scenario{
	"baseline": {"GET / of the bare net/http handler (leasehold bench baseline-server)", setupBaseline},
	"healthz":  {"GET /healthz: the server's routing, logging and metrics, no store", setupHealthz},
	"check":    {"GET /authz/.json?ITEM&doConsume=false: authentication and a read-only decision", setupCheck},
	"consume":  {"GET /authz/.json?ITEM&hw=DISTINCT: a new seat per request", setupConsume},
	"renew":    {"GET /authz/.json?ITEM&hw=H&leaseId=CURRENT: chained renewals of --anchors leases", setupRenew(false)},
	"jwt-renew": {
		"GET /authz/.jwt?ITEM&hw=H&leaseId=CURRENT: chained renewals answered with signed JWTs", setupRenew(true),
	},
	"consume-release": {"consume then ?release of the same lease, one anchor per connection (2 requests per op)", setupConsumeRelease},
	"token":           {"POST /oauth2/token grant_type=client_credentials (client_secret_basic)", setupToken},
	"introspect":      {"POST /oauth2/introspect (RFC 7662) of a live access token", setupIntrospect},
	"session-login":   {"POST /session/login once per connection, then GET /entitlements/licenses with its lh_session cookie", setupSessionLogin},
	"gateway":         {"GET / through a gateway (made with --admin-token) to the baseline server, with a session's Bearer token", setupGateway},
}

// ScenarioNames lists the scenarios in their usual order.
func ScenarioNames() []string { return slices.Clone(order) }

// ScenarioAbout describes a scenario in one line.
func ScenarioAbout(name string) string { return scenarios[name].about }

// --- requests -----------------------------------------------------------------------------

func (r *runner) get(ctx context.Context, u string, header ...string) *http.Request {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		panic(err) // URLs are built from a checked base
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req
}

func (r *runner) postForm(ctx context.Context, u, form string, header ...string) *http.Request {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req
}

// exchange is an unmeasured request (setup).
func (r *runner) exchange(req *http.Request) (*Response, error) {
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

func (r *runner) basicAuth() string {
	// RFC 6749 §2.3.1: both parts are form-urlencoded before the Basic encoding.
	cred := url.QueryEscape(r.cfg.ClientID) + ":" + url.QueryEscape(r.cfg.ClientSecret)
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(cred))
}

// token fetches an access token with the client_credentials grant.
func (r *runner) token(ctx context.Context) (string, error) {
	if r.cfg.ClientID == "" {
		return "", fmt.Errorf("this scenario needs a token: give --client-id and --client-secret of a client allowed client_credentials")
	}
	resp, err := r.exchange(r.postForm(ctx, r.base+"/oauth2/token", "grant_type=client_credentials", "Authorization", r.basicAuth()))
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	if resp.Status != http.StatusOK {
		return "", fmt.Errorf("token: HTTP %d: %s", resp.Status, truncate(resp.Body))
	}
	tok := jsonString(resp.Body, "access_token")
	if tok == "" {
		return "", fmt.Errorf("token: no access_token in %s", truncate(resp.Body))
	}
	return tok, nil
}

func truncate(b []byte) string {
	const n = 300
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

func (r *runner) authzURL(format, item, hw, leaseID string) string {
	var b strings.Builder
	b.Grow(len(r.base) + 128)
	b.WriteString(r.base)
	b.WriteString("/authz/")
	b.WriteString(format)
	b.WriteByte('?')
	b.WriteString(url.QueryEscape(item))
	b.WriteString("&hw=")
	b.WriteString(url.QueryEscape(hw))
	if leaseID != "" {
		b.WriteString("&leaseId=")
		b.WriteString(url.QueryEscape(leaseID))
	}
	return b.String()
}

// jwtPayload decodes the payload of a compact JWS (nil when tok is not one). The signature
// is not checked: the load generator measures, it does not verify.
func jwtPayload(tok []byte) []byte {
	first := bytes.IndexByte(tok, '.')
	if first < 0 {
		return nil
	}
	rest := tok[first+1:]
	second := bytes.IndexByte(rest, '.')
	if second < 0 {
		return nil
	}
	p, err := base64.RawURLEncoding.AppendDecode(nil, rest[:second])
	if err != nil {
		return nil
	}
	return p
}

// leaseJudge judges a consumption and extracts its lease id into *jti.
func leaseJudge(jwt bool, jti *string) func(*Response) string {
	return func(resp *Response) string {
		if kind := Classify(resp, http.StatusOK); kind != "" {
			return kind
		}
		body := resp.Body
		if jwt {
			if body = jwtPayload(body); body == nil {
				return "bad response not a JWT"
			}
		}
		id := jsonString(body, "jti")
		if id == "" {
			return "bad response no jti"
		}
		*jti = id
		return ""
	}
}

// --- seats --------------------------------------------------------------------------------

type entitlement struct {
	ID        string   `json:"id"`
	Items     []string `json:"items"`
	Seats     int      `json:"seats"`
	SeatsUsed int      `json:"seats_used"`
}

func (r *runner) entitlementFor(ctx context.Context, token, item string) (*entitlement, error) {
	resp, err := r.exchange(r.get(ctx, r.base+"/entitlements/licenses", "Authorization", "Bearer "+token))
	if err != nil {
		return nil, err
	}
	if resp.Status != http.StatusOK {
		return nil, fmt.Errorf("GET /entitlements/licenses: HTTP %d: %s", resp.Status, truncate(resp.Body))
	}
	var out struct {
		Licenses []entitlement `json:"licenses"`
	}
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		return nil, fmt.Errorf("GET /entitlements/licenses: %w", err)
	}
	for i := range out.Licenses {
		if slices.Contains(out.Licenses[i].Items, item) {
			return &out.Licenses[i], nil
		}
	}
	return nil, fmt.Errorf("no license of the client's user covers item %q (choose one with --item)", item)
}

// ensureSeats makes room for need new seats of item: with --admin-token it raises the
// license's seats through the admin API (PATCH, which the server keeps until the file's
// definition of the license changes); without, it warns when the room is short.
func (r *runner) ensureSeats(ctx context.Context, token, item string, need int64) ([]string, error) {
	ent, err := r.entitlementFor(ctx, token, item)
	if err != nil {
		return nil, err
	}
	free := int64(ent.Seats - ent.SeatsUsed)
	if free >= need {
		return []string{fmt.Sprintf("license %s: %d seats free, %d needed at most", ent.ID, free, need)}, nil
	}
	if r.cfg.AdminToken == "" {
		note := fmt.Sprintf("license %s has %d free seats but this run may need %d: expect licenseQuotaExceeded (raise its seats in the config, or pass --admin-token)", ent.ID, free, need)
		r.logf("%s", note)
		return []string{note}, nil
	}
	tenant, err := r.adminTenant(ctx)
	if err != nil {
		return nil, err
	}
	seats := min(int64(ent.SeatsUsed)+need, 1_000_000_000)
	u := r.root + "/admin/v1/tenants/" + url.PathEscape(tenant) + "/licenses/" + url.PathEscape(ent.ID)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPatch, u, strings.NewReader(fmt.Sprintf(`{"seats":%d}`, seats)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+r.cfg.AdminToken)
	resp, err := r.exchange(req)
	if err != nil {
		return nil, err
	}
	if resp.Status/100 != 2 {
		return nil, fmt.Errorf("PATCH %s: HTTP %d: %s", u, resp.Status, truncate(resp.Body))
	}
	// The change reaches the engine through the catalog cache; wait until it shows.
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		e, err := r.entitlementFor(ctx, token, item)
		if err == nil && int64(e.Seats) == seats {
			break
		}
	}
	note := fmt.Sprintf("license %s: seats raised from %d to %d through the admin API", ent.ID, ent.Seats, seats)
	r.logf("%s", note)
	return []string{note}, nil
}

func (r *runner) adminTenant(ctx context.Context) (string, error) {
	if r.cfg.Tenant != "" {
		return r.cfg.Tenant, nil
	}
	resp, err := r.exchange(r.get(ctx, r.root+"/admin/v1/tenants", "Authorization", "Bearer "+r.cfg.AdminToken))
	if err != nil {
		return "", err
	}
	if resp.Status != http.StatusOK {
		return "", fmt.Errorf("GET /admin/v1/tenants: HTTP %d: %s", resp.Status, truncate(resp.Body))
	}
	var out struct {
		Tenants []struct {
			Name    string `json:"name"`
			Default bool   `json:"default"`
		} `json:"tenants"`
	}
	if err := json.Unmarshal(resp.Body, &out); err != nil {
		return "", err
	}
	for _, t := range out.Tenants {
		if t.Default {
			return t.Name, nil
		}
	}
	return "", fmt.Errorf("the server has no default tenant: give --tenant")
}

// seatsNeeded bounds the new seats a run can take: its operations, or its duration at a
// rate no server on one machine reaches.
func (r *runner) seatsNeeded() int64 {
	const ceiling = 50_000 // new seats per second
	n := int64(math.Ceil((r.cfg.Duration + r.cfg.Warmup).Seconds() * ceiling))
	if r.cfg.Requests > 0 {
		n = min(n, r.cfg.Requests+int64(r.cfg.Warmup.Seconds()*ceiling))
	}
	return n
}

// --- scenarios ----------------------------------------------------------------------------

func setupBaseline(ctx context.Context, r *runner) (func(int) worker, []string, error) {
	u := r.root + "/"
	return func(int) worker {
		judge := func(resp *Response) string { return Classify(resp, http.StatusOK) }
		return func(ctx context.Context, c *Conn) { c.Do(r.get(ctx, u), judge) }
	}, nil, nil
}

func setupHealthz(ctx context.Context, r *runner) (func(int) worker, []string, error) {
	u := r.root + "/healthz"
	return func(int) worker {
		judge := func(resp *Response) string { return Classify(resp, http.StatusOK) }
		return func(ctx context.Context, c *Conn) { c.Do(r.get(ctx, u), judge) }
	}, nil, nil
}

func setupCheck(ctx context.Context, r *runner) (func(int) worker, []string, error) {
	tok, err := r.token(ctx)
	if err != nil {
		return nil, nil, err
	}
	u := r.authzURL(".json", r.cfg.Item, r.runID+"-check", "") + "&doConsume=false"
	auth := "Bearer " + tok
	return func(int) worker {
		judge := func(resp *Response) string { return Classify(resp, http.StatusOK) }
		return func(ctx context.Context, c *Conn) { c.Do(r.get(ctx, u, "Authorization", auth), judge) }
	}, nil, nil
}

func setupConsume(ctx context.Context, r *runner) (func(int) worker, []string, error) {
	tok, err := r.token(ctx)
	if err != nil {
		return nil, nil, err
	}
	notes, err := r.ensureSeats(ctx, tok, r.cfg.Item, r.seatsNeeded())
	if err != nil {
		return nil, nil, err
	}
	auth := "Bearer " + tok
	return func(conn int) worker {
		var jti string
		judge := leaseJudge(false, &jti)
		prefix := r.runID + "-c" + strconv.Itoa(conn) + "-"
		return func(ctx context.Context, c *Conn) {
			hw := prefix + strconv.FormatInt(c.Next(), 10)
			c.Do(r.get(ctx, r.authzURL(".json", r.cfg.Item, hw, ""), "Authorization", auth), judge)
		}
	}, notes, nil
}

func setupRenew(jwt bool) func(ctx context.Context, r *runner) (func(int) worker, []string, error) {
	return func(ctx context.Context, r *runner) (func(int) worker, []string, error) {
		tok, err := r.token(ctx)
		if err != nil {
			return nil, nil, err
		}
		n := r.cfg.Anchors
		var notes []string
		if n < r.cfg.Connections {
			// Each lease belongs to one connection, so renewals of a lease never race.
			n = r.cfg.Connections
			notes = append(notes, fmt.Sprintf("--anchors raised to %d, one lease per connection at least", n))
		}
		more, err := r.ensureSeats(ctx, tok, r.cfg.Item, int64(n))
		if err != nil {
			return nil, nil, err
		}
		notes = append(notes, more...)
		auth := "Bearer " + tok
		hw := func(i int) string { return r.runID + "-r" + strconv.Itoa(i) }
		jtis := make([]string, n)
		start := time.Now()
		var done atomic.Int64
		err = runAll(ctx, n, r.cfg.Connections, func(ctx context.Context, i int) error {
			resp, err := r.exchange(r.get(ctx, r.authzURL(".json", r.cfg.Item, hw(i), ""), "Authorization", auth))
			if err != nil {
				return fmt.Errorf("seeding lease %d: %w", i, err)
			}
			var jti string
			if kind := leaseJudge(false, &jti)(resp); kind != "" {
				return fmt.Errorf("seeding lease %d: %s: %s", i, kind, truncate(resp.Body))
			}
			jtis[i] = jti
			if d := done.Add(1); d%50_000 == 0 {
				r.logf("seeded %d of %d leases (%.0f/s)", d, n, float64(d)/time.Since(start).Seconds())
			}
			return nil
		})
		if err != nil {
			return nil, notes, err
		}
		seeded := fmt.Sprintf("seeded %d live leases in %s (%.0f/s), not measured", n, time.Since(start).Round(time.Millisecond), float64(n)/time.Since(start).Seconds())
		r.logf("%s", seeded)
		notes = append(notes, seeded)
		format := ".json"
		if jwt {
			format = ".jwt"
		}
		conns := r.cfg.Connections
		return func(conn int) worker {
			i := conn // this connection renews leases conn, conn+conns, conn+2·conns, …
			var jti string
			judge := leaseJudge(jwt, &jti)
			return func(ctx context.Context, c *Conn) {
				if _, ok := c.Do(r.get(ctx, r.authzURL(format, r.cfg.Item, hw(i), jtis[i]), "Authorization", auth), judge); ok {
					jtis[i] = jti
				}
				if i += conns; i >= n {
					i = conn
				}
			}
		}, notes, nil
	}
}

func setupConsumeRelease(ctx context.Context, r *runner) (func(int) worker, []string, error) {
	tok, err := r.token(ctx)
	if err != nil {
		return nil, nil, err
	}
	notes, err := r.ensureSeats(ctx, tok, r.cfg.Item, int64(r.cfg.Connections))
	if err != nil {
		return nil, nil, err
	}
	auth := "Bearer " + tok
	return func(conn int) worker {
		hw := r.runID + "-cr" + strconv.Itoa(conn)
		var jti string
		consume := leaseJudge(false, &jti)
		release := func(resp *Response) string {
			if kind := Classify(resp, http.StatusOK); kind != "" {
				return kind
			}
			if !bytes.Contains(resp.Body, []byte(`_released":true`)) {
				return "bad response not released"
			}
			return ""
		}
		return func(ctx context.Context, c *Conn) {
			if _, ok := c.Do(r.get(ctx, r.authzURL(".json", r.cfg.Item, hw, ""), "Authorization", auth), consume); !ok {
				return
			}
			u := r.base + "/authz/.json?release&" + url.QueryEscape(jti)
			c.Do(r.get(ctx, u, "Authorization", auth), release)
		}
	}, notes, nil
}

func setupToken(ctx context.Context, r *runner) (func(int) worker, []string, error) {
	if _, err := r.token(ctx); err != nil {
		return nil, nil, err
	}
	u, auth := r.base+"/oauth2/token", r.basicAuth()
	return func(int) worker {
		judge := func(resp *Response) string {
			if kind := Classify(resp, http.StatusOK); kind != "" {
				return kind
			}
			if jsonString(resp.Body, "access_token") == "" {
				return "bad response no access_token"
			}
			return ""
		}
		return func(ctx context.Context, c *Conn) {
			c.Do(r.postForm(ctx, u, "grant_type=client_credentials", "Authorization", auth), judge)
		}
	}, nil, nil
}

func setupIntrospect(ctx context.Context, r *runner) (func(int) worker, []string, error) {
	tok, err := r.token(ctx)
	if err != nil {
		return nil, nil, err
	}
	u, auth, form := r.base+"/oauth2/introspect", r.basicAuth(), "token="+url.QueryEscape(tok)
	resp, err := r.exchange(r.postForm(ctx, u, form, "Authorization", auth))
	if err != nil {
		return nil, nil, err
	}
	if resp.Status == http.StatusNotFound || resp.Status == http.StatusMethodNotAllowed {
		return nil, nil, &SkipError{fmt.Sprintf("POST /oauth2/introspect answered HTTP %d: this server has no introspection endpoint", resp.Status)}
	}
	judge := func(resp *Response) string {
		if kind := Classify(resp, http.StatusOK); kind != "" {
			return kind
		}
		if !bytes.Contains(resp.Body, []byte(`"active":true`)) {
			return "bad response not active"
		}
		return ""
	}
	if kind := judge(resp); kind != "" {
		return nil, nil, fmt.Errorf("introspection probe: %s: %s", kind, truncate(resp.Body))
	}
	return func(int) worker {
		return func(ctx context.Context, c *Conn) { c.Do(r.postForm(ctx, u, form, "Authorization", auth), judge) }
	}, nil, nil
}

func setupSessionLogin(ctx context.Context, r *runner) (func(int) worker, []string, error) {
	if r.cfg.Username == "" {
		return nil, nil, fmt.Errorf("session-login needs --user and --password")
	}
	login := r.base + "/session/login"
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(r.cfg.Username+":"+r.cfg.Password))
	cookies := make([]string, r.cfg.Connections)
	start := time.Now()
	// One login at a time: each hashes the password with argon2id (tens of MiB), the
	// server's throttle counts a login in flight as a failure until it succeeds (so
	// concurrent logins of one user from one address look like guessing), and the setup is
	// not what is measured.
	err := runAll(ctx, len(cookies), 1, func(ctx context.Context, i int) error {
		// Each connection is its own device: without a device id every login gets a new one.
		var resp *Response
		for attempt := 0; ; attempt++ {
			var err error
			if resp, err = r.exchange(r.postForm(ctx, login, "", "Authorization", basic)); err != nil {
				return err
			}
			if resp.Status != http.StatusTooManyRequests || attempt == 5 {
				break
			}
			wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			sleep(ctx, time.Duration(min(max(wait, 1), 5))*time.Second)
		}
		if resp.Status == http.StatusNotFound || resp.Status == http.StatusMethodNotAllowed {
			return &SkipError{fmt.Sprintf("POST /session/login answered HTTP %d: this server has no session API", resp.Status)}
		}
		if resp.Status != http.StatusOK {
			return fmt.Errorf("login %d: HTTP %d: %s", i, resp.Status, truncate(resp.Body))
		}
		for _, ck := range (&http.Response{Header: resp.Header}).Cookies() {
			if ck.Name == "lh_session" {
				cookies[i] = ck.Name + "=" + ck.Value
			}
		}
		if cookies[i] == "" {
			return fmt.Errorf("login %d: no lh_session cookie in the answer", i)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	note := fmt.Sprintf("%d logins (one per connection) in %s, not measured", len(cookies), time.Since(start).Round(time.Millisecond))
	u := r.base + "/entitlements/licenses"
	return func(conn int) worker {
		judge := func(resp *Response) string { return Classify(resp, http.StatusOK) }
		return func(ctx context.Context, c *Conn) { c.Do(r.get(ctx, u, "Cookie", cookies[conn]), judge) }
	}, []string{note}, nil
}
