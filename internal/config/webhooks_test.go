package config

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
)

func withWebhook(wh string) string {
	return with(gwLics, gwLics+"\n    webhooks:\n"+wh)
}

func TestWebhookParses(t *testing.T) {
	cfg, err := Parse([]byte(withWebhook("      - {id: billing, url: 'https://v.example/h', secret_env: HOOK_SECRET}\n")))
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.Tenants[0].Webhooks[0].Spec
	if w.ID != "billing" || w.SecretEnv != "HOOK_SECRET" || !slices.Equal(w.Events, domain.WebhookEvents) ||
		w.ExpiringNotice.D() != 168*time.Hour || w.RetryFor.D() != 24*time.Hour {
		t.Fatalf("defaults: %+v", w)
	}
}

func TestWebhookValidationErrors(t *testing.T) {
	for _, tc := range []struct{ name, wh, want string }{
		{"deliveries", "      - {id: deliveries, url: 'http://x/h', secret: s}\n",
			`config: tenants[acme].webhooks[deliveries].id: "deliveries" is the admin API's deliveries list`},
		{"id", "      - {id: Billing, url: 'http://x/h', secret: s}\n",
			"config: tenants[acme].webhooks[Billing].id: must match [a-z0-9][a-z0-9-]{0,62}"},
		{"url", "      - {id: b, url: 'ftp://x/h', secret: s}\n",
			"config: tenants[acme].webhooks[b].url: must be an absolute http or https URL without user info or fragment"},
		{"no secret", "      - {id: b, url: 'http://x/h'}\n",
			"config: tenants[acme].webhooks[b].secret: required (or secret_env)"},
		{"both secrets", "      - {id: b, url: 'http://x/h', secret: s, secret_env: S}\n",
			"config: tenants[acme].webhooks[b].secret: give secret or secret_env, not both"},
		{"env name", "      - {id: b, url: 'http://x/h', secret_env: 'A-B'}\n",
			"config: tenants[acme].webhooks[b].secret_env: must be an environment variable name"},
		{"event", "      - {id: b, url: 'http://x/h', secret: s, events: [license.gone]}\n",
			`config: tenants[acme].webhooks[b].events: unknown event "license.gone"…`},
		{"no events", "      - {id: b, url: 'http://x/h', secret: s, events: []}\n",
			"config: tenants[acme].webhooks[b].events: must name at least one event (leave it out for all)"},
		{"duplicate", "      - {id: b, url: 'http://x/h', secret: s}\n      - {id: b, url: 'http://x/h', secret: s}\n",
			`config: tenants[acme].webhooks[1].id: duplicate webhook "b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(withWebhook(tc.wh)))
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
