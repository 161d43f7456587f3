// Package wire reads and writes the 10Duke license consumption API (`/authz/`): it parses
// the query syntax into an engine request and renders engine results as text, JSON or
// signed JWTs. It holds no licensing rule and touches neither store nor engine.
//
// The query syntax cannot go through url.ParseQuery (or http.Request.ParseForm, which uses
// it): that loses the order of the items, which the responses must follow, and it drops every
// `key=value` pair holding a semicolon, which is exactly how per-item options
// (`Item=;leaseId=…`) and `hw=ID;name=NAME` are written. The handler must therefore hand
// the raw query (and for POST the raw form body) to ParseConsumeRaw.
package wire

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
)

// Size bounds of a request. Past them the request is refused with a ParseError (HTTP 400).
const (
	MaxItems    = 64       // licensed items, or lease ids of a release
	MaxFieldLen = 256      // bytes of a decoded key or value
	MaxQueryLen = 16 << 10 // bytes of raw query plus raw form body
)

// Query parameters. Every other key is a licensed item name (10Duke semantics).
const (
	ParamDoConsume       = "doConsume"
	ParamConsumptionMode = "consumptionMode"
	ParamConsumeDuration = "consumeDuration"
	ParamConsumeCount    = "consumeCount"
	ParamHW              = "hw"
	ParamProcess         = "process"
	ParamVersion         = "version"
	ParamLeaseID         = "leaseId"
	ParamOwnerOrg        = "ownerOrganizationId"
	ParamOwnerUser       = "ownerUserId"
	ParamEntitlement     = "entitlementId"
	ParamLicense         = "licenseId"
	ParamQueue           = "queue"
	ParamRelease         = "release"
	// ParamTenant names the tenant explicitly (SPEC §1); the handler compares it with the
	// token's tenant.
	ParamTenant = "tenant"
)

var knownParams = map[string]bool{
	ParamDoConsume: true, ParamConsumptionMode: true, ParamConsumeDuration: true,
	ParamConsumeCount: true, ParamHW: true, ParamProcess: true, ParamVersion: true,
	ParamLeaseID: true, ParamOwnerOrg: true, ParamOwnerUser: true, ParamEntitlement: true,
	ParamLicense: true, ParamQueue: true, ParamRelease: true, ParamTenant: true,
}

// reservedClaims are payload fields an item name would collide with (`<item>: true` sits in
// the same object), so an item may not be named after one.
var reservedClaims = map[string]bool{
	"exp": true, "iss": true, "sub": true, "jti": true, "iat": true, "ver": true, "lic": true,
	"ibb": true, "ibe": true, "rfr": true, "hw": true, "licenseProperties": true, "overage": true,
	"nbf": true, "aud": true,
}

// ParseError is a request that cannot be parsed or is over the size bounds: the handler
// answers it with HTTP 400 and Body. Bad parameter values are not ParseErrors; they are
// answered per item with BadArgument (see Parsed.Invalid).
type ParseError struct {
	// Reason is a stable word for logs and metrics: malformed, too_large, too_many_items,
	// field_too_long, no_items.
	Reason  string
	Message string
}

func (e *ParseError) Error() string { return "authz request: " + e.Message }

// Status is the HTTP status to answer with.
func (e *ParseError) Status() int { return 400 }

// Body is the JSON error body: {"error":"invalid_request","error_description":"…"}.
func (e *ParseError) Body() []byte {
	return Payload{
		{"error", "invalid_request"},
		{"error_description", e.Message},
	}.mustJSON()
}

