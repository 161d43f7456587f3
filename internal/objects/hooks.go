package objects

import (
	"context"
	"encoding/json"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/session"
	"github.com/leasehold/leasehold/internal/store"
)

// The hooks are the rules a change of an object carries with it, run in the transaction
// that writes it, whoever writes it (file, admin apply, admin API).
//
// Authentication reads `enabled` and the object's existence from the catalog, whose
// version every write moves, so a disabled or removed client's or user's tokens stop
// working as soon as each process sees the new version. A client's tokens are also
// deleted then, so that enabling it again does not revive them.

// afterPut runs the hooks of writing obj over cur (nil: a new object).
func afterPut(ctx context.Context, tx store.Tx, tenant string, kind domain.Kind, cur, obj *store.Object) error {
	if kind == domain.KindClient && cur != nil {
		var before, after domain.Client
		if json.Unmarshal(cur.Spec, &before) == nil && json.Unmarshal(obj.Spec, &after) == nil && before.Enabled && !after.Enabled {
			_, err := session.RevokeClientTokensTx(ctx, tx, tenant, before.ClientID)
			return err
		}
		return nil
	}
	if kind != domain.KindUser || cur == nil {
		return nil
	}
	var before, after domain.User
	if json.Unmarshal(cur.Spec, &before) != nil || json.Unmarshal(obj.Spec, &after) != nil {
		return nil
	}
	// A login token made under the old password must not outlive it (SPEC §4). Hashes are
	// compared: a file re-applied with the same password keeps its hash (package apply),
	// so only a real change revokes.
	if before.PasswordHash == after.PasswordHash {
		return nil
	}
	_, err := session.RevokeLoginTokensTx(ctx, tx, tenant, before.Username)
	return err
}

// afterDelete runs the hooks of removing cur.
func afterDelete(ctx context.Context, tx store.Tx, tenant string, kind domain.Kind, cur *store.Object) error {
	if kind == domain.KindWebhook {
		// SPEC §9: removing a webhook cancels its pending deliveries.
		_, err := tx.CancelWebhookDeliveries(ctx, tenant, cur.ID)
		return err
	}
	if kind == domain.KindClient {
		// A client created again under the id must not inherit its tokens.
		_, err := session.RevokeClientTokensTx(ctx, tx, tenant, cur.ID)
		return err
	}
	if kind != domain.KindUser {
		return nil
	}
	// A user created again under the name must not inherit its login tokens.
	_, err := session.RevokeLoginTokensTx(ctx, tx, tenant, cur.ID)
	return err
}
