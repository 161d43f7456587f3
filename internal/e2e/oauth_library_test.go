package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// TestOAuthLibraryClientCredentials: golang.org/x/oauth2/clientcredentials works unmodified.
func TestOAuthLibraryClientCredentials(t *testing.T) {
	ts := start(t, oauthConfig)
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, client)
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams, oauth2.AuthStyleAutoDetect} {
		conf := clientcredentials.Config{
			ClientID: "jim-a", ClientSecret: "a-secret", TokenURL: ts.URL + "/t/jim/oauth2/token",
			Scopes: []string{"all"}, AuthStyle: style,
		}
		tok, err := conf.Token(ctx)
		if err != nil {
			t.Fatalf("style %d: %v", style, err)
		}
		if tok.AccessToken == "" || tok.RefreshToken == "" || tok.Expiry.IsZero() {
			t.Fatalf("style %d: token %+v", style, tok)
		}
		if s := oaStatus(t, ts.URL+"/t/jim/entitlements/licenses", tok.AccessToken); s != http.StatusOK {
			t.Fatalf("style %d: token refused: %d", style, s)
		}
	}
	// The library's http.Client: the token goes on every request.
	conf := clientcredentials.Config{ClientID: "jim-a", ClientSecret: "a-secret", TokenURL: ts.URL + "/oauth2/token?tenant=jim"}
	resp, err := conf.Client(ctx).Get(ts.URL + "/t/jim/entitlements/licenses")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("library client: %d", resp.StatusCode)
	}
	// A wrong secret is an error the library reports as RFC 6749 §5.2.
	bad := clientcredentials.Config{ClientID: "jim-a", ClientSecret: "wrong", TokenURL: ts.URL + "/t/jim/oauth2/token"}
	_, err = bad.Token(ctx)
	if re, ok := err.(*oauth2.RetrieveError); !ok || re.ErrorCode != "invalid_client" {
		t.Fatalf("wrong secret: %v", err)
	}
}

// TestOAuthLibraryPKCE: oauth2.Config with PKCE S256 through the login page, the oaExchange,
// and a refresh through the library's TokenSource.
func TestOAuthLibraryPKCE(t *testing.T) {
	ts := start(t, oauthConfig)
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, client)
	conf := &oauth2.Config{
		ClientID: "web-app",
		Endpoint: oauth2.Endpoint{
			AuthURL:  ts.URL + "/t/tx/oauth2/authorize",
			TokenURL: ts.URL + "/t/tx/oauth2/token",
		},
		RedirectURL: oaWebRedirect,
		Scopes:      []string{"Therefore_User", "offline_access"},
	}
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("state-123", oauth2.S256ChallengeOption(verifier))

	b := oaNewBrowser(t)
	loc := b.login(ts.URL, authURL, "alice", "alice-pw")
	q := loc.Query()
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != oaWebRedirect {
		t.Fatalf("redirected to %s", loc)
	}
	if q.Get("state") != "state-123" || q.Get("code") == "" || q.Get("iss") != ts.URL+"/t/tx" {
		t.Fatalf("redirect query: %v", q)
	}
	// The oaBrowser login took no seat: only the oaExchange does.
	if n := len(adminLeases(t, ts.URL, "tx")); n != 0 {
		t.Fatalf("browser login holds %d leases", n)
	}

	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" || tok.Extra("scope") != "Therefore_User offline_access" {
		t.Fatalf("token: %+v scope=%v", tok, tok.Extra("scope"))
	}
	if n := len(adminLeases(t, ts.URL, "tx")); n != 1 {
		t.Fatalf("after the oaExchange: %d leases, want the session's 1", n)
	}
	if s := oaStatus(t, ts.URL+"/t/tx/entitlements/licenses", tok.AccessToken); s != http.StatusOK {
		t.Fatalf("access token refused: %d", s)
	}

	// Refresh through the library: an expired token makes the TokenSource refresh.
	old := *tok
	expired := *tok
	expired.Expiry = time.Now().Add(-time.Minute)
	fresh, err := conf.TokenSource(ctx, &expired).Token()
	if err != nil {
		t.Fatal(err)
	}
	if fresh.AccessToken == old.AccessToken || fresh.RefreshToken == "" || fresh.RefreshToken == old.RefreshToken {
		t.Fatalf("refresh did not rotate: %+v", fresh)
	}
	if s := oaStatus(t, ts.URL+"/t/tx/entitlements/licenses", fresh.AccessToken); s != http.StatusOK {
		t.Fatalf("refreshed access token refused: %d", s)
	}
	if s := oaStatus(t, ts.URL+"/t/tx/entitlements/licenses", old.AccessToken); s != http.StatusUnauthorized {
		t.Fatalf("the rotated access token still works: %d", s)
	}
	// The same session and seat.
	if n := len(adminLeases(t, ts.URL, "tx")); n != 1 {
		t.Fatalf("after refresh: %d leases", n)
	}

	// A second authorization in the same oaBrowser skips the form (the login cookie).
	verifier2 := oauth2.GenerateVerifier()
	r := b.get(conf.AuthCodeURL("state-2", oauth2.S256ChallengeOption(verifier2)))
	loc = oaRedirectOf(t, r)
	if loc.Query().Get("code") == "" || loc.Query().Get("state") != "state-2" {
		t.Fatalf("cookie login: %s", loc)
	}
	tok2, err := conf.Exchange(ctx, loc.Query().Get("code"), oauth2.VerifierOption(verifier2))
	if err != nil {
		t.Fatal(err)
	}
	// Same user, same device (the lh_device cookie): the seat's anchors match, so both
	// sessions share the one seat of this 1-seat license.
	if s := oaStatus(t, ts.URL+"/t/tx/entitlements/licenses", tok2.AccessToken); s != http.StatusOK {
		t.Fatalf("second session refused: %d", s)
	}
}
