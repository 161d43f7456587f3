package server

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/types"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/documents"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/server/openapi"
)

var updateOpenAPI = flag.Bool("update", false, "rewrite openapi/openapi.json's component schemas and body references from the Go types")

// apiBody is one JSON body type of the API: its component name, a value of it, and the
// operations whose body it is: "METHOD /path STATUS" for a response, "METHOD /path request"
// for a request, "#Name" for the shared response components.responses.Name.
type apiBody struct {
	name string
	v    any
	ops  []string
}

// apiBodies is every JSON body the handlers write or read (TestJSONBodiesAreDocumented
// finds them in the code) with the operations it belongs to.
var apiBodies = []apiBody{
	{"Error", apiError{}, []string{"#Error"}},
	{"OAuthError", oauthError{}, []string{"#OAuthError", "POST /oauth2/token 403"}},
	{"Ok", okBody{}, []string{
		"DELETE /admin/v1/tenants/{tenant} 200", "DELETE /admin/v1/tenants/{tenant}/{kind}/{id} 200",
		"DELETE /admin/v1/tenants/{tenant}/sessions/{id} 200", "POST /oauth2/logoff 200", "POST /oauth2/revoke 200",
		"DELETE /session/documents/{name} 200", "POST /session/logout 200", "GET /session/logout 200",
	}},
	{"Readiness", readiness{}, []string{"GET /readyz 200", "GET /readyz 503"}},
	{"KeyRotated", keyRotated{}, []string{"POST /admin/v1/tenants/{tenant}/keys/rotate 200"}},
	{"TenantList", tenantList{}, []string{"GET /admin/v1/tenants 200"}},
	{"Tenant", domain.Tenant{}, []string{
		"GET /admin/v1/tenants/{tenant} 200", "POST /admin/v1/tenants 201",
		"PUT /admin/v1/tenants/{tenant} 200", "PATCH /admin/v1/tenants/{tenant} 200",
		"POST /admin/v1/tenants request", "PUT /admin/v1/tenants/{tenant} request", "PATCH /admin/v1/tenants/{tenant} request",
	}},
	{"ObjectList", objectList{}, []string{"GET /admin/v1/tenants/{tenant}/{kind} 200"}},
	{"ApplyResult", applyResult{}, []string{"POST /admin/v1/apply 200"}},
	{"SessionList", sessionList{}, []string{"GET /admin/v1/tenants/{tenant}/sessions 200"}},
	{"LeaseList", leaseList{}, []string{"GET /admin/v1/tenants/{tenant}/leases 200"}},
	{"LeaseEnded", leaseEnded{}, []string{"DELETE /admin/v1/tenants/{tenant}/leases/{id} 200"}},
	{"LocksRemoved", locksRemoved{}, []string{"DELETE /admin/v1/tenants/{tenant}/locks/{hw} 200"}},
	{"LoginTokenList", loginTokenList{}, []string{"GET /admin/v1/tenants/{tenant}/users/{id}/login-tokens 200"}},
	{"TokensRevoked", tokensRevoked{}, []string{
		"DELETE /admin/v1/tenants/{tenant}/users/{id}/login-tokens 200",
		"DELETE /admin/v1/tenants/{tenant}/users/{id}/login-tokens/{token} 200",
	}},
	{"SessionsEnded", sessionsEnded{}, []string{"POST /admin/v1/tenants/{tenant}/users/{id}/logout-all 200", "POST /session/logout-all 200"}},
	{"UsageReport", usageReport{}, []string{"GET /admin/v1/usage 200"}},
	{"EntitlementList", entitlementList{}, []string{"GET /entitlements/licenses 200"}},
	{"TokenResponse", tokenResponse{}, []string{"POST /oauth2/token 200"}},
	{"IntrospectResponse", introspectResponse{}, []string{"POST /oauth2/introspect 200"}},
	{"AuthServerMetadata", authServerMetadata{}, []string{
		"GET /.well-known/oauth-authorization-server 200", "GET /.well-known/openid-configuration 200",
		"GET /.well-known/oauth-authorization-server/t/{tenant} 200",
	}},
	{"SessionGrant", sessionGrant{}, []string{"POST /session/login 200", "POST /session/token-login 200", "POST /session/refresh 200"}},
	// A refused seat: error and message as Error, and the 10Duke license error.
	{"LicenseRefusal", licenseRefusal{}, []string{"POST /session/login 401", "POST /session/refresh 401"}},
	{"LoginToken", loginTokenBody{}, []string{"POST /session/login-token 200"}},
	{"DocumentList", documentList{}, []string{"GET /session/documents 200"}},
	{"DocumentInfo", documents.Info{}, []string{"PUT /session/documents/{name} 200"}},
	{"DwLogonResult", dwLogonResult{}, []string{"POST /DocuWare/Platform/Account/Logon 200", "POST /DocuWare/Platform/Account/TokenLogOn 200"}},
	// The objects of /admin/v1/tenants/{tenant}/{kind}, one schema per kind: an operation
	// several bodies claim gets their anyOf.
	{"Organization", domain.Organization{}, objectOps},
	{"User", domain.User{}, objectOps},
	{"Client", domain.Client{}, objectOps},
	{"Product", domain.Product{}, objectOps},
	{"LicenseModel", domain.LicenseModel{}, objectOps},
	{"License", domain.License{}, objectOps},
	{"Gateway", domain.Gateway{}, objectOps},
	{"Webhook", domain.Webhook{}, objectOps},
	{"DeliveryList", deliveryList{}, []string{"GET /admin/v1/tenants/{tenant}/webhooks/deliveries 200"}},
	{"DeliveriesRetried", deliveriesRetried{}, []string{"POST /admin/v1/tenants/{tenant}/webhooks/deliveries/{event}/retry 200"}},
	{"SessionLoginRequest", sessionLoginRequest{}, []string{"POST /session/login request", "POST /session/token-login request"}},
	{"SessionRefreshRequest", sessionRefreshRequest{}, []string{"POST /session/refresh request"}},
	{"LoginTokenRequest", loginTokenRequest{}, []string{"POST /session/login-token request", "POST /DocuWare/Platform/Organizations/LoginToken request"}},
	{"DwLogonRequest", dwLogonRequest{}, []string{"POST /DocuWare/Platform/Account/Logon request"}},
	{"WebPDFLoginRequest", webPDFLoginRequest{}, []string{"POST /webPDF/rest/authentication/user/login request"}},
}