func parseErr(reason, format string, args ...any) *ParseError {
	return &ParseError{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Parsed is a parsed /authz/ request.
type Parsed struct {
	// Request carries the items and the request parameters. The handler fills Tenant,
	// Caller, ClientIP (and the session fields for session seats) before calling the engine;
	// use EngineRequest to leave out the items that are already refused.
	Request engine.Request
	// Invalid runs parallel to Request.Items: a non-nil entry is the BadArgument answer of
	// that item (a bad parameter value refuses every item; a bad per-item option, its item).
	Invalid []*domain.LicenseError

	// Release is true for the release form (`?release&<leaseId>…`); ReleaseIDs are then
	// the lease ids in request order, duplicates removed, and Request is empty.
	Release    bool
	ReleaseIDs []string

	// Tenant is the `tenant` parameter ("" when absent).
	Tenant string
}

// ParseConsume parses a /authz/ request from its raw query and, for a POST, the form values
// of its body (appended after the query's, keys in sorted order since url.Values keeps
// none). A form built by url.ParseQuery or Request.ParseForm has already lost every pair
// holding a semicolon: prefer ParseConsumeRaw with the raw body.
func ParseConsume(rawQuery string, form url.Values) (Parsed, error) {
	var b strings.Builder
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range form[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(k))
			b.WriteByte('=')
			b.WriteString(url.QueryEscape(v))
			if b.Len() > MaxQueryLen {
				return Parsed{}, parseErr("too_large", "request is larger than %d bytes", MaxQueryLen)
			}
		}
	}
	return ParseConsumeRaw(rawQuery, b.String())
}

// ParseConsumeRaw parses a /authz/ request from its raw query and its raw
// application/x-www-form-urlencoded body ("" for GET), in that order.
//
// Pairs are split on '&', a pair at its first '=', and both halves percent-decoded ('+' is
// a space); a value is then split on ';' for its options, as a servlet reads
// `hw=ID;name=NAME` (so an encoded %3B separates options too).
func ParseConsumeRaw(rawQuery, rawBody string) (Parsed, error) {
	if len(rawQuery)+len(rawBody) > MaxQueryLen {
		return Parsed{}, parseErr("too_large", "request is larger than %d bytes", MaxQueryLen)
	}
	p := parser{params: map[string]string{}}
	for _, raw := range [2]string{rawQuery, rawBody} {
		for raw != "" {
			var pair string
			pair, raw, _ = strings.Cut(raw, "&")
			if pair == "" {
				continue
			}
			if err := p.pair(pair); err != nil {
				return Parsed{}, err
			}
		}
	}
	return p.finish()
}

type entry struct {
	key, value string
	hasValue   bool
}

type parser struct {
	entries []entry           // bare keys (items or release ids) in order
	params  map[string]string // first value of each parameter
	bad     []string          // why parameter values are unacceptable
	release bool
	leaseID []string // every leaseId value, for the release form
}

func (p *parser) pair(pair string) error {
	rawKey, rawValue, hasValue := strings.Cut(pair, "=")
	key, err := url.QueryUnescape(rawKey)
	if err != nil {
		return parseErr("malformed", "bad percent-encoding in %q", truncate(rawKey))
	}
	value, err := url.QueryUnescape(rawValue)
	if err != nil {
		return parseErr("malformed", "bad percent-encoding in the value of %q", truncate(key))
	}
	// Invalid UTF-8 would be replaced by U+FFFD in JSON, so two different names could
	// render as one key: refuse it.
	if !utf8.ValidString(key) || !utf8.ValidString(value) {
		return parseErr("malformed", "%q is not valid UTF-8 once decoded", truncate(rawKey))
	}
	if len(key) > MaxFieldLen {
		return parseErr("field_too_long", "a name is longer than %d bytes: %q", MaxFieldLen, truncate(key))
	}
	if len(value) > MaxFieldLen {
		return parseErr("field_too_long", "the value of %q is longer than %d bytes", truncate(key), MaxFieldLen)
	}
	if key == "" {
		return parseErr("malformed", "a parameter has no name")
	}
	if !knownParams[key] {
		if len(p.entries) == MaxItems {
			return parseErr("too_many_items", "more than %d licensed items", MaxItems)
		}
		p.entries = append(p.entries, entry{key: key, value: value, hasValue: hasValue})
		return nil
	}
	switch key {
	case ParamRelease:
		switch value {
		case "", "true":
			p.release = true
		case "false":
		default:
			return parseErr("malformed", "release takes no value, got %q", truncate(value))
		}
		return nil
	case ParamLeaseID:
		if value != "" {
			p.leaseID = append(p.leaseID, value)
		}
	}
	if prev, seen := p.params[key]; seen {
		if prev != value {
			p.bad = append(p.bad, fmt.Sprintf("%s is given twice with different values", key))
		}
		return nil
	}
	p.params[key] = value
	return nil
}

