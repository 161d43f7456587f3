// Package apply writes the tenants section of a configuration file to the store, object by
// object (SPEC section 2).
//
// An object is created, or updated only when its definition in the file differs from the one
// last applied from the file. Each stored object carries, in store.Object.FileHash, the hash
// of the file definition it was last written from; the admin API keeps that hash when it
// changes an object, so a restart with an unchanged file never reverts an admin change.
// Objects that are not in the file are left alone.
//
// Plaintext passwords and client secrets are never stored, nor is any fast hash of them. The
// definition is hashed without its secret, and FileHash is that hash followed by the argon2id
// PHC string of the secret as last applied from the file:
//
//	<64 hex digits of SHA-256>[<PHC of the file's password>]
//
// A secret is unchanged when the file's plaintext verifies against that PHC, so an unchanged
// password is not re-hashed, and a password changed through the admin API (whose PHC is in
// the spec, not in FileHash) survives a restart as any other admin change does.
//
// A tenant's writes go through package objects, the one writer of objects, in one
// transaction: it validates the tenant with the file's objects beside those the admin API
// made, and runs each change's hooks (a changed password revokes the user's login tokens),
// as it does for the admin API. Several processes may apply one file at once: the
// transaction first checks that every object it writes is still as it was planned; if
// another process got there first, the tenant is planned again (it then finds nothing left
// to do).
package apply

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/leasehold/leasehold/internal/config"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/objects"
	"github.com/leasehold/leasehold/internal/secret"
	"github.com/leasehold/leasehold/internal/store"
)

// Options tune Apply.
type Options struct {
	// DryRun plans and reports without writing anything.
	DryRun bool
}

// Action is what Apply did (or, in a dry run, would do) to one object.
type Action string

const (
	Created   Action = "created"
	Updated   Action = "updated"
	Unchanged Action = "unchanged"
)

// Change is one object that Apply created or updated.
type Change struct {
	Tenant string      `json:"tenant"` // the tenant's own name for a tenant object
	Kind   domain.Kind `json:"kind"`
	ID     string      `json:"id"`
	Action Action      `json:"action"`
}

func (c Change) String() string {
	if c.Kind == domain.KindTenant {
		return fmt.Sprintf("%s tenant %s", c.Action, c.ID)
	}
	return fmt.Sprintf("%s %s/%s/%s", c.Action, c.Tenant, c.Kind, c.ID)
}

// Report counts what Apply did and lists the objects it created or updated, in apply order.
type Report struct {
	Created   int      `json:"created"`
	Updated   int      `json:"updated"`
	Unchanged int      `json:"unchanged"`
	Changes   []Change `json:"changes"`
}

func (r *Report) add(ch Change) {
	switch ch.Action {
	case Created:
		r.Created++
	case Updated:
		r.Updated++
	default:
		r.Unchanged++
		return
	}
	r.Changes = append(r.Changes, ch)
}

// maxAttempts bounds how often a tenant is planned again after another writer changed one
// of its objects between the plan and the write.
const maxAttempts = 10

var errConflict = errors.New("apply: an object changed while it was being applied")

// Apply applies tenants (already validated by package config) to st, tenant by tenant, in
// dependency order: the tenant, then its organizations, users, clients, products, models
// and licenses. A tenant's objects are written in one transaction. On error, tenants
// applied before the failing one stay applied (the report says which).
func Apply(ctx context.Context, st store.Store, tenants []config.Tenant, opts Options) (Report, error) {
	var rep Report
	names := make([]string, len(tenants))
	for i := range tenants {
		names[i] = tenants[i].Name()
	}
	for i := range tenants {
		changes, err := applyTenant(ctx, st, &tenants[i], names, opts)
		if err != nil {
			return rep, fmt.Errorf("apply: tenant %s: %w", tenants[i].Name(), err)
		}
		for _, ch := range changes {
			rep.add(ch)
		}
	}
	return rep, nil
}

// object is one definition from the file, ready to be compared with the store.
type object struct {
	tenant  string
	kind    domain.Kind
	id      string
	defHash string // hex SHA-256 of the canonical definition, without any plaintext secret
	plain   string // the plaintext secret in the file ("" when none)
	// spec returns the object to store; with a plaintext secret, phc is its hash.
	spec func(phc string) ([]byte, error)
}

type key struct {
	kind domain.Kind
	id   string
}

// write is one planned PutObject and what the object looked like when it was planned.
type write struct {
	obj  store.Object
	seen *store.Object
}

