package config

import (
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/leasehold/leasehold/internal/domain"
)

// maxSecretLen bounds a webhook secret (an HMAC key longer than a block is hashed anyway).
const maxSecretLen = 1024

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// webhook checks a webhook (SPEC §9).
func (v *validator) webhook(path string, w *domain.Webhook) {
	switch {
	case w.ID == "":
	case !gatewayNameRE.MatchString(w.ID):
		v.add(path+".id", "must match [a-z0-9][a-z0-9-]{0,62}")
	case w.ID == "deliveries":
		v.add(path+".id", `"deliveries" is the admin API's deliveries list`)
	}
	switch u, err := url.Parse(w.URL); {
	case w.URL == "":
		v.add(path+".url", "required")
	case len(w.URL) > maxURLLen:
		v.add(path+".url", "longer than %d bytes", maxURLLen)
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "":
		v.add(path+".url", "must be an absolute http or https URL without user info or fragment")
	}
	switch {
	case w.Secret == "" && w.SecretEnv == "":
		v.add(path+".secret", "required (or secret_env)")
	case w.Secret != "" && w.SecretEnv != "":
		v.add(path+".secret", "give secret or secret_env, not both")
	case len(w.Secret) > maxSecretLen:
		v.add(path+".secret", "longer than %d bytes", maxSecretLen)
	case w.Secret == "(set)":
		v.add(path+".secret", `"(set)" stands for a stored secret: give the secret itself`)
	case w.SecretEnv != "" && !envNameRE.MatchString(w.SecretEnv):
		v.add(path+".secret_env", "must be an environment variable name")
	}
	if len(w.Events) == 0 {
		v.add(path+".events", "must name at least one event (leave it out for all)")
	}
	seen := map[string]bool{}
	for _, e := range w.Events {
		if !slices.Contains(domain.WebhookEvents, e) {
			v.add(path+".events", "unknown event %q (one of %s)", e, strings.Join(domain.WebhookEvents, ", "))
			continue
		}
		if seen[e] {
			v.add(path+".events", "duplicate event %q", e)
		}
		seen[e] = true
	}
	v.durations(path, map[string]domain.Duration{"expiring_notice": w.ExpiringNotice, "retry_for": w.RetryFor})
}
