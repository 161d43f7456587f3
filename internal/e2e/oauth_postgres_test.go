package e2e

import (
	"net/http"
	"net/url"
	"sync"
	"testing"
)

// TestOAuthPostgresRaces: on PostgreSQL (READ COMMITTED, several connections) a code is
// redeemed once, however many requests race for it, and racing retries of a refresh token
// within refresh_grace leave exactly one live pair. Skipped without LEASEHOLD_TEST_POSTGRES.
func TestOAuthPostgresRaces(t *testing.T) {
	dsn := freshPostgres(t)
	ts := startAt(t, oauthConfig, t.TempDir(), dsn)
	const n = 8

	code := oaCode(t, nil, ts.URL, "tg", "alice", "alice-pw", "Therefore_User offline_access")
	results := make([]response, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = oaExchange(t, ts.URL, "tg", code)
		}()
	}
	wg.Wait()
	won := 0
	for _, r := range results {
		switch r.Status {
		case http.StatusOK:
			won++
			access, _, _ := oaTokens(t, r)
			// The others presented a used code: what it issued is revoked.
			if s := oaStatus(t, ts.URL+"/t/tg/entitlements/licenses", access); s != http.StatusUnauthorized {
				t.Fatalf("a raced code's token: %d", s)
			}
		default:
			oaWantError(t, r, http.StatusBadRequest, "invalid_grant")
		}
	}
	if won != 1 {
		t.Fatalf("%d exchanges of one code succeeded", won)
	}

	_, refresh, _ := oaTokens(t, oaExchange(t, ts.URL, "tg", oaCode(t, nil, ts.URL, "tg", "alice", "alice-pw", "Therefore_User offline_access")))
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = oaRefresh(t, ts.URL, "tg", "tf-app", "tf-secret", refresh)
		}()
	}
	wg.Wait()
	live := 0
	var last string
	for _, r := range results {
		access, newRefresh, _ := oaTokens(t, r)
		if oaStatus(t, ts.URL+"/t/tg/entitlements/licenses", access) == http.StatusOK {
			live++
			last = newRefresh
		}
	}
	if live != 1 {
		t.Fatalf("%d live pairs after racing retries", live)
	}
	oaTokens(t, postForm(t, ts.URL+"/oauth2/token?tenant=tg", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {last}},
		map[string]string{"Authorization": oaBasic("tf-app", "tf-secret")}))
}
