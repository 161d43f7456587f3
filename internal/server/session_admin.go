package server

import (
	"context"
	"encoding/json"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/session"
	"github.com/leasehold/leasehold/internal/store"
)

// revokeLoginTokensOnPasswordChange revokes a user's login tokens, in the transaction that
// stores the user, when the write changes the password (SPEC §4): a token made with the old
// password must not outlive it. cur is the stored object before the write (nil: new).
func revokeLoginTokensOnPasswordChange(ctx context.Context, tx store.Tx, kind domain.Kind, cur *store.Object, spec []byte) error {
	if kind != domain.KindUser || cur == nil {
		return nil
	}
	var before, after domain.User
	if json.Unmarshal(cur.Spec, &before) != nil || json.Unmarshal(spec, &after) != nil {
		return nil
	}
	if before.PasswordHash == after.PasswordHash {
		return nil
	}
	_, err := session.RevokeLoginTokensTx(ctx, tx, cur.Tenant, before.Username)
	return err
}