// applyTenant applies one tenant; peers are the names of the other tenants of the file.
func applyTenant(ctx context.Context, st store.Store, t *config.Tenant, peers []string, opts Options) ([]Change, error) {
	objs, err := definitions(t)
	if err != nil {
		return nil, err
	}
	for range maxAttempts {
		current, err := snapshot(ctx, st, t.Name())
		if err != nil {
			return nil, err
		}
		writes, changes, err := plan(objs, current)
		if err != nil {
			return nil, err
		}
		if opts.DryRun || len(writes) == 0 {
			return changes, nil
		}
		err = st.Update(ctx, func(tx store.Tx) error {
			e, err := objects.Open(ctx, tx, t.Name(), nil)
			if err != nil {
				return err
			}
			for _, w := range writes {
				cur, err := e.Get(ctx, w.obj.Kind, w.obj.ID)
				if err != nil {
					return err
				}
				if !same(cur, w.seen) {
					return errConflict
				}
				if err := e.Put(ctx, w.obj); err != nil {
					return err
				}
			}
			// Package config checked the file's models against the file's own
			// geoip_database; what is new here is the file's objects beside those only
			// the admin API made.
			return e.Validate(ctx, true, peers...)
		})
		if errors.Is(err, errConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return changes, nil
	}
	return nil, fmt.Errorf("%w, %d times in a row", errConflict, maxAttempts)
}

func same(a, b *store.Object) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.FileHash == b.FileHash && bytes.Equal(a.Spec, b.Spec)
}

// snapshot reads the stored tenant and every stored object of its kinds.
func snapshot(ctx context.Context, st store.Store, tenant string) (map[key]*store.Object, error) {
	var out map[key]*store.Object
	err := st.View(ctx, func(tx store.Tx) error {
		out = map[key]*store.Object{}
		tobj, err := tx.GetObject(ctx, "", domain.KindTenant, tenant)
		switch {
		case err == nil:
			out[key{domain.KindTenant, tenant}] = tobj
		case !errors.Is(err, domain.ErrNotFound):
			return err
		}
		for _, kind := range domain.TenantKinds {
			list, err := tx.ListObjects(ctx, tenant, kind)
			if err != nil {
				return err
			}
			for i := range list {
				out[key{kind, list[i].ID}] = &list[i]
			}
		}
		return nil
	})
	return out, err
}

// plan compares every object with its stored version. It runs outside any transaction: it
// verifies and hashes secrets (tens of milliseconds each, done on several cores), which
// must not hold the store's writer.
func plan(objs []object, current map[key]*store.Object) ([]write, []Change, error) {
	n := len(objs)
	curs := make([]*store.Object, n)
	storedPHC := make([]string, n)
	for i, o := range objs {
		curs[i] = current[key{o.kind, o.id}]
		if curs[i] != nil {
			_, storedPHC[i] = splitFileHash(curs[i].FileHash)
		}
	}

	// The file's secret is unchanged when it verifies against the PHC last applied.
	verified := make([]bool, n)
	parallel(n, func(i int) bool { return objs[i].plain != "" && storedPHC[i] != "" }, func(i int) error {
		// An error means a FileHash this package did not write: the secret counts as changed.
		verified[i], _ = secret.Verify(objs[i].plain, storedPHC[i])
		return nil
	})

	actions := make([]Action, n)
	filePHC := make([]string, n)
	for i, o := range objs {
		if curs[i] == nil {
			actions[i] = Created
			continue
		}
		storedDef, _ := splitFileHash(curs[i].FileHash)
		secretSame := verified[i] || o.plain == "" && storedPHC[i] == ""
		if storedDef == o.defHash && secretSame {
			actions[i] = Unchanged
			continue
		}
		actions[i] = Updated
		if verified[i] {
			filePHC[i] = storedPHC[i] // another field changed: the secret is not re-hashed
		}
	}

	needHash := func(i int) bool { return actions[i] != Unchanged && objs[i].plain != "" && filePHC[i] == "" }
	err := parallel(n, needHash, func(i int) error {
		phc, err := secret.Hash(objs[i].plain)
		if err != nil {
			return fmt.Errorf("%s %s: %w", objs[i].kind, objs[i].id, err)
		}
		filePHC[i] = phc
		return nil
	})
	if err != nil {
		return nil, nil, err
	}

	var writes []write
	changes := make([]Change, 0, n)
	for i, o := range objs {
		ch := Change{Tenant: o.tenant, Kind: o.kind, ID: o.id, Action: actions[i]}
		if o.kind == domain.KindTenant {
			ch.Tenant = o.id
		}
		changes = append(changes, ch)
		if actions[i] == Unchanged {
			continue
		}
		spec, err := o.spec(filePHC[i])
		if err != nil {
			return nil, nil, fmt.Errorf("%s %s: %w", o.kind, o.id, err)
		}
		writes = append(writes, write{
			obj:  store.Object{Tenant: o.tenant, Kind: o.kind, ID: o.id, Spec: spec, FileHash: o.defHash + filePHC[i]},
			seen: curs[i],
		})
	}
	return writes, changes, nil
}

// maxHashWorkers bounds the argon2 runs at once: each takes secret.Params.Memory.
const maxHashWorkers = 8

