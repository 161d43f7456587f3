package openapi

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Schemas builds the document's component schemas (JSON Schema 2020-12, as OpenAPI 3.1
// has it) from Go types, the way encoding/json writes and reads them: one property per
// field that encoding/json would use, named by its json tag, and no other
// ("additionalProperties": false). A named struct met inside another becomes a component
// of its own, referenced by $ref; a type with a JSON or text (un)marshaler of its own gets
// the schema set for it with Override, or Define fails, so that no schema is guessed.
type Schemas struct {
	defs      map[string]any
	names     map[reflect.Type]string
	overrides map[reflect.Type]map[string]any
}

// NewSchemas returns an empty set that knows time.Time and json.RawMessage.
func NewSchemas() *Schemas {
	g := &Schemas{defs: map[string]any{}, names: map[reflect.Type]string{}, overrides: map[reflect.Type]map[string]any{}}
	g.Override(reflect.TypeFor[time.Time](), map[string]any{"type": "string", "format": "date-time"})
	g.Override(reflect.TypeFor[json.RawMessage](), map[string]any{})
	return g
}

// Override sets the schema of t (written inline wherever t appears).
func (g *Schemas) Override(t reflect.Type, schema map[string]any) { g.overrides[t] = schema }

// Reserve names t's component before any Define, so that a type met inside another one
// first gets this name rather than its Go name.
func (g *Schemas) Reserve(name string, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if old, ok := g.names[t]; ok && old != name {
		return fmt.Errorf("openapi: %v named both %s and %s", t, old, name)
	}
	for other, n := range g.names {
		if n == name && other != t {
			return fmt.Errorf("openapi: two types named %s (%v and %v)", name, other, t)
		}
	}
	g.names[t] = name
	return nil
}

// Define adds t as the component name, and every named struct it holds under its Go name
// (or the name Reserve gave it).
func (g *Schemas) Define(name string, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if err := g.Reserve(name, t); err != nil {
		return err
	}
	if _, ok := g.defs[name]; ok {
		return nil
	}
	g.defs[name] = nil // taken, before the fields (a type may hold itself)
	s, err := g.inline(t)
	if err != nil {
		return err
	}
	g.defs[name] = s
	return nil
}

// Components is every schema defined, by name.
func (g *Schemas) Components() map[string]any { return g.defs }

// Ref is the $ref of the component t was defined as ("" when it was not).
func (g *Schemas) Ref(t reflect.Type) string {
	if name, ok := g.names[t]; ok {
		return "#/components/schemas/" + name
	}
	return ""
}

var (
	jsonMarshaler   = reflect.TypeFor[json.Marshaler]()
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textMarshaler   = reflect.TypeFor[encoding.TextMarshaler]()
)

// schema is t's schema where it appears as a field or an element: a $ref for a named
// struct (defined on first sight), else inline.
func (g *Schemas) schema(t reflect.Type) (map[string]any, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if _, ok := g.overrides[t]; !ok && t.Kind() == reflect.Struct && t.Name() != "" {
		name, ok := g.names[t]
		if !ok {
			name = strings.ToUpper(t.Name()[:1]) + t.Name()[1:]
		}
		if err := g.Define(name, t); err != nil {
			return nil, err
		}
		return map[string]any{"$ref": g.Ref(t)}, nil
	}
	return g.inline(t)
}

func (g *Schemas) inline(t reflect.Type) (map[string]any, error) {
	if s, ok := g.overrides[t]; ok {
		return s, nil
	}
	custom := t.Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(jsonMarshaler) ||
		reflect.PointerTo(t).Implements(jsonUnmarshaler)
	if custom && t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("openapi: %v has its own JSON encoding: give it a schema with Override", t)
	}
	if t.Kind() != reflect.Struct && (t.Implements(textMarshaler) || reflect.PointerTo(t).Implements(textMarshaler)) {
		return map[string]any{"type": "string"}, nil
	}
	switch t.Kind() {
	case reflect.Bool:
		return map[string]any{"type": "boolean"}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}, nil
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}, nil
	case reflect.String:
		return map[string]any{"type": "string"}, nil
	case reflect.Interface:
		return map[string]any{}, nil
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}, nil
		}
		items, err := g.schema(t.Elem())
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "array", "items": items}, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("openapi: %v: a map's keys must be strings", t)
		}
		vals, err := g.schema(t.Elem())
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "object", "additionalProperties": vals}, nil
	case reflect.Struct:
		props := map[string]any{}
		if err := g.fields(t, props); err != nil {
			return nil, err
		}
		return map[string]any{"type": "object", "properties": props, "additionalProperties": false}, nil
	}
	return nil, fmt.Errorf("openapi: %v: no JSON schema for kind %v", t, t.Kind())
}

// fields adds t's JSON properties to props, embedded structs' promoted ones included.
func (g *Schemas) fields(t reflect.Type, props map[string]any) error {
	for f := range t.Fields() {
		name, opts, hasTag := JSONName(f)
		if name == "-" {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && !hasTag && ft.Kind() == reflect.Struct {
			if err := g.fields(ft, props); err != nil {
				return err
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		var s map[string]any
		if strings.Contains(opts, ",string") {
			s = map[string]any{"type": "string"}
		} else {
			var err error
			if s, err = g.schema(f.Type); err != nil {
				return fmt.Errorf("%v.%s: %w", t, f.Name, err)
			}
		}
		props[name] = s
	}
	return nil
}

// JSONName is the name encoding/json gives field f ("-": none), the tag's options, and
// whether the field has a json tag.
func JSONName(f reflect.StructField) (name, opts string, tagged bool) {
	tag, tagged := f.Tag.Lookup("json")
	name, o, _ := strings.Cut(tag, ",")
	if tag == "-" {
		return "-", "", true
	}
	if o != "" {
		opts = "," + o
	}
	if name == "" {
		name = f.Name
	}
	return name, opts, tagged
}
