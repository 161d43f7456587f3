package server

import (
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Fuzz targets for what the HTTP front reads from a client before any handler logic: the
// Bearer header, the login bodies (Basic, form, JSON; the session API's and the dialects'),
// cookies and device ids, and the client address.

// headerSafe reports whether v could arrive as a header value (net/http refuses the rest
// before a handler sees it).
func headerSafe(v string) bool {
	return !strings.ContainsAny(v, "\r\n\x00")
}

func FuzzBearerToken(f *testing.F) {
	for _, h := range []string{"Bearer abc", "bearer abc", "BEARER  abc ", "Bearer ", "Bearer", "Basic YWxpY2U6cHc=",
		"Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln", "Bearer\tabc", "Bearerabc", "Bearer a b", ""} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if !headerSafe(h) {
			return
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", h)
		tok := bearerToken(r)
		if tok != "" {
			if len(h) < 8 || !strings.EqualFold(h[:7], "bearer ") {
				t.Fatalf("%q: token %q from a header that is not Bearer", h, tok)
			}
			if tok != strings.TrimSpace(tok) || !strings.HasSuffix(strings.TrimSpace(h), tok) {
				t.Fatalf("%q: token %q is not the header's credentials", h, tok)
			}
		} else if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") && strings.TrimSpace(h[7:]) != "" {
			t.Fatalf("%q: credentials missed", h)
		}
		// Round trip: a token written as a client writes it is read back as it is.
		if v := strings.TrimSpace(h); v != "" {
			r.Header.Set("Authorization", "Bearer "+v)
			if got := bearerToken(r); got != v {
				t.Fatalf("Bearer %q read back as %q", v, got)
			}
		}
	})
}

// FuzzReadLoginInput drives the parser of /session/login, /session/token-login, DocuWare's
// TokenLogOn and (through readSessionBody) /session/refresh and DocuWare's Logon: JSON by
// Content-Type or by a leading "{", a form, the query string, HTTP Basic.
func FuzzReadLoginInput(f *testing.F) {
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:alice-pw"))
	f.Add("application/json", `{"username":"alice","password":"alice-pw","refresh":true}`, "", "")
	f.Add("application/json", `{"username":"alice","password":"alice-pw","refresh":"1","device":"d-1"}`, "tenant=acme", "")
	f.Add("application/x-www-form-urlencoded", "username=alice&password=alice-pw&refresh=true", "", "")
	f.Add("", `{"token":"lt_abc"}`, "", "")                                  // curl -d with JSON
	f.Add("application/x-www-form-urlencoded", `{"Token":"lt_abc"}`, "", "") // curl's default type
	f.Add("application/x-www-form-urlencoded", "Token=lt_abc", "refresh=false", "")
	f.Add("", "", "refresh=true", basic)
	f.Add("text/plain", "whatever", "refresh=maybe", basic)
	f.Add("application/json", `{"refresh":null}`, "refresh=yes", "")
	f.Add("application/json", `{"username":1}`, "", "")
	f.Add("application/json", `[1,2]`, "", "")
	f.Add("application/x-www-form-urlencoded", "%zz", "", "")
	f.Add("application/json; charset=utf-8", `{"username":"a\u0000b"}`, "%zz", "")
	f.Fuzz(func(t *testing.T, contentType, body, query, authorization string) {
		if !headerSafe(contentType) || !headerSafe(authorization) {
			return
		}
		r := httptest.NewRequest(http.MethodPost, "/session/login", strings.NewReader(body))
		r.URL.RawQuery = query
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		if authorization != "" {
			r.Header.Set("Authorization", authorization)
		}
		rec := httptest.NewRecorder()
		in, ok := readLoginInput(rec, r)
		if !ok {
			checkAPIError(t, rec, len(body) > maxFormBody)
			return
		}
		if rec.Body.Len() != 0 || len(rec.Header()) != 0 {
			t.Fatalf("accepted, yet answered: %d %v %q", rec.Code, rec.Header(), rec.Body)
		}
		if len(body) > maxFormBody {
			t.Fatalf("a body of %d bytes accepted", len(body))
		}
		// HTTP Basic, when valid, names the user whatever the body says.
		if u, p, basicOK := r.BasicAuth(); basicOK && (in.Username != u || in.Password != p) {
			t.Fatalf("Basic %q/%q read as %q/%q", u, p, in.Username, in.Password)
		}
		// refresh=… in the query alone (no body) is read as the boolean it spells.
		if q, err := url.ParseQuery(query); err == nil && body == "" && q.Has("refresh") {
			want, err := strconv.ParseBool(q.Get("refresh"))
			if err == nil && in.Refresh != want {
				t.Fatalf("refresh=%q read as %v", q.Get("refresh"), in.Refresh)
			}
		}
		// A JSON body (by its type, or by its "{" when untyped or typed as a form, as curl -d
		// sends it): its non-empty fields win over the query's.
		ct, _, _ := mime.ParseMediaType(contentType)
		trimmed := strings.TrimSpace(body)
		isJSON := ct == "application/json" || (strings.HasPrefix(trimmed, "{") && (ct == "" || ct == "application/x-www-form-urlencoded"))
		var j map[string]any
		if isJSON && json.Unmarshal([]byte(trimmed), &j) == nil {
			if _, _, basicOK := r.BasicAuth(); !basicOK {
				if v, _ := jsonField(j, "username").(string); v != "" && in.Username != v {
					t.Fatalf("JSON username %q read as %q", v, in.Username)
				}
			}
			if v, _ := jsonField(j, "device").(string); v != "" && in.Device != v {
				t.Fatalf("JSON device %q read as %q", v, in.Device)
			}
		}
	})
}