// parallel runs fn for every i in [0, n) that want accepts, on up to GOMAXPROCS goroutines,
// and returns the first error.
func parallel(n int, want func(int) bool, fn func(int) error) error {
	var todo []int
	for i := range n {
		if want(i) {
			todo = append(todo, i)
		}
	}
	workers := min(len(todo), runtime.GOMAXPROCS(0), maxHashWorkers)
	var (
		wg       sync.WaitGroup
		next     atomic.Int64
		mu       sync.Mutex
		firstErr error
	)
	for range workers {
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= len(todo) {
					return
				}
				if err := fn(todo[k]); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// splitFileHash parses a FileHash written by this package. Anything else (the admin API's
// "", a hash from another version) yields a definition hash that matches nothing.
func splitFileHash(h string) (def, phc string) {
	if len(h) < sha256.Size*2 {
		return "", ""
	}
	return h[:sha256.Size*2], h[sha256.Size*2:]
}

// definitions lists the tenant's definitions in apply order.
func definitions(t *config.Tenant) ([]object, error) {
	name := t.Name()
	var out []object
	add := func(kind domain.Kind, id string, raw json.RawMessage, value any, secretKey, plain string, spec func(string) ([]byte, error)) error {
		if raw == nil {
			// An entry built in code rather than read from a file: its definition is its value.
			b, err := json.Marshal(value)
			if err != nil {
				return err
			}
			raw = b
		}
		h, err := defHash(kind, raw, secretKey)
		if err != nil {
			return fmt.Errorf("%s %s: %w", kind, id, err)
		}
		tenant := name
		if kind == domain.KindTenant {
			tenant = ""
		}
		out = append(out, object{tenant: tenant, kind: kind, id: id, defHash: h, plain: plain, spec: spec})
		return nil
	}
	plainSpec := func(v any) func(string) ([]byte, error) {
		return func(string) ([]byte, error) { return json.Marshal(v) }
	}

	if err := add(domain.KindTenant, name, t.Raw, t.Spec, "", "", plainSpec(t.Spec)); err != nil {
		return nil, err
	}
	for _, e := range t.Organizations {
		if err := add(domain.KindOrganization, e.Spec.ID, e.Raw, e.Spec, "", "", plainSpec(e.Spec)); err != nil {
			return nil, err
		}
	}
	for _, e := range t.Users {
		u := e.Spec
		spec := func(phc string) ([]byte, error) {
			v := u
			if v.Password != "" {
				v.Password, v.PasswordHash = "", phc
			}
			return json.Marshal(v)
		}
		if err := add(domain.KindUser, u.Username, e.Raw, u, "password", u.Password, spec); err != nil {
			return nil, err
		}
	}
	for _, e := range t.Clients {
		c := e.Spec
		spec := func(phc string) ([]byte, error) {
			v := c
			if v.ClientSecret != "" {
				v.ClientSecret, v.ClientSecretHash = "", phc
			}
			return json.Marshal(v)
		}
		if err := add(domain.KindClient, c.ClientID, e.Raw, c, "client_secret", c.ClientSecret, spec); err != nil {
			return nil, err
		}
	}
	for _, e := range t.Products {
		if err := add(domain.KindProduct, e.Spec.Name, e.Raw, e.Spec, "", "", plainSpec(e.Spec)); err != nil {
			return nil, err
		}
	}
	for _, e := range t.Models {
		if err := add(domain.KindModel, e.Spec.Name, e.Raw, e.Spec, "", "", plainSpec(e.Spec)); err != nil {
			return nil, err
		}
	}
	for _, e := range t.Licenses {
		if err := add(domain.KindLicense, e.Spec.ID, e.Raw, e.Spec, "", "", plainSpec(e.Spec)); err != nil {
			return nil, err
		}
	}
	for _, e := range t.Gateways {
		if err := add(domain.KindGateway, e.Spec.Name, e.Raw, e.Spec, "", "", plainSpec(e.Spec)); err != nil {
			return nil, err
		}
	}
	// A webhook's secret is the HMAC key, stored as given (a hash could not sign): it is
	// part of the definition like any other field.
	for _, e := range t.Webhooks {
		if err := add(domain.KindWebhook, e.Spec.ID, e.Raw, e.Spec, "", "", plainSpec(e.Spec)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// defHash is the hex SHA-256 of a definition in canonical JSON (keys sorted, no spaces),
// without its plaintext secret. The kind is hashed too, and a version, so that a future
// change of what is hashed can be told apart.
func defHash(kind domain.Kind, raw json.RawMessage, secretKey string) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", err
	}
	if m, ok := v.(map[string]any); ok && secretKey != "" {
		delete(m, secretKey)
	}
	canonical, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "leasehold-apply-v1\n%s\n", kind)
	h.Write(canonical)
	return hex.EncodeToString(h.Sum(nil)), nil
}