func (p *parser) finish() (Parsed, error) {
	out := Parsed{Tenant: p.params[ParamTenant]}
	if p.release {
		return p.finishRelease(out)
	}
	if len(p.entries) == 0 {
		return Parsed{}, parseErr("no_items", "the request names no licensed item")
	}
	req := &out.Request
	req.DoConsume = true
	req.Mode = domain.ModeCache
	p.values(req)

	req.Items = make([]engine.ItemRequest, len(p.entries))
	out.Invalid = make([]*domain.LicenseError, len(p.entries))
	for i, e := range p.entries {
		item, why := itemRequest(e)
		req.Items[i] = item
		why = append(slices.Clone(p.bad), why...)
		if len(why) > 0 {
			out.Invalid[i] = domain.NewLicenseError(domain.CodeBadArgument, e.key, strings.Join(why, "; "))
		}
	}
	return out, nil
}

func (p *parser) finishRelease(out Parsed) (Parsed, error) {
	out.Release = true
	seen := map[string]bool{}
	add := func(id string) error {
		if seen[id] {
			return nil
		}
		if len(out.ReleaseIDs) == MaxItems {
			return parseErr("too_many_items", "more than %d lease ids to release", MaxItems)
		}
		seen[id] = true
		out.ReleaseIDs = append(out.ReleaseIDs, id)
		return nil
	}
	for _, e := range p.entries {
		if e.value != "" {
			return Parsed{}, parseErr("malformed", "a lease id to release takes no value: %q", truncate(e.key))
		}
		if err := add(e.key); err != nil {
			return Parsed{}, err
		}
	}
	// `?release&leaseId=X` is accepted too: the parameter's name says what X is.
	for _, id := range p.leaseID {
		if err := add(id); err != nil {
			return Parsed{}, err
		}
	}
	if len(out.ReleaseIDs) == 0 {
		return Parsed{}, parseErr("no_items", "release names no lease id")
	}
	return out, nil
}

// values reads the request parameters into req; unacceptable values are added to p.bad.
func (p *parser) values(req *engine.Request) {
	bad := func(format string, args ...any) { p.bad = append(p.bad, fmt.Sprintf(format, args...)) }
	if v, ok := p.params[ParamDoConsume]; ok {
		switch strings.ToLower(v) {
		case "true":
			req.DoConsume = true
		case "false":
			req.DoConsume = false
		default:
			bad("doConsume must be true or false, got %q", v)
		}
	}
	if v, ok := p.params[ParamConsumptionMode]; ok {
		switch v {
		case domain.ModeCache, domain.ModeCheckout:
			req.Mode = v
		default:
			bad("consumptionMode must be cache or checkout, got %q", v)
		}
	}
	if v, ok := p.params[ParamConsumeDuration]; ok {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms <= 0 {
			bad("consumeDuration must be a positive number of milliseconds, got %q", v)
		} else {
			req.ConsumeDuration = millis(ms)
		}
	}
	if v, ok := p.params[ParamConsumeCount]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			bad("consumeCount must be a positive integer, got %q", v)
		} else {
			req.ConsumeCount, req.CountGiven = n, true
		}
	}
	if v, ok := p.params[ParamQueue]; ok {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			bad("queue must be a number of milliseconds, got %q", v)
		} else {
			req.Queue = millis(ms)
		}
	}
	var why string
	if req.HW, req.HWName, why = idAndName(ParamHW, p.params[ParamHW]); why != "" {
		bad("%s", why)
	}
	if req.Process, req.ProcessName, why = idAndName(ParamProcess, p.params[ParamProcess]); why != "" {
		bad("%s", why)
	}
	req.Version = p.params[ParamVersion]
	req.LeaseID = p.params[ParamLeaseID]
	req.Filter = engine.OwnerFilter{
		OwnerOrganizationID: p.params[ParamOwnerOrg],
		OwnerUserID:         p.params[ParamOwnerUser],
		EntitlementID:       p.params[ParamEntitlement],
		LicenseID:           p.params[ParamLicense],
	}
}

