package objects

import (
	"encoding/json"
	"errors"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// keepWebhookSecret keeps the stored secret of a webhook written with secret "(set)", what
// admin reads show in its place: a read-modify-write of the object does not lose it.
func keepWebhookSecret(cur *store.Object, spec []byte) ([]byte, error) {
	var w domain.Webhook
	if err := json.Unmarshal(spec, &w); err != nil || w.Secret != "(set)" {
		return spec, err
	}
	var old domain.Webhook
	if cur == nil || json.Unmarshal(cur.Spec, &old) != nil || old.Secret == "" {
		return nil, errors.New(`secret "(set)" names no stored secret`)
	}
	w.Secret = old.Secret
	return json.Marshal(w)
}
