package wire

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/leasehold/leasehold/internal/engine"
)

// The payload encoder appends to one buffer instead of calling json.Marshal per member
// (a reflection walk and a fresh slice each): it is on the path of every /authz answer.
// Its output is byte for byte what encoding/json writes for the same values, HTML
// escaping included, so that signed payloads and golden files do not change; values of
// any other type still go through json.Marshal.

// appendPayload appends p as one JSON object. Should a key repeat, its first value wins,
// so the output is always a valid object.
func appendPayload(b []byte, p Payload) ([]byte, error) {
	b = append(b, '{')
	first := true
	for i, f := range p {
		if p[:i].has(f.Key) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, f.Key)
		b = append(b, ':')
		switch v := f.Value.(type) {
		case bool:
			b = strconv.AppendBool(b, v)
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case string:
			b = appendJSONString(b, v)
		case map[string]string:
			b = appendStringMap(b, v)
		default:
			enc, err := json.Marshal(v)
			if err != nil {
				return nil, fmt.Errorf("wire: field %q: %w", f.Key, err)
			}
			b = append(b, enc...)
		}
	}
	return append(b, '}'), nil
}

// payloadSize is about the encoded size of p (exact when nothing needs escaping), so
// that the buffer is allocated once.
func payloadSize(p Payload) int {
	n := 2
	for _, f := range p {
		n += len(f.Key) + 4
		switch v := f.Value.(type) {
		case bool:
			n += 5
		case int64:
			n += 20
		case string:
			n += len(v) + 2
		case map[string]string:
			n += 2
			for k, s := range v {
				n += len(k) + len(s) + 6
			}
		default:
			n += 32
		}
	}
	return n
}

// appendStringMap is encoding/json's encoding of a map[string]string: members sorted by
// key, and a nil map is null.
func appendStringMap(b []byte, m map[string]string) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	var arr [16]string // license properties are few: no allocation to sort them
	keys := arr[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, m[k])
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString is encoding/json's string encoding with HTML escaping (what
// json.Marshal does): `"` and `\` escaped, \b \f \n \r \t by name, other control bytes
// and < > & as \u00XX, invalid UTF-8 as \ufffd, U+2028 and U+2029 as \u2028 and \u2029.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// objectWriter encodes the members it is given as one JSON object, exactly as
// Payload.MarshalJSON would encode the Payload made of them (the first of repeated keys
// wins).
type objectWriter struct {
	b    []byte
	keys []string // written so far
	arr  [16]string
}

func newObjectWriter(b []byte) *objectWriter {
	w := &objectWriter{b: append(b, '{')}
	w.keys = w.arr[:0]
	return w
}

// key writes the member's key, or reports that it was already written.
func (w *objectWriter) key(k string) bool {
	for _, seen := range w.keys {
		if seen == k {
			return false
		}
	}
	if len(w.keys) > 0 {
		w.b = append(w.b, ',')
	}
	w.keys = append(w.keys, k)
	w.b = appendJSONString(w.b, k)
	w.b = append(w.b, ':')
	return true
}

func (w *objectWriter) str(k, v string) {
	if w.key(k) {
		w.b = appendJSONString(w.b, v)
	}
}

func (w *objectWriter) num(k string, v int64) {
	if w.key(k) {
		w.b = strconv.AppendInt(w.b, v, 10)
	}
}

func (w *objectWriter) flag(k string, v bool) {
	if w.key(k) {
		w.b = strconv.AppendBool(w.b, v)
	}
}

func (w *objectWriter) props(k string, v map[string]string) {
	if w.key(k) {
		w.b = appendStringMap(w.b, v)
	}
}

func (w *objectWriter) end() []byte { return append(w.b, '}') }

// consumeJSON appends ConsumePayload(m, r) as JSON to b (nil: a buffer of about the
// right size).
func consumeJSON(b []byte, m Meta, r engine.Result) []byte {
	if b == nil {
		b = make([]byte, 0, consumeSize(m, r))
	}
	w := newObjectWriter(b)
	consumeFields(w, m, r)
	return w.end()
}

func releaseJSON(m Meta, results []engine.ReleaseResult) []byte {
	n := 64 + len(m.Issuer)
	for _, r := range results {
		n += 2*len(r.ID) + 160
	}
	w := newObjectWriter(make([]byte, 0, n))
	releaseFields(w, m, results)
	return w.end()
}

// consumeSize is about the encoded size of r's answer (a little over when nothing needs
// escaping), so that its buffer is allocated once.
func consumeSize(m Meta, r engine.Result) int {
	n := 48 + len(m.Issuer) + len(m.Subject) + len(r.Item)
	if r.Err != nil {
		return n + 4*len(r.Item) + 2*len(r.Err.Code) + 2*len(r.Err.Message) + 2*len(r.Err.Technical) + 160
	}
	if l := r.Lease; l != nil {
		n += len(l.Item) + len(l.ID) + len(l.Version) + len(l.LicenseID) + len(l.HW) + 160
	}
	if l := r.License; l != nil {
		n += len(l.ID) + 48
		for k, v := range l.Properties {
			n += len(k) + len(v) + 6
		}
	}
	return n
}
