package config

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/leasehold/leasehold/internal/domain"
)

// referenceSections are the parts of the configuration file, each with the struct that
// decodes it and the heading of its table in docs/CONFIG.md. The path says where its
// values are in a file ("[]" walks a list).
var referenceSections = []struct {
	path, heading string
	typ           reflect.Type
	extra         []string // keys decoded outside typ
}{
	{"", "## Top level", reflect.TypeFor[fileConfig](), nil},
	{"signing", "### `signing`", reflect.TypeFor[Signing](), nil},
	{"tls", "### `tls`", reflect.TypeFor[TLS](), nil},
	{"tenants[]", "## `tenants[]`", reflect.TypeFor[domain.Tenant](), tenantListKeys()},
	{"tenants[].session", "### `tenants[].session`", reflect.TypeFor[domain.SessionPolicy](), nil},
	{"tenants[].trusted_issuers[]", "### `tenants[].trusted_issuers[]`", reflect.TypeFor[domain.TrustedIssuer](), nil},
	{"tenants[].organizations[]", "### `tenants[].organizations[]`", reflect.TypeFor[domain.Organization](), nil},
	{"tenants[].users[]", "### `tenants[].users[]`", reflect.TypeFor[domain.User](), nil},
	{"tenants[].clients[]", "### `tenants[].clients[]`", reflect.TypeFor[domain.Client](), nil},
	{"tenants[].products[]", "### `tenants[].products[]`", reflect.TypeFor[domain.Product](), nil},
	{"tenants[].models[]", "### `tenants[].models[]`", reflect.TypeFor[domain.LicenseModel](), nil},
	{"tenants[].licenses[]", "### `tenants[].licenses[]`", reflect.TypeFor[domain.License](), nil},
	{"tenants[].licenses[].owner", "#### `tenants[].licenses[].owner`", reflect.TypeFor[domain.Owner](), nil},
	{"tenants[].gateways[]", "### `tenants[].gateways[]`", reflect.TypeFor[domain.Gateway](), nil},
	{"tenants[].gateways[].routes[]", "#### `tenants[].gateways[].routes[]`", reflect.TypeFor[domain.Route](), nil},
}

func tenantListKeys() []string {
	var keys []string
	for _, l := range tenantLists {
		keys = append(keys, l.key)
	}
	return keys
}

// fileKeys are the keys a struct reads from the file: its JSON names.
func fileKeys(t reflect.Type, extra []string) []string {
	keys := slices.Clone(extra)
	for i := range t.NumField() {
		if name := jsonName(t.Field(i)); name != "" {
			keys = append(keys, name)
		}
	}
	slices.Sort(keys)
	return keys
}

// Every struct that decodes the file must have a section; a new struct (a new nested
// mapping) would otherwise slip past the field check below.
func TestReferenceCoversEveryStruct(t *testing.T) {
	known := map[reflect.Type]bool{}
	for _, s := range referenceSections {
		known[s.typ] = true
	}
	var walk func(reflect.Type, string)
	walk = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ == timeType {
			return
		}
		if !known[typ] {
			t.Errorf("%s (%s) has no section in docs/CONFIG.md's reference (referenceSections)", path, typ)
			return
		}
		for i := range typ.NumField() {
			if f := typ.Field(i); jsonName(f) != "" {
				walk(f.Type, path+"."+jsonName(f))
			}
		}
	}
	for _, s := range referenceSections {
		walk(s.typ, s.path)
	}
}

var tableRowRE = regexp.MustCompile("(?m)^\\| `([a-z0-9_]+)` \\|")

// docs/CONFIG.md documents every field of the file, and no field that does not exist.
func TestConfigReferenceDocumentsEveryField(t *testing.T) {
	b, err := os.ReadFile("../../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, s := range referenceSections {
		section, ok := docSection(doc, s.heading)
		if !ok {
			t.Errorf("docs/CONFIG.md has no heading %q", s.heading)
			continue
		}
		var documented []string
		for _, m := range tableRowRE.FindAllStringSubmatch(section, -1) {
			documented = append(documented, m[1])
		}
		want := fileKeys(s.typ, s.extra)
		for _, k := range want {
			if !slices.Contains(documented, k) {
				t.Errorf("docs/CONFIG.md, %s: field %q is not documented (a table row \"| `%s` | type | default | … |\")", s.heading, k, k)
			}
		}
		for _, k := range documented {
			if !slices.Contains(want, k) {
				t.Errorf("docs/CONFIG.md, %s: documents %q, which is not a field of %s", s.heading, k, s.typ)
			}
		}
	}
}

// docSection is the text under heading, up to the next heading of any level.
func docSection(doc, heading string) (string, bool) {
	lines := strings.Split(doc, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != heading {
			continue
		}
		var out []string
		for _, l := range lines[i+1:] {
			if strings.HasPrefix(l, "#") {
				break
			}
			out = append(out, l)
		}
		return strings.Join(out, "\n"), true
	}
	return "", false
}

// examples/full.yaml loads, and sets every field somewhere (a field it leaves out would
// be a field without an example).
func TestFullExample(t *testing.T) {
	data, err := os.ReadFile("../../examples/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Parse, not Load: the example names a GeoIP database and a JWKS file nobody has.
	if _, err := Parse(data); err != nil {
		t.Fatalf("examples/full.yaml does not load:\n%v", err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	var root any
	if err := json.Unmarshal(js, &root); err != nil {
		t.Fatal(err)
	}
	for _, s := range referenceSections {
		set := map[string]bool{}
		for _, v := range valuesAt(root, s.path) {
			if m, ok := v.(map[string]any); ok {
				for k := range m {
					set[k] = true
				}
			}
		}
		for _, k := range fileKeys(s.typ, s.extra) {
			if !set[k] {
				t.Errorf("examples/full.yaml never sets %s", strings.TrimPrefix(s.path+"."+k, "."))
			}
		}
	}
}

// valuesAt returns the values at path ("tenants[].models[]": every model of every tenant).
func valuesAt(root any, path string) []any {
	vals := []any{root}
	if path == "" {
		return vals
	}
	for _, part := range strings.Split(path, ".") {
		key, list := strings.CutSuffix(part, "[]")
		var next []any
		for _, v := range vals {
			m, _ := v.(map[string]any)
			child, ok := m[key]
			if !ok {
				continue
			}
			if l, isList := child.([]any); list && isList {
				next = append(next, l...)
			} else if !list {
				next = append(next, child)
			}
		}
		vals = next
	}
	return vals
}
