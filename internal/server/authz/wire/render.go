package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
)

// Format is a response format, chosen by the path suffix.
type Format int

const (
	Text Format = iota // "" or ".txt": true/false per item, joined by '&'
	JSON               // ".json": unsigned payloads
	JWT                // ".jwt": one compact JWS per item, joined by '&'
)

// ParseFormat maps a path suffix ("", ".txt", ".json", ".jwt") to its Format.
func ParseFormat(suffix string) (Format, bool) {
	switch suffix {
	case "", ".txt":
		return Text, true
	case ".json":
		return JSON, true
	case ".jwt":
		return JWT, true
	}
	return 0, false
}

func (f Format) String() string {
	switch f {
	case Text:
		return "txt"
	case JSON:
		return "json"
	case JWT:
		return "jwt"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// ContentType is the response's Content-Type.
func (f Format) ContentType() string {
	switch f {
	case JSON:
		return "application/json"
	case JWT:
		return "application/jwt"
	}
	return "text/plain; charset=utf-8"
}

// Meta is what a response says about itself rather than about a lease.
type Meta struct {
	Issuer   string    // `iss`: {public_url}/t/{tenant}
	Subject  string    // `sub`: the user id, or the client id for a client token
	IssuedAt time.Time // `iat` of checks, errors and releases (the store's clock)
}

// SignFunc signs a JSON payload into a compact JWS (keys.Signer.Sign). The payload it is
// given is a json.RawMessage, to be signed byte for byte.
type SignFunc func(payload any) (string, error)

// Field is one member of a Payload.
type Field struct {
	Key   string
	Value any
}

// Payload is a JSON object that keeps its members in order, so that responses read like
// the seed's examples (Go maps would sort them).
type Payload []Field

// Get returns the value of key.
func (p Payload) Get(key string) (any, bool) {
	for _, f := range p {
		if f.Key == key {
			return f.Value, true
		}
	}
	return nil, false
}

// MarshalJSON writes the members in order. Should a key repeat, its first value wins, so
// the output is always a valid object.
func (p Payload) MarshalJSON() ([]byte, error) {
	return appendPayload(make([]byte, 0, payloadSize(p)), p)
}

func (p Payload) has(key string) bool {
	for _, f := range p {
		if f.Key == key {
			return true
		}
	}
	return false
}

// mustJSON encodes payloads made only of strings, numbers, bools and string maps, which
// cannot fail.
func (p Payload) mustJSON() []byte {
	b, err := p.MarshalJSON()
	if err != nil {
		panic(err)
	}
	return b
}

// fields receives a payload's members in order. The answers are defined once, as calls
// on a fields: a Payload collects them (for callers that look at values), an
// objectWriter encodes them straight to JSON, without boxing each value in an interface
// on the way (a dozen allocations per lease).
type fields interface {
	str(key, v string)
	num(key string, v int64)
	flag(key string, v bool)
	props(key string, v map[string]string)
}

func (p *Payload) str(key, v string)                     { *p = append(*p, Field{key, v}) }
func (p *Payload) num(key string, v int64)               { *p = append(*p, Field{key, v}) }
func (p *Payload) flag(key string, v bool)               { *p = append(*p, Field{key, v}) }
func (p *Payload) props(key string, v map[string]string) { *p = append(*p, Field{key, v}) }

// ConsumePayload is the answer for one item: a lease, a check (doConsume=false), or a
// license error.
//
// A lease's `iat` is the time its lease id was issued (Lease.RenewedAt), so that a retry
// within chain_grace, answered with the unchanged lease, shows the same `iat` as the first
// answer; checks and errors carry m.IssuedAt.
func ConsumePayload(m Meta, r engine.Result) Payload {
	p := make(Payload, 0, 14)
	consumeFields(&p, m, r)
	return p
}

func consumeFields(f fields, m Meta, r engine.Result) {
	switch {
	case r.Err != nil:
		errorFields(f, m, r.Item, r.Err)
	case r.Lease != nil:
		leaseFields(f, m, r)
	default:
		checkFields(f, m, r)
	}
}

func leaseFields(f fields, m Meta, r engine.Result) {
	l := r.Lease
	item := r.Item
	if item == "" {
		item = l.Item
	}
	iat := l.RenewedAt
	if iat.IsZero() {
		iat = m.IssuedAt
	}
	f.num("exp", l.ExpiresAt.Unix())
	f.flag(item, true)
	f.str("iss", m.Issuer)
	if m.Subject != "" {
		f.str("sub", m.Subject)
	}
	f.str("jti", l.ID)
	f.num("iat", iat.Unix())
	if l.Version != "" {
		f.str("ver", l.Version)
	}
	lic := l.LicenseID
	if r.License != nil {
		lic = r.License.ID
	}
	f.str("lic", lic)
	validityFields(f, r.License)
	if !l.RefreshAt.IsZero() {
		f.num("rfr", l.RefreshAt.Unix())
	}
	if l.HW != "" {
		f.str("hw", l.HW)
	}
	propertyFields(f, r.License)
	if l.Overage {
		f.flag("overage", true)
	}
}

func checkFields(f fields, m Meta, r engine.Result) {
	f.flag(r.Item, true)
	if r.License != nil {
		f.str("lic", r.License.ID)
		validityFields(f, r.License)
		propertyFields(f, r.License)
	}
	f.str("iss", m.Issuer)
	f.num("iat", m.IssuedAt.Unix())
}

func validityFields(f fields, l *domain.License) {
	if l == nil {
		return
	}
	if l.ValidFrom != nil {
		f.num("ibb", l.ValidFrom.Unix())
	}
	if l.ValidUntil != nil {
		f.num("ibe", l.ValidUntil.Unix())
	}
}

func propertyFields(f fields, l *domain.License) {
	if l == nil || len(l.Properties) == 0 {
		return
	}
	f.props("licenseProperties", l.Properties)
}

func errorFields(f fields, m Meta, name string, e *domain.LicenseError) {
	nameErrorFields(f, name, e)
	f.str("iss", m.Issuer)
	f.num("iat", m.IssuedAt.Unix())
}

func nameErrorFields(f fields, name string, e *domain.LicenseError) {
	msg := e.Message
	if msg == "" {
		msg = fmt.Sprintf("Access to %q denied", name)
	}
	tech := e.Technical
	if tech == "" {
		tech = msg
	}
	f.str(name+"_errorCode", string(e.Code))
	f.str(name+"_errorKey", string(e.Code))
	f.str(name+"_errorMessage", msg)
	f.str(name+"_errorTechnical", tech)
}

// ReleasePayload is the one object answering a release: `<leaseId>_released: true` or the
// id's error keys, per id in request order, then `iss` and `iat`.
func ReleasePayload(m Meta, results []engine.ReleaseResult) Payload {
	p := make(Payload, 0, len(results)+2)
	releaseFields(&p, m, results)
	return p
}

func releaseFields(f fields, m Meta, results []engine.ReleaseResult) {
	for _, r := range results {
		if r.Err != nil {
			nameErrorFields(f, r.ID, r.Err)
		} else {
			f.flag(r.ID+"_released", true)
		}
	}
	f.str("iss", m.Issuer)
	f.num("iat", m.IssuedAt.Unix())
}

// RenderConsume renders the results of a consumption (one per requested item, in request
// order; see Parsed.Merge). sign is needed only for JWT.
func RenderConsume(f Format, m Meta, results []engine.Result, sign SignFunc) ([]byte, error) {
	switch f {
	case Text:
		ok := make([]bool, len(results))
		for i, r := range results {
			ok[i] = r.Err == nil
		}
		return textBody(ok), nil
	case JSON:
		if len(results) == 1 {
			return consumeJSON(nil, m, results[0]), nil
		}
		b := make([]byte, 0, 2+len(results)*(consumeSize(m, results[0])+1))
		b = append(b, '[')
		for i, r := range results {
			if i > 0 {
				b = append(b, ',')
			}
			b = consumeJSON(b, m, r)
		}
		return append(b, ']'), nil
	case JWT:
		if sign == nil {
			return nil, errors.New("wire: JWT format without a signer")
		}
		toks := make([]string, len(results))
		for i, r := range results {
			tok, err := signJSON(sign, consumeJSON(nil, m, r))
			if err != nil {
				return nil, err
			}
			toks[i] = tok
		}
		return []byte(strings.Join(toks, "&")), nil
	}
	return nil, fmt.Errorf("wire: unknown format %v", f)
}

// RenderRelease renders the results of a release, one per lease id in request order.
func RenderRelease(f Format, m Meta, results []engine.ReleaseResult, sign SignFunc) ([]byte, error) {
	switch f {
	case Text:
		ok := make([]bool, len(results))
		for i, r := range results {
			ok[i] = r.Err == nil
		}
		return textBody(ok), nil
	case JSON:
		return releaseJSON(m, results), nil
	case JWT:
		if sign == nil {
			return nil, errors.New("wire: JWT format without a signer")
		}
		tok, err := signJSON(sign, releaseJSON(m, results))
		if err != nil {
			return nil, err
		}
		return []byte(tok), nil
	}
	return nil, fmt.Errorf("wire: unknown format %v", f)
}

// signJSON signs the payload's JSON bytes as they are (keys.Signer.Sign signs a
// json.RawMessage byte for byte).
func signJSON(sign SignFunc, payload []byte) (string, error) {
	tok, err := sign(json.RawMessage(payload))
	if err != nil {
		return "", fmt.Errorf("wire: signing: %w", err)
	}
	return tok, nil
}

func textBody(ok []bool) []byte {
	b := make([]byte, 0, 6*len(ok))
	for i, v := range ok {
		if i > 0 {
			b = append(b, '&')
		}
		b = strconv.AppendBool(b, v)
	}
	return b
}