// objectOps are the operations whose body is one object of the kind the path names.
var objectOps = []string{
	"POST /admin/v1/tenants/{tenant}/{kind} request", "POST /admin/v1/tenants/{tenant}/{kind} 201",
	"GET /admin/v1/tenants/{tenant}/{kind}/{id} 200",
	"PUT /admin/v1/tenants/{tenant}/{kind}/{id} request", "PUT /admin/v1/tenants/{tenant}/{kind}/{id} 200",
	"PATCH /admin/v1/tenants/{tenant}/{kind}/{id} request", "PATCH /admin/v1/tenants/{tenant}/{kind}/{id} 200",
}

// bodySchemas generates the component schemas of apiBodies.
func bodySchemas(t *testing.T) *openapi.Schemas {
	t.Helper()
	g := openapi.NewSchemas()
	// Types with an encoding of their own.
	g.Override(reflect.TypeFor[flexBool](), map[string]any{"type": []any{"boolean", "string"}, "description": "true or false, also as a string (\"true\", \"1\", …)"})
	g.Override(reflect.TypeFor[domain.Duration](), map[string]any{"type": "string", "description": "Go duration syntax, e.g. 90s or 720h"})
	g.Override(reflect.TypeFor[domain.ByteSize](), map[string]any{"type": "integer", "description": "bytes (a request may also say \"100MiB\")"})
	for _, b := range apiBodies {
		if err := g.Reserve(b.name, reflect.TypeOf(b.v)); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range apiBodies {
		if err := g.Define(b.name, reflect.TypeOf(b.v)); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

func readOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(openapi.Document, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	return doc
}

// withBodies is doc with its component schemas replaced by those generated, and each
// operation's JSON body pointing at its schema.
func withBodies(t *testing.T, doc map[string]any) map[string]any {
	t.Helper()
	g := bodySchemas(t)
	out := deepCopy(doc)
	comps := out["components"].(map[string]any)
	comps["schemas"] = deepCopy(g.Components())
	obj := func(m map[string]any, key string) map[string]any {
		v, ok := m[key].(map[string]any)
		if !ok {
			v = map[string]any{}
			m[key] = v
		}
		return v
	}
	// An operation several bodies claim gets their anyOf, in apiBodies' order (not oneOf:
	// with no required properties, a small object can match more than one kind's schema).
	claims := map[string][]any{}
	for _, b := range apiBodies {
		for _, op := range b.ops {
			claims[op] = append(claims[op], map[string]any{"$ref": g.Ref(reflect.TypeOf(b.v))})
		}
	}
	done := map[string]bool{}
	for _, b := range apiBodies {
		for _, op := range b.ops {
			if done[op] {
				continue
			}
			done[op] = true
			var ref any = claims[op][0]
			if len(claims[op]) > 1 {
				ref = map[string]any{"anyOf": claims[op]}
			}
			if name, ok := strings.CutPrefix(op, "#"); ok {
				resp, ok := obj(comps, "responses")[name].(map[string]any)
				if !ok {
					t.Fatalf("%s: no components.responses.%s", b.name, name)
				}
				obj(obj(resp, "content"), "application/json")["schema"] = ref
				continue
			}
			fields := strings.Fields(op)
			if len(fields) != 3 {
				t.Fatalf("%s: bad operation %q", b.name, op)
			}
			path, ok := out["paths"].(map[string]any)[fields[1]].(map[string]any)
			if !ok {
				t.Fatalf("%s: %s is not a documented path", b.name, fields[1])
			}
			operation, ok := path[strings.ToLower(fields[0])].(map[string]any)
			if !ok {
				t.Fatalf("%s: %s %s is not a documented operation", b.name, fields[0], fields[1])
			}
			if fields[2] == "request" {
				obj(obj(obj(operation, "requestBody"), "content"), "application/json")["schema"] = ref
				continue
			}
			resp := obj(obj(operation, "responses"), fields[2])
			if _, ok := resp["$ref"]; ok {
				t.Fatalf("%s: %s answers with a shared response; name the shared one (#Name)", b.name, op)
			}
			if _, ok := resp["description"]; !ok {
				resp["description"] = b.name
			}
			obj(obj(resp, "content"), "application/json")["schema"] = ref
		}
	}
	return out
}

func deepCopy[T any](v T) T {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

func encodeOpenAPI(doc map[string]any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(doc); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// TestOpenAPIBodySchemas: the document's component schemas are exactly those generated
// from the Go body types (a property for each json field, none other), and each operation
// of apiBodies refers to its body's schema. go test -run OpenAPIBodySchemas -update
// rewrites the document so.
func TestOpenAPIBodySchemas(t *testing.T) {
	doc := readOpenAPI(t)
	want := encodeOpenAPI(withBodies(t, doc))
	if *updateOpenAPI {
		if err := os.WriteFile("openapi/openapi.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(encodeOpenAPI(doc), want) {
		t.Errorf("openapi/openapi.json's body schemas differ from the Go types (or the document is not in its canonical form): go test ./internal/server -run OpenAPIBodySchemas -update, then read the diff")
	}
	// The schemas say what the types encode: every json field of each type is a property,
	// and nothing else is (checked here on the document as served, not on the generator's
	// word).
	schemas, _ := doc["components"].(map[string]any)["schemas"].(map[string]any)
	for _, b := range apiBodies {
		rt := reflect.TypeOf(b.v)
		s, ok := schemas[b.name].(map[string]any)
		if !ok {
			t.Errorf("%s (%v): no component schema", b.name, rt)
			continue
		}
		if rt.Kind() != reflect.Struct {
			continue
		}
		props, _ := s["properties"].(map[string]any)
		got := slices.Sorted(mapKeys(props))
		if want := jsonFields(rt); !slices.Equal(got, want) || s["additionalProperties"] != false {
			t.Errorf("%s: properties %v (additionalProperties %v); the type's json fields are %v", b.name, got, s["additionalProperties"], want)
		}
	}
}

func mapKeys(m map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// jsonFields is what encoding/json names t's fields, promoted ones included: written
// independently of the generator, by encoding a value whose every field is set.
func jsonFields(t reflect.Type) []string {
	v := reflect.New(t).Elem()
	fill(v)
	b, err := json.Marshal(v.Interface())
	if err != nil {
		panic(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		panic(fmt.Sprintf("%v encodes as %s", t, b))
	}
	return slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
}

// fill sets every settable field of v to a non-zero value, so that omitempty leaves none out.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() && v.CanSet() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		if !v.IsNil() {
			fill(v.Elem())
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Field(i).CanSet() {
				fill(v.Field(i))
			}
		}
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1)
	case reflect.String:
		v.SetString("x")
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		if v.Type() == reflect.TypeFor[json.RawMessage]() {
			v.SetBytes([]byte("1"))
			return
		}
		fill(v.Index(0))
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		if v.Type().Key().Kind() == reflect.String {
			e := reflect.New(v.Type().Elem()).Elem()
			fill(e)
			v.SetMapIndex(reflect.ValueOf("x").Convert(v.Type().Key()), e)
		}
	case reflect.Interface:
		v.Set(reflect.ValueOf(1))
	}
}

// TestOpenAPIRefsResolve: every $ref of the document names something it holds, and every
// component schema is used.
func TestOpenAPIRefsResolve(t *testing.T) {
	doc := readOpenAPI(t)
	used := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				used[ref] = true
				var cur any = doc
				for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
					m, _ := cur.(map[string]any)
					cur = m[part]
				}
				if cur == nil {
					t.Errorf("$ref %s resolves to nothing", ref)
				}
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	schemas, _ := doc["components"].(map[string]any)["schemas"].(map[string]any)
	if len(schemas) == 0 {
		t.Error("the document has no component schemas")
	}
	for name := range schemas {
		if !used["#/components/schemas/"+name] {
			t.Errorf("component schema %s is used by no operation", name)
		}
	}
}

// notBodies are the places that encode or decode JSON that is no request or response body.
var notBodies = map[string]string{
	"publicSpec":             "an object's stored spec, re-encoded without its secrets (the body is ObjectList)",
	"flexBool.UnmarshalJSON": "one field's value",
	"adminListLoginTokens":   "a login token's stored details, shown as its data field",
}

// TestJSONBodiesAreDocumented: every value the package's handlers write with writeJSON or
// json.Marshal, and every one they decode a request into, has a named type with a schema
// in the document (apiBodies), so a new body, or a map literal in place of one, fails here.
func TestJSONBodiesAreDocumented(t *testing.T) {
	registered := map[string]bool{}
	for _, b := range apiBodies {
		rt := reflect.TypeOf(b.v)
		registered[rt.PkgPath()+"."+rt.Name()] = true
	}
	seen := map[string]bool{}
	for _, s := range jsonBodySites(t) {
		if _, ok := notBodies[s.fn]; ok {
			seen[s.fn] = true
			continue
		}
		switch typ := s.typ.(type) {
		case *types.Basic:
			continue // a bare JSON string or number
		case *types.Named:
			if obj := typ.Obj(); obj.Pkg() != nil && registered[obj.Pkg().Path()+"."+obj.Name()] {
				continue
			}
		}
		t.Errorf("%s (in %s): %s of %s, which has no schema: give it a named type and add it to apiBodies", s.pos, s.fn, s.call, s.typ)
	}
	for fn := range notBodies {
		if !seen[fn] {
			t.Errorf("notBodies names %s, which encodes or decodes nothing now", fn)
		}
	}
	var names []string
	for _, b := range apiBodies {
		names = append(names, b.name)
	}
	sort.Strings(names)
	for i := 1; i < len(names); i++ {
		if names[i] == names[i-1] {
			t.Errorf("apiBodies names %s twice", names[i])
		}
	}
}
