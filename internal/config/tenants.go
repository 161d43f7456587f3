package config

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"unicode"

	"github.com/leasehold/leasehold/internal/domain"
)

// tenantLists are the keys of a tenant entry that hold its objects, with the field that
// names each object.
var tenantLists = []struct {
	key, id string
}{
	{string(domain.KindOrganization), "id"},
	{string(domain.KindUser), "username"},
	{string(domain.KindClient), "client_id"},
	{string(domain.KindProduct), "name"},
	{string(domain.KindModel), "name"},
	{string(domain.KindLicense), "id"},
	{string(domain.KindGateway), "name"},
	{string(domain.KindWebhook), "id"},
}

// decodeTenants splits every tenant entry into the tenant's own fields and its object lists
// and decodes each. domain.Tenant is decoded on its own (not embedded in a struct holding the
// lists): its UnmarshalJSON, which applies the defaults, would be promoted and swallow them.
func decodeTenants(raws []json.RawMessage, errs *errorList) []Tenant {
	if len(raws) > maxTenants {
		errs.add("tenants", "more than %d tenants", maxTenants)
		return nil
	}
	entries := make([]map[string]json.RawMessage, len(raws))
	names := make([]string, len(raws))
	for i, raw := range raws {
		if err := json.Unmarshal(raw, &entries[i]); err != nil || entries[i] == nil {
			entries[i] = nil
			continue
		}
		names[i] = stringField(entries[i], "name")
	}
	tl := labels(names)
	out := make([]Tenant, 0, len(raws))
	for i, m := range entries {
		path := "tenants[" + tl[i] + "]"
		if m == nil {
			errs.add(path, "must be a mapping, not %s", jsonKind(raws[i]))
			continue
		}
		lists := map[string][]json.RawMessage{}
		for _, l := range tenantLists {
			raw, ok := m[l.key]
			if !ok {
				continue
			}
			delete(m, l.key)
			if isNull(raw) {
				continue
			}
			var list []json.RawMessage
			if err := json.Unmarshal(raw, &list); err != nil {
				errs.add(path+"."+l.key, "must be a list, not %s", jsonKind(raw))
				continue
			}
			if len(list) > maxObjects {
				errs.add(path+"."+l.key, "more than %d entries", maxObjects)
				continue
			}
			lists[l.key] = list
		}
		var t Tenant
		own, err := json.Marshal(m)
		if err != nil {
			errs.add(path, "%v", err)
			continue
		}
		t.Raw = own
		if err := domain.DecodeStrict(own, &t.Spec); err != nil {
			errs.addError(decodeError(reflect.TypeFor[domain.Tenant](), own, path, err))
		}
		t.Organizations = decodeList[domain.Organization](path, "organizations", "id", lists, errs)
		t.Users = decodeList[domain.User](path, "users", "username", lists, errs)
		t.Clients = decodeList[domain.Client](path, "clients", "client_id", lists, errs)
		t.Products = decodeList[domain.Product](path, "products", "name", lists, errs)
		t.Models = decodeList[domain.LicenseModel](path, "models", "name", lists, errs)
		t.Licenses = decodeList[domain.License](path, "licenses", "id", lists, errs)
		t.Gateways = decodeList[domain.Gateway](path, "gateways", "name", lists, errs)
		t.Webhooks = decodeList[domain.Webhook](path, "webhooks", "id", lists, errs)
		out = append(out, t)
	}
	return out
}

func decodeList[T any](tenantPath, key, idField string, lists map[string][]json.RawMessage, errs *errorList) []Entry[T] {
	raws := lists[key]
	if len(raws) == 0 {
		return nil
	}
	ids := make([]string, len(raws))
	objs := make([]map[string]json.RawMessage, len(raws))
	for i, raw := range raws {
		if json.Unmarshal(raw, &objs[i]) == nil && objs[i] != nil {
			ids[i] = stringField(objs[i], idField)
		}
	}
	ls := labels(ids)
	out := make([]Entry[T], 0, len(raws))
	for i, raw := range raws {
		path := fmt.Sprintf("%s.%s[%s]", tenantPath, key, ls[i])
		if objs[i] == nil {
			errs.add(path, "must be a mapping, not %s", jsonKind(raw))
			continue
		}
		var e Entry[T]
		if err := domain.DecodeStrict(raw, &e.Spec); err != nil {
			errs.addError(decodeError(reflect.TypeFor[T](), raw, path, err))
			continue
		}
		e.Raw = raw
		out = append(out, e)
	}
	return out
}

func stringField(m map[string]json.RawMessage, key string) string {
	var s string
	if raw, ok := m[key]; ok && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}

// labels names the entries of a list in error paths: by name when the name is present and
// unique in the list (quoted when it could be misread), else by index.
func labels(names []string) []string {
	count := make(map[string]int, len(names))
	for _, n := range names {
		count[n]++
	}
	out := make([]string, len(names))
	for i, n := range names {
		switch {
		case n == "" || count[n] > 1:
			out[i] = strconv.Itoa(i)
		case plainLabel(n):
			out[i] = n
		default:
			if len(n) > 64 {
				n = n[:64] + "…"
			}
			out[i] = strconv.Quote(n)
		}
	}
	return out
}

func plainLabel(s string) bool {
	if len(s) > 64 {
		return false
	}
	digits := true
	for _, c := range s {
		if c < '0' || c > '9' {
			digits = false
		}
		if unicode.IsSpace(c) || unicode.IsControl(c) || c == '[' || c == ']' || c == '"' || c == '\\' || c == utf8RuneError {
			return false
		}
	}
	return !digits
}

const utf8RuneError = '\uFFFD'
