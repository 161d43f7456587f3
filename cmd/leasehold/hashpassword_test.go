package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/leasehold/leasehold/internal/config"
	"github.com/leasehold/leasehold/internal/secret"
)

func TestHashPassword(t *testing.T) {
	for _, tc := range []struct{ name, input, password string }{
		{"piped with a newline", "alice-pw\n", "alice-pw"},
		{"no newline", "alice-pw", "alice-pw"},
		{"CRLF", "alice-pw\r\n", "alice-pw"},
		{"spaces are part of it", " a b \n", " a b "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			in := passwordInput{r: strings.NewReader(tc.input)}
			if code := hashPassword(nil, in, &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			phc := strings.TrimSuffix(out.String(), "\n")
			if !strings.HasPrefix(phc, "$argon2id$") || strings.Contains(phc, "\n") {
				t.Fatalf("not one argon2id PHC line: %q", out.String())
			}
			if ok, err := secret.Verify(tc.password, phc); !ok || err != nil {
				t.Fatalf("the hash does not verify %q: %v %v", tc.password, ok, err)
			}
			if ok, _ := secret.Verify(tc.password+"x", phc); ok {
				t.Fatal("the hash verifies another password")
			}
			// Usable as it is in a configuration file, for a user and a client.
			cfg := "tenants:\n  - name: acme\n    users: [{username: alice, password_hash: '" + phc +
				"'}]\n    clients: [{client_id: app, client_secret_hash: '" + phc + "'}]\n"
			if _, err := config.Parse([]byte(cfg)); err != nil {
				t.Fatalf("config refuses the hash: %v", err)
			}
		})
	}
}

func TestHashPasswordRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, input string
		args        []string
		code        int
	}{
		{"empty", "\n", nil, 1},
		{"too long", strings.Repeat("x", 5000), nil, 1},
		{"an argument", "", []string{"alice-pw"}, 2},
	} {
		var out, errb bytes.Buffer
		if code := hashPassword(tc.args, passwordInput{r: strings.NewReader(tc.input)}, &out, &errb); code != tc.code || out.Len() != 0 {
			t.Errorf("%s: exit %d, output %q; want exit %d and no output", tc.name, code, out.String(), tc.code)
		}
	}
	var out, errb bytes.Buffer
	if code := hashPassword([]string{"--help"}, passwordInput{r: strings.NewReader("")}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "usage") {
		t.Errorf("--help: exit %d, %q", code, errb.String())
	}
}
