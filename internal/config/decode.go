package config

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/leasehold/leasehold/internal/jsonerr"
)

// decodeError turns a failure to decode raw into t into one Error at the deepest path it
// can name. encoding/json names the field only for some errors (type mismatches, not
// unknown fields nor the errors of an UnmarshalJSON method), so the value is walked again
// field by field to find the first part that does not decode. This runs only on failure.
func decodeError(t reflect.Type, raw json.RawMessage, path string, err error) *Error {
	if p, reason, found := locate(t, raw, path); found {
		return &Error{Path: p, Reason: reason}
	}
	return &Error{Path: path, Reason: humanize(err, t)}
}

var (
	timeType        = reflect.TypeFor[time.Time]()
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textType        = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func locate(t reflect.Type, raw json.RawMessage, path string) (string, string, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if isNull(raw) {
		return "", "", false
	}
	switch {
	case t == timeType || t == rawMessageType:
	case t.Kind() == reflect.Struct:
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return path, "must be a mapping, not " + jsonKind(raw), true
		}
		for _, k := range sortedKeys(m) {
			ft, ok := fieldType(t, k)
			if !ok {
				return join(path, k), "unknown field" + suggest(t, k), true
			}
			if p, r, found := locate(ft, m[k], join(path, k)); found {
				return p, r, true
			}
		}
		return "", "", false
	case t.Kind() == reflect.Slice && !implements(t):
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return path, "must be a list, not " + jsonKind(raw), true
		}
		for i, v := range list {
			if p, r, found := locate(t.Elem(), v, fmt.Sprintf("%s[%d]", path, i)); found {
				return p, r, true
			}
		}
		return "", "", false
	case t.Kind() == reflect.Map && !implements(t):
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return path, "must be a mapping, not " + jsonKind(raw), true
		}
		for _, k := range sortedKeys(m) {
			if p, r, found := locate(t.Elem(), m[k], join(path, k)); found {
				return p, r, true
			}
		}
		return "", "", false
	}
	v := reflect.New(t)
	if err := json.Unmarshal(raw, v.Interface()); err != nil {
		return path, humanize(err, t), true
	}
	return "", "", false
}

func implements(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(unmarshalerType) || reflect.PointerTo(t).Implements(textType)
}

// fieldType finds the field that encoding/json would fill from key (exact name first, then
// case-insensitively, as encoding/json does).
func fieldType(t reflect.Type, key string) (reflect.Type, bool) {
	var folded reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		name := jsonName(f)
		if name == "" {
			continue
		}
		if name == key {
			return f.Type, true
		}
		if folded == nil && strings.EqualFold(name, key) {
			folded = f.Type
		}
	}
	return folded, folded != nil
}

func jsonName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("json")
	if tag == "-" {
		return ""
	}
	if name, _, _ := strings.Cut(tag, ","); name != "" {
		return name
	}
	return f.Name
}

// suggest names a field close to an unknown key ("lingr" → "linger"), when there is one.
func suggest(t reflect.Type, key string) string {
	best, bestDist := "", 3
	for i := range t.NumField() {
		name := jsonName(t.Field(i))
		if name == "" {
			continue
		}
		if d := editDistance(strings.ToLower(key), name); d < bestDist {
			best, bestDist = name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// humanize rewrites a decoding error of a value of type t for people who wrote YAML.
func humanize(err error, t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		want := describe(typeErr.Type)
		got := typeErr.Value
		reason := fmt.Sprintf("must be %s, not %s", want, got)
		if got == "bool" && typeErr.Type.Kind() == reflect.String {
			reason += " (quote it: YAML reads yes, no, on, off, y and n as true or false)"
		}
		return reason
	}
	var timeErr *time.ParseError
	if errors.As(err, &timeErr) || t == timeType {
		return "must be an RFC 3339 time such as 2026-01-01T00:00:00Z"
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if strings.HasPrefix(msg, "unknown field ") {
		return "unknown field"
	}
	return msg
}

func describe(t reflect.Type) string { return jsonerr.Describe(t) }

func jsonKind(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	if s == "" {
		return "nothing"
	}
	switch s[0] {
	case '{':
		return "a mapping"
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "true or false"
	case 'n':
		return "null"
	}
	return "a number"
}

func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// join appends a key to a path; keys that would make the path ambiguous are quoted.
func join(path, key string) string {
	if !plainKey(key) {
		key = fmt.Sprintf("%q", key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func plainKey(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
