package objects

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/jsonerr"
	"github.com/leasehold/leasehold/internal/secret"
	"github.com/leasehold/leasehold/internal/store"
)

// Op is how a write treats the stored object.
type Op int

const (
	Create  Op = iota + 1 // a new object, named by the body (Conflict when it exists)
	Replace               // the whole object; created when missing
	Patch                 // an RFC 7396 merge patch into the object as stored (NotFound when missing)
)

// Writer makes the admin API's changes, one transaction each.
type Writer struct {
	st    store.Store
	cat   *catalog.Cache
	geoip bool
}

// NewWriter returns a Writer on st; geoip says whether models may use `countries`. cat
// (may be nil) spares validation reading the whole tenant again while its snapshot is
// current.
func NewWriter(st store.Store, cat *catalog.Cache, geoip bool) *Writer {
	return &Writer{st: st, cat: cat, geoip: geoip}
}

// snapshot is the cached snapshot of tenant, or nil: Open uses it only when current.
func (w *Writer) snapshot(ctx context.Context, tenant string) *catalog.Snapshot {
	if w.cat == nil {
		return nil
	}
	snap, err := w.cat.Get(ctx, tenant)
	if err != nil {
		return nil
	}
	return snap
}

// Write creates, replaces or patches an object of kind in tenant (id: the object the path
// names; unused by Create) from body (JSON, the config file's field names), and returns
// the object's id and stored form. A plaintext password or client secret is stored hashed.
// An object written here keeps the file hash of its last file apply, so that a restart
// re-applies it only once its file definition changes (SPEC §2). Refusals are *Error.
func (w *Writer) Write(ctx context.Context, op Op, tenant string, kind domain.Kind, id string, body []byte) (string, []byte, error) {
	// Argon2 takes tens of milliseconds: never inside the transaction, which on SQLite
	// holds the one writer.
	secrets, err := hashSecrets(kind, body)
	if err != nil {
		return "", nil, refuse(Invalid, "%s: %v", kind, err)
	}
	snap := w.snapshot(ctx, tenant)
	var newID string
	var spec []byte
	err = w.st.Update(ctx, func(tx store.Tx) error {
		e, err := Open(ctx, tx, tenant, snap)
		if err != nil {
			return err
		}
		if !e.TenantExists() {
			return refuse(NotFound, "no such tenant: %s", tenant)
		}
		var cur *store.Object
		if op != Create {
			if cur, err = e.Get(ctx, kind, id); err != nil {
				return err
			}
			if cur == nil && op == Patch {
				return refuse(NotFound, "no such %s: %s", kind, id)
			}
		}
		merged := body
		if cur != nil && op == Patch {
			if merged, err = mergePatch(cur.Spec, body); err != nil {
				return refuse(BadRequest, "%v", err)
			}
		}
		newID, spec, err = decode(kind, merged, secrets)
		if err != nil {
			return refuse(Invalid, "%s: %v", kind, err)
		}
		if op == Create {
			if existing, err := e.Get(ctx, kind, newID); err != nil {
				return err
			} else if existing != nil {
				return refuse(Conflict, "%s %s exists", kind, newID)
			}
		} else if newID != id {
			return refuse(BadRequest, "the body names another object than the path")
		}
		if kind == domain.KindWebhook {
			if spec, err = keepWebhookSecret(cur, spec); err != nil {
				return refuse(Invalid, "%s: %v", kind, err)
			}
		}
		obj := store.Object{Tenant: tenant, Kind: kind, ID: newID, Spec: spec}
		if cur != nil {
			obj.FileHash = cur.FileHash
		}
		if err := e.Put(ctx, obj); err != nil {
			return err
		}
		return e.Validate(ctx, w.geoip)
	})
	if err != nil {
		return "", nil, err
	}
	return newID, spec, nil
}

// Delete removes an object of tenant, unless others still name it (InUse).
func (w *Writer) Delete(ctx context.Context, tenant string, kind domain.Kind, id string) error {
	snap := w.snapshot(ctx, tenant)
	return w.st.Update(ctx, func(tx store.Tx) error {
		e, err := Open(ctx, tx, tenant, snap)
		if err != nil {
			return err
		}
		if !e.TenantExists() {
			return refuse(NotFound, "no such tenant: %s", tenant)
		}
		found, err := e.Delete(ctx, kind, id)
		if err != nil {
			return err
		}
		if !found {
			return refuse(NotFound, "no such %s: %s", kind, id)
		}
		err = e.Validate(ctx, w.geoip)
		if v, ok := errors.AsType[*Error](err); ok && v.Refusal == Invalid {
			return refuse(InUse, "%s", v.Msg)
		}
		return err
	})
}

