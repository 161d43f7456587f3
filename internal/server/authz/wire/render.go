package wire

import (
	"bytes"
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
	b := make([]byte, 0, 64*len(p))
	b = append(b, '{')
	for i, f := range p {
		if p[:i].has(f.Key) {
			continue
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		k, err := json.Marshal(f.Key)
		if err != nil {
			return nil, err
		}
		b = append(b, k...)
		b = append(b, ':')
		switch v := f.Value.(type) {
		case bool:
			b = strconv.AppendBool(b, v)
		case int64:
			b = strconv.AppendInt(b, v, 10)
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

// ConsumePayload is the answer for one item: a lease, a check (doConsume=false), or a
// license error.
//
// A lease's `iat` is the time its lease id was issued (Lease.RenewedAt), so that a retry
// within chain_grace, answered with the unchanged lease, shows the same `iat` as the first
// answer; checks and errors carry m.IssuedAt.
func ConsumePayload(m Meta, r engine.Result) Payload {
	switch {
	case r.Err != nil:
		return ErrorPayload(m, r.Item, r.Err)
	case r.Lease != nil:
		return leasePayload(m, r)
	default:
		return checkPayload(m, r)
	}
}

func leasePayload(m Meta, r engine.Result) Payload {
	l := r.Lease
	item := r.Item
	if item == "" {
		item = l.Item
	}
	iat := l.RenewedAt
	if iat.IsZero() {
		iat = m.IssuedAt
	}
	p := make(Payload, 0, 14)
	p = append(p, Field{"exp", l.ExpiresAt.Unix()}, Field{item, true}, Field{"iss", m.Issuer})
	if m.Subject != "" {
		p = append(p, Field{"sub", m.Subject})
	}
	p = append(p, Field{"jti", l.ID}, Field{"iat", iat.Unix()})
	if l.Version != "" {
		p = append(p, Field{"ver", l.Version})
	}
	lic := l.LicenseID
	if r.License != nil {
		lic = r.License.ID
	}
	p = append(p, Field{"lic", lic})
	p = appendValidity(p, r.License)
	if !l.RefreshAt.IsZero() {
		p = append(p, Field{"rfr", l.RefreshAt.Unix()})
	}
	if l.HW != "" {
		p = append(p, Field{"hw", l.HW})
	}
	p = appendProperties(p, r.License)
	if l.Overage {
		p = append(p, Field{"overage", true})
	}
	return p
}

func checkPayload(m Meta, r engine.Result) Payload {
	p := make(Payload, 0, 7)
	p = append(p, Field{r.Item, true})
	if r.License != nil {
		p = append(p, Field{"lic", r.License.ID})
		p = appendValidity(p, r.License)
		p = appendProperties(p, r.License)
	}
	return append(p, Field{"iss", m.Issuer}, Field{"iat", m.IssuedAt.Unix()})
}

func appendValidity(p Payload, l *domain.License) Payload {
	if l == nil {
		return p
	}
	if l.ValidFrom != nil {
		p = append(p, Field{"ibb", l.ValidFrom.Unix()})
	}
	if l.ValidUntil != nil {
		p = append(p, Field{"ibe", l.ValidUntil.Unix()})
	}
	return p
}

func appendProperties(p Payload, l *domain.License) Payload {
	if l == nil || len(l.Properties) == 0 {
		return p
	}
	return append(p, Field{"licenseProperties", l.Properties})
}

// ErrorPayload is the 10Duke error answer for name (an item, or a lease id of a release):
// `<name>_errorCode`, `_errorKey` (the same code), `_errorMessage`, `_errorTechnical`,
// then `iss` and `iat`.
func ErrorPayload(m Meta, name string, e *domain.LicenseError) Payload {
	p := appendError(make(Payload, 0, 6), name, e)
	return append(p, Field{"iss", m.Issuer}, Field{"iat", m.IssuedAt.Unix()})
}

func appendError(p Payload, name string, e *domain.LicenseError) Payload {
	msg := e.Message
	if msg == "" {
		msg = fmt.Sprintf("Access to %q denied", name)
	}
	tech := e.Technical
	if tech == "" {
		tech = msg
	}
	return append(p,
		Field{name + "_errorCode", string(e.Code)},
		Field{name + "_errorKey", string(e.Code)},
		Field{name + "_errorMessage", msg},
		Field{name + "_errorTechnical", tech},
	)
}

// ReleasePayload is the one object answering a release: `<leaseId>_released: true` or the
// id's error keys, per id in request order, then `iss` and `iat`.
func ReleasePayload(m Meta, results []engine.ReleaseResult) Payload {
	p := make(Payload, 0, len(results)+2)
	for _, r := range results {
		if r.Err != nil {
			p = appendError(p, r.ID, r.Err)
		} else {
			p = append(p, Field{r.ID + "_released", true})
		}
	}
	return append(p, Field{"iss", m.Issuer}, Field{"iat", m.IssuedAt.Unix()})
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
			return ConsumePayload(m, results[0]).MarshalJSON()
		}
		var b bytes.Buffer
		b.WriteByte('[')
		for i, r := range results {
			if i > 0 {
				b.WriteByte(',')
			}
			enc, err := ConsumePayload(m, r).MarshalJSON()
			if err != nil {
				return nil, err
			}
			b.Write(enc)
		}
		b.WriteByte(']')
		return b.Bytes(), nil
	case JWT:
		if sign == nil {
			return nil, errors.New("wire: JWT format without a signer")
		}
		toks := make([]string, len(results))
		for i, r := range results {
			tok, err := signPayload(sign, ConsumePayload(m, r))
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
		return ReleasePayload(m, results).MarshalJSON()
	case JWT:
		if sign == nil {
			return nil, errors.New("wire: JWT format without a signer")
		}
		tok, err := signPayload(sign, ReleasePayload(m, results))
		if err != nil {
			return nil, err
		}
		return []byte(tok), nil
	}
	return nil, fmt.Errorf("wire: unknown format %v", f)
}

func signPayload(sign SignFunc, p Payload) (string, error) {
	enc, err := p.MarshalJSON()
	if err != nil {
		return "", err
	}
	tok, err := sign(json.RawMessage(enc))
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