// millis converts milliseconds to a Duration, saturating instead of overflowing (the engine
// caps every duration to the model's maximum anyway).
func millis(ms int64) time.Duration {
	if ms > math.MaxInt64/int64(time.Millisecond) {
		return math.MaxInt64
	}
	return time.Duration(ms) * time.Millisecond
}

// idAndName splits `ID[;name=NAME]`. An empty value means the parameter is absent.
func idAndName(param, v string) (id, name, why string) {
	if v == "" {
		return "", "", ""
	}
	id, opts, _ := strings.Cut(v, ";")
	if id == "" {
		return "", "", fmt.Sprintf("%s has an empty id", param)
	}
	for opt := range strings.SplitSeq(opts, ";") {
		if opt == "" {
			continue
		}
		k, val, ok := strings.Cut(opt, "=")
		switch {
		case !ok || k != "name":
			return "", "", fmt.Sprintf("%s accepts only the option name=…, got %q", param, opt)
		case name != "" && name != val:
			return "", "", fmt.Sprintf("%s names two different names", param)
		}
		name = val
	}
	return id, name, ""
}

// itemRequest reads an item and its options (`Item=;leaseId=…;licenseId=…`).
func itemRequest(e entry) (engine.ItemRequest, []string) {
	item := engine.ItemRequest{Name: e.key}
	var why []string
	if reservedClaims[e.key] {
		why = append(why, fmt.Sprintf("%q is a reserved claim name, not a licensed item", e.key))
	}
	if e.value == "" {
		return item, why
	}
	opts, ok := strings.CutPrefix(e.value, ";")
	if !ok {
		return item, append(why, fmt.Sprintf("item options must follow \"=;\", got %q", e.value))
	}
	for opt := range strings.SplitSeq(opts, ";") {
		if opt == "" {
			continue
		}
		k, v, ok := strings.Cut(opt, "=")
		var dst *string
		switch k {
		case ParamLeaseID:
			dst = &item.LeaseID
		case ParamOwnerOrg:
			dst = &item.Filter.OwnerOrganizationID
		case ParamOwnerUser:
			dst = &item.Filter.OwnerUserID
		case ParamEntitlement:
			dst = &item.Filter.EntitlementID
		case ParamLicense:
			dst = &item.Filter.LicenseID
		}
		switch {
		case !ok || dst == nil:
			why = append(why, fmt.Sprintf("unknown item option %q", opt))
		case *dst != "" && *dst != v:
			why = append(why, fmt.Sprintf("item option %s is given twice with different values", k))
		default:
			*dst = v
		}
	}
	return item, why
}

func truncate(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// EngineRequest returns Request without the items that Invalid already refuses. When it has
// no items left, the engine need not be called: Merge(nil) answers every item.
func (p *Parsed) EngineRequest() engine.Request {
	req := p.Request
	req.Items = make([]engine.ItemRequest, 0, len(p.Request.Items))
	for i, it := range p.Request.Items {
		if p.Invalid[i] == nil {
			req.Items = append(req.Items, it)
		}
	}
	return req
}

// Merge puts the engine's results for EngineRequest's items (in order) back among the
// BadArgument answers, giving one result per requested item in request order.
func (p *Parsed) Merge(results []engine.Result) ([]engine.Result, error) {
	out := make([]engine.Result, len(p.Request.Items))
	next := 0
	for i, it := range p.Request.Items {
		if p.Invalid[i] != nil {
			out[i] = engine.Result{Item: it.Name, Err: p.Invalid[i]}
			continue
		}
		if next == len(results) {
			return nil, errors.New("wire: fewer engine results than valid items")
		}
		out[i] = results[next]
		next++
	}
	if next != len(results) {
		return nil, errors.New("wire: more engine results than valid items")
	}
	return out, nil
}