// jsonField is what encoding/json puts in a struct field named key when exactly one key of
// the object matches it (case-insensitively, as encoding/json matches); nil otherwise.
func jsonField(m map[string]any, key string) any {
	var found any
	n := 0
	for k, v := range m {
		if strings.EqualFold(k, key) {
			found = v
			n++
		}
	}
	if n != 1 {
		return nil
	}
	return found
}

// checkAPIError: a refusal is a 4xx with the JSON error shape (413 for a body over the
// bound), never a 5xx or an empty answer.
func checkAPIError(t *testing.T, rec *httptest.ResponseRecorder, tooBig bool) {
	t.Helper()
	if rec.Code < 400 || rec.Code >= 500 || (tooBig && rec.Code != http.StatusRequestEntityTooLarge) {
		t.Fatalf("refused with %d %q", rec.Code, rec.Body)
	}
	var e apiError
	if rec.Header().Get("Content-Type") != "application/json" || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error == "" {
		t.Fatalf("refusal body %q (%s)", rec.Body, rec.Header().Get("Content-Type"))
	}
}

// FuzzCookies: cookieValues keeps the first few non-empty, bounded values of the cookie in
// the order sent; requestDevice takes a device id only when it can go back into a cookie
// unchanged.
func FuzzCookies(f *testing.F) {
	for _, c := range []string{
		"lh_session=abc; lh_device=dev-1",
		"lh_session=t; lh_session=root; lh_session=x; lh_session=y",
		".DWPLATFORMAUTH=abc; DWPLATFORMBROWSERID=5f1c",
		`lh_device="quoted"; lh_session=`,
		"lh_device=a b; lh_device=ok",
		"lh_session=" + strings.Repeat("x", 600) + "; lh_session=short",
		"lh_device=" + strings.Repeat("d", 129),
		"lh_device=caf\u00e9; DWPLATFORMBROWSERID=a,b",
		"=; ;;lh_session",
	} {
		f.Add(c, "")
	}
	f.Add("", "dev-1")
	f.Add("lh_device=fromcookie", `has"quote`)
	f.Fuzz(func(t *testing.T, cookie, param string) {
		if !headerSafe(cookie) {
			return
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Cookie", cookie)
		for _, name := range []string{sessionCookie, dwSessionCookie, deviceCookie} {
			var sent []string
			for _, c := range r.CookiesNamed(name) {
				if c.Value != "" && len(c.Value) <= 512 {
					sent = append(sent, c.Value)
				}
			}
			got := cookieValues(r, name)
			if len(got) > 3 || !slices.Equal(got, sent[:min(len(sent), 3)]) {
				t.Fatalf("%s from %q: %q, want the first three of %q", name, cookie, got, sent)
			}
		}

		rec := httptest.NewRecorder()
		dev, ok := requestDevice(rec, r, param)
		switch {
		case !ok:
			if param == "" || validDevice(param) {
				t.Fatalf("device param %q refused", param)
			}
			checkAPIError(t, rec, false)
			return
		case param != "" && dev != param:
			t.Fatalf("device param %q read as %q", param, dev)
		case param == "" && dev != "":
			var fromCookie []string
			for _, name := range []string{deviceCookie, dwDeviceCookie} {
				fromCookie = append(fromCookie, cookieValues(r, name)...)
			}
			if !slices.Contains(fromCookie, dev) {
				t.Fatalf("device %q is none of the cookies' %q", dev, fromCookie)
			}
		}
		if dev == "" {
			return
		}
		if len(dev) > maxDeviceLen {
			t.Fatalf("device id of %d bytes", len(dev))
		}
		// Round trip: the id set back as a cookie (as the login does) reads back unchanged.
		w := httptest.NewRecorder()
		http.SetCookie(w, &http.Cookie{Name: deviceCookie, Value: dev, Path: "/"})
		back := httptest.NewRequest(http.MethodGet, "/", nil)
		back.Header.Set("Cookie", strings.SplitN(w.Header().Get("Set-Cookie"), ";", 2)[0])
		if c, err := back.Cookie(deviceCookie); err != nil || c.Value != dev {
			t.Fatalf("device %q does not survive a cookie: %q → %v %v", dev, w.Header().Get("Set-Cookie"), c, err)
		}
	})
}

// FuzzClientAddr: the address used for ip_ranges, countries, throttling and logs is the TCP
// peer unless the peer is a trusted proxy, and then the nearest untrusted hop of
// X-Forwarded-For: a client never picks its own address through the header.
func FuzzClientAddr(f *testing.F) {
	f.Add("203.0.113.9:5000", "1.2.3.4", "")
	f.Add("10.0.0.2:80", "1.2.3.4, 198.51.100.7", "")
	f.Add("10.0.0.2:80", "198.51.100.7, 10.1.1.1", "10.2.2.2")
	f.Add("10.0.0.2:80", "bogus, 10.3.3.3", "")
	f.Add("[::ffff:10.0.0.2]:1", "::ffff:198.51.100.7", "")
	f.Add("[::1]:443", "2001:db8::1%eth0, fe80::1", " ,")
	f.Add("127.0.0.1:1", "10.0.0.1,10.0.0.2", "127.0.0.5")
	f.Add("not-an-address", "1.2.3.4", "")
	f.Add("10.0.0.2", "", "")
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	f.Fuzz(func(t *testing.T, peer, xff1, xff2 string) {
		if !headerSafe(xff1) || !headerSafe(xff2) {
			return
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = peer
		var hops []string
		for _, h := range []string{xff1, xff2} {
			if h != "" {
				r.Header.Add("X-Forwarded-For", h)
				for part := range strings.SplitSeq(h, ",") {
					hops = append(hops, strings.TrimSpace(part))
				}
			}
		}
		slices.Reverse(hops) // nearest hop first
		got := clientAddr(r, trusted)
		p := peerAddr(r)
		if got.Is4In6() {
			t.Fatalf("%v: an IPv4-mapped address", got)
		}
		if !isTrusted(p, trusted) {
			if got != p {
				t.Fatalf("peer %q untrusted, yet the address is %v (peer %v)", peer, got, p)
			}
			if forwardedTLS(r, trusted) {
				t.Fatal("X-Forwarded-Proto believed from an untrusted peer")
			}
			return
		}
		// Walk from the peer outwards: the first untrusted hop, or the last believable one.
		want := p
		for _, h := range hops {
			a, err := netip.ParseAddr(h)
			if err != nil {
				break
			}
			want = a.Unmap()
			if !isTrusted(want, trusted) {
				break
			}
		}
		if got != want {
			t.Fatalf("peer %v, X-Forwarded-For %q, %q: got %v, want %v", p, xff1, xff2, got, want)
		}
	})
}
