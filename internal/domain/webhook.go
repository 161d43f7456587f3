package domain

import (
	"context"
	"time"
)

// Webhook event types (SPEC §9).
const (
	EventLicenseExhausted = "license.exhausted"
	EventLicenseAvailable = "license.available"
	EventLeaseDenied      = "lease.denied"
	EventSessionStarted   = "session.started"
	EventSessionEnded     = "session.ended"
	EventLicenseExpiring  = "license.expiring"
)

// WebhookEvents are every event type, the default of a webhook's events.
var WebhookEvents = []string{
	EventLicenseExhausted, EventLicenseAvailable, EventLeaseDenied,
	EventSessionStarted, EventSessionEnded, EventLicenseExpiring,
}

// Session end reasons of session.ended.
const (
	EndLogout  = "logout"
	EndExpired = "expired"
	EndRevoked = "revoked"
	EndAdmin   = "admin"
)

// Webhook tells a vendor's endpoint about a tenant's events (SPEC §9). Its secret is the
// HMAC key of the signature, so it is kept as given (a hash could not sign); admin reads
// show "(set)" in its place, and writing "(set)" back keeps the stored one.
type Webhook struct {
	ID  string `json:"id"`
	URL string `json:"url"`
	// Secret, or SecretEnv: the name of an environment variable holding it, read by each
	// process when it signs.
	Secret    string   `json:"secret,omitempty"`
	SecretEnv string   `json:"secret_env,omitempty"`
	Events    []string `json:"events"`
	// ExpiringNotice is how long before a license's valid_until license.expiring is sent.
	ExpiringNotice Duration `json:"expiring_notice"`
	// RetryFor is how long an undelivered event is retried.
	RetryFor Duration `json:"retry_for"`
}

// Webhook defaults.
const (
	DefaultExpiringNotice = 168 * time.Hour
	DefaultWebhookRetry   = 24 * time.Hour
)

func (w *Webhook) UnmarshalJSON(b []byte) error {
	type plain Webhook
	v := plain{ExpiringNotice: Duration(DefaultExpiringNotice), RetryFor: Duration(DefaultWebhookRetry)}
	if err := DecodeStrict(b, &v); err != nil {
		return err
	}
	if v.Events == nil {
		v.Events = append([]string(nil), WebhookEvents...)
	}
	*w = Webhook(v)
	return nil
}

// Wants reports whether the webhook subscribes to event type typ.
func (w *Webhook) Wants(typ string) bool {
	for _, e := range w.Events {
		if e == typ {
			return true
		}
	}
	return false
}

type endReasonKey struct{}

// WithEndReason has the sessions a call ends report reason (session.ended): the caller
// knows why (an administrator, the sweeper, a revocation); the default is EndLogout.
func WithEndReason(ctx context.Context, reason string) context.Context {
	return context.WithValue(ctx, endReasonKey{}, reason)
}

// EndReason is the reason WithEndReason set, else EndLogout.
func EndReason(ctx context.Context) string {
	if r, ok := ctx.Value(endReasonKey{}).(string); ok {
		return r
	}
	return EndLogout
}