// WriteTenant creates (name unused: the body names it), replaces or patches a tenant's own
// definition and returns it as stored.
func (w *Writer) WriteTenant(ctx context.Context, op Op, name string, body []byte) (domain.Tenant, error) {
	var t domain.Tenant
	if op == Create {
		if err := json.Unmarshal(body, &t); err != nil {
			return t, refuse(BadRequest, "tenant: %s", jsonerr.Reason(err))
		}
		name = t.Name
	}
	snap := w.snapshot(ctx, name)
	err := w.st.Update(ctx, func(tx store.Tx) error {
		e, err := Open(ctx, tx, name, snap)
		if err != nil {
			return err
		}
		cur, err := e.Get(ctx, domain.KindTenant, name)
		if err != nil {
			return err
		}
		switch {
		case op == Create && cur != nil:
			return refuse(Conflict, "tenant %s exists", name)
		case op != Create && cur == nil:
			return refuse(NotFound, "no such tenant: %s", name)
		}
		if op != Create {
			t = domain.Tenant{}
			var stored domain.Tenant
			if err := json.Unmarshal(cur.Spec, &stored); err != nil {
				return fmt.Errorf("tenant %s: %w", name, err)
			}
			// Merged into the definition with its defaults filled in, as it is shown.
			base, _ := json.Marshal(stored)
			merged := body
			if op == Patch {
				if merged, err = mergePatch(base, body); err != nil {
					return refuse(BadRequest, "%v", err)
				}
			}
			if err := json.Unmarshal(merged, &t); err != nil {
				return refuse(BadRequest, "tenant: %s", jsonerr.Reason(err))
			}
			if t.Name != name {
				return refuse(BadRequest, "a tenant cannot be renamed")
			}
		}
		spec, err := json.Marshal(t)
		if err != nil {
			return err
		}
		obj := store.Object{Kind: domain.KindTenant, ID: name, Spec: spec}
		if cur != nil {
			obj.FileHash = cur.FileHash
		}
		if err := e.Put(ctx, obj); err != nil {
			return err
		}
		return e.Validate(ctx, w.geoip)
	})
	return t, err
}

// DeleteTenant removes a tenant, its objects and all its runtime state.
func (w *Writer) DeleteTenant(ctx context.Context, name string) error {
	return w.st.Update(ctx, func(tx store.Tx) error {
		e, err := Open(ctx, tx, name, nil)
		if err != nil {
			return err
		}
		if !e.TenantExists() {
			return refuse(NotFound, "no such tenant: %s", name)
		}
		return tx.DeleteTenantData(ctx, name)
	})
}

// decode reads body as an object of kind, its plaintext secret replaced by the hash made
// for it, and returns its id and stored form.
func decode(kind domain.Kind, body []byte, secrets map[string]string) (string, []byte, error) {
	switch kind {
	case domain.KindOrganization:
		return decodeAs(body, func(o *domain.Organization) (string, error) { return o.ID, nil })
	case domain.KindUser:
		return decodeAs(body, func(u *domain.User) (string, error) {
			return u.Username, useSecret(&u.Password, &u.PasswordHash, "password", secrets)
		})
	case domain.KindClient:
		return decodeAs(body, func(c *domain.Client) (string, error) {
			return c.ClientID, useSecret(&c.ClientSecret, &c.ClientSecretHash, "client_secret", secrets)
		})
	case domain.KindProduct:
		return decodeAs(body, func(o *domain.Product) (string, error) { return o.Name, nil })
	case domain.KindModel:
		return decodeAs(body, func(o *domain.LicenseModel) (string, error) { return o.Name, nil })
	case domain.KindLicense:
		return decodeAs(body, func(o *domain.License) (string, error) { return o.ID, nil })
	case domain.KindGateway:
		return decodeAs(body, func(o *domain.Gateway) (string, error) { return o.Name, nil })
	case domain.KindWebhook:
		return decodeAs(body, func(o *domain.Webhook) (string, error) { return o.ID, nil })
	}
	return "", nil, fmt.Errorf("unknown kind %s", kind)
}

func decodeAs[T any](body []byte, prepare func(*T) (string, error)) (string, []byte, error) {
	v := new(T)
	if err := json.Unmarshal(body, v); err != nil {
		return "", nil, errors.New(jsonerr.Reason(err))
	}
	id, err := prepare(v)
	if err != nil {
		return "", nil, err
	}
	spec, err := json.Marshal(v)
	return id, spec, err
}

// secretFields names the plaintext field of each kind that has a secret.
var secretFields = map[domain.Kind]string{domain.KindUser: "password", domain.KindClient: "client_secret"}

// hashSecrets hashes the plaintext secret a body gives, keyed by the plaintext. A body that
// is not a JSON object gives none: decoding it refuses it later.
func hashSecrets(kind domain.Kind, body []byte) (map[string]string, error) {
	field, ok := secretFields[kind]
	if !ok {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return nil, nil
	}
	var plain string
	if json.Unmarshal(m[field], &plain) != nil || plain == "" {
		return nil, nil
	}
	phc, err := secret.Hash(plain)
	if err != nil {
		return nil, err
	}
	return map[string]string{plain: phc}, nil
}

// useSecret replaces a plaintext secret by its hash: nothing stored holds plaintext.
func useSecret(plain, hash *string, field string, secrets map[string]string) error {
	if *plain == "" {
		return nil
	}
	if *hash != "" && *hash != "(set)" {
		return fmt.Errorf("give %s or %s_hash, not both", field, field)
	}
	phc, ok := secrets[*plain]
	if !ok {
		// A plaintext comes only from the body, which hashSecrets read; should one ever come
		// from elsewhere, hashing here is slow but still right.
		var err error
		if phc, err = secret.Hash(*plain); err != nil {
			return err
		}
	}
	*plain, *hash = "", phc
	return nil
}
