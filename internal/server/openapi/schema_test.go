package openapi

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

type inner struct {
	X int `json:"x"`
}

type Base struct {
	ID string `json:"id"`
}

type outer struct {
	Base        // promoted: id
	Name string `json:"name,omitempty"`
	Skip string `json:"-"`
	//lint:ignore U1000 an unexported field, which the schema leaves out
	private  string
	Untagged bool                 // encoded under its Go name
	Count    int64                `json:"count,string"`
	At       time.Time            `json:"at"`
	Raw      json.RawMessage      `json:"raw"`
	Tags     []string             `json:"tags"`
	Blob     []byte               `json:"blob"`
	Props    map[string]string    `json:"props"`
	In       *inner               `json:"in"`
	Ins      []inner              `json:"ins"`
	ByName   map[string]inner     `json:"by_name"`
	Any      any                  `json:"any"`
	Anon     struct{ A int }      `json:"anon"`
	Nested   map[string][]float64 `json:"nested"`
}

type custom int

func (custom) MarshalJSON() ([]byte, error) { return []byte(`"c"`), nil }

type withCustom struct {
	C custom `json:"c"`
}

func TestSchemas(t *testing.T) {
	g := NewSchemas()
	if err := g.Define("Outer", reflect.TypeFor[outer]()); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(g.Components())
	want := `{"Inner":{"additionalProperties":false,"properties":{"x":{"type":"integer"}},"type":"object"},` +
		`"Outer":{"additionalProperties":false,"properties":{` +
		`"Untagged":{"type":"boolean"},` +
		`"anon":{"additionalProperties":false,"properties":{"A":{"type":"integer"}},"type":"object"},"any":{},` +
		`"at":{"format":"date-time","type":"string"},"blob":{"contentEncoding":"base64","type":"string"},` +
		`"by_name":{"additionalProperties":{"$ref":"#/components/schemas/Inner"},"type":"object"},` +
		`"count":{"type":"string"},"id":{"type":"string"},"in":{"$ref":"#/components/schemas/Inner"},` +
		`"ins":{"items":{"$ref":"#/components/schemas/Inner"},"type":"array"},"name":{"type":"string"},` +
		`"nested":{"additionalProperties":{"items":{"type":"number"},"type":"array"},"type":"object"},` +
		`"props":{"additionalProperties":{"type":"string"},"type":"object"},"raw":{},` +
		`"tags":{"items":{"type":"string"},"type":"array"}},"type":"object"}}`
	if string(got) != want {
		t.Errorf("schemas:\n%s\nwant\n%s", got, want)
	}
	if ref := g.Ref(reflect.TypeFor[inner]()); ref != "#/components/schemas/Inner" {
		t.Errorf("Ref(inner) = %q", ref)
	}

	// A type with an encoding of its own is refused until it is given a schema.
	g = NewSchemas()
	if err := g.Define("W", reflect.TypeFor[withCustom]()); err == nil || !strings.Contains(err.Error(), "Override") {
		t.Errorf("Define of a type with a MarshalJSON: %v, want an error asking for Override", err)
	}
	g = NewSchemas()
	g.Override(reflect.TypeFor[custom](), map[string]any{"type": "string"})
	if err := g.Define("W", reflect.TypeFor[withCustom]()); err != nil {
		t.Fatal(err)
	}
	// One type, two names; two types, one name: both refused.
	if err := g.Define("Other", reflect.TypeFor[withCustom]()); err == nil {
		t.Error("a type defined under two names")
	}
	if err := g.Define("W", reflect.TypeFor[inner]()); err == nil {
		t.Error("two types under one name")
	}
}
