// Package extauth verifies Bearer JWTs of a tenant's trusted external issuers (OAuth2/OIDC
// providers): signature against the issuer's JWKS (a file or a URL), iss, aud, exp and nbf.
//
// Key sets are cached per source. A token whose kid is not in the cached set makes the set
// be read again, at most once per MinRefetch per source, so a stream of tokens with made-up
// kids cannot turn the server into a load generator against the provider. Sets are also
// re-read after MaxAge on use; a failed re-read keeps the keys already known.
package extauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/leasehold/leasehold/internal/domain"
)

// Errors. ErrUntrusted: no trusted issuer of the tenant claims the token (it may be some
// other kind of token). ErrInvalid wraps every reason a trusted issuer's token is refused.
var (
	ErrUntrusted = errors.New("not a token of a trusted issuer")
	ErrInvalid   = errors.New("invalid external token")
)

// Defaults of Options.
const (
	DefaultLeeway      = 30 * time.Second
	DefaultMinRefetch  = 10 * time.Second
	DefaultMaxAge      = time.Hour
	DefaultMaxJWKSSize = 1 << 20
	DefaultTimeout     = 5 * time.Second
	// MaxTokenLen bounds a JWT this package parses.
	MaxTokenLen = 16 << 10
)

// Asymmetric algorithms only: a JWKS is public, so an HMAC "key" from it proves nothing.
var algorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// Options tune a Verifier; zero values take the defaults.
type Options struct {
	HTTPClient  *http.Client // nil: a client with DefaultTimeout and no more than 3 redirects
	Leeway      time.Duration
	MinRefetch  time.Duration
	MaxAge      time.Duration
	MaxJWKSSize int64
	Now         func() time.Time
}

// Identity is what a verified token says.
type Identity struct {
	Issuer   string
	Subject  string
	User     string // the user_claim's value, else sub
	Expiry   time.Time
	IssuedAt time.Time // zero when the token has no iat
}

// Verifier verifies external tokens. It is safe for concurrent use.
type Verifier struct {
	opts Options
	mu   sync.Mutex
	sets map[string]*keySet // by source: "uri " + URL or "file " + path
}

type keySet struct {
	mu      sync.Mutex // one read of the source at a time
	keys    []jose.JSONWebKey
	loaded  time.Time // last successful read
	tried   time.Time // last attempt
	lastErr error
}

func New(opts Options) *Verifier {
	if opts.Leeway == 0 {
		opts.Leeway = DefaultLeeway
	}
	if opts.MinRefetch == 0 {
		opts.MinRefetch = DefaultMinRefetch
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.MaxJWKSSize == 0 {
		opts.MaxJWKSSize = DefaultMaxJWKSSize
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{
			Timeout: DefaultTimeout,
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if len(via) >= 3 {
					return errors.New("too many redirects")
				}
				return nil
			},
		}
	}
	return &Verifier{opts: opts, sets: map[string]*keySet{}}
}

// LooksLikeJWT reports whether s has the shape of a compact JWS: three dot-separated
// base64url parts. Leasehold's own opaque tokens never contain a dot.
func LooksLikeJWT(s string) bool {
	if len(s) > MaxTokenLen || strings.Count(s, ".") != 2 {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" {
			return false
		}
		for i := 0; i < len(part); i++ {
			c := part[i]
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Issuer returns the unverified iss claim of a JWT ("" when it has none or is not a JWT).
// Use it only to choose which configuration to verify the token against.
func Issuer(raw string) string {
	tok, err := jwt.ParseSigned(raw, algorithms)
	if err != nil {
		return ""
	}
	var c jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		return ""
	}
	return c.Issuer
}

// Verify checks raw against the issuers a tenant trusts. ErrUntrusted means none of them
// issued it (by its iss claim); any other error wraps ErrInvalid.
func (v *Verifier) Verify(ctx context.Context, issuers []domain.TrustedIssuer, raw string) (*Identity, error) {
	if len(issuers) == 0 || !LooksLikeJWT(raw) {
		return nil, ErrUntrusted
	}
	if !canonical(raw) {
		// The base64url decoder ignores the unused low bits of a segment's last character,
		// so one signed token has many spellings; only the one its issuer wrote is taken,
		// so that a token string is never worth more than the token.
		if iss := unsafeIssuer(raw); iss != "" && findIssuer(issuers, iss) != nil {
			return nil, fmt.Errorf("%w: not canonical base64url", ErrInvalid)
		}
		return nil, ErrUntrusted
	}
	tok, err := jwt.ParseSigned(raw, algorithms)
	if err != nil {
		if strings.Contains(err.Error(), "algorithm") {
			// A token with a trusted iss but, e.g., alg none or HS256 is refused, not ignored.
			if iss := unsafeIssuer(raw); iss != "" && findIssuer(issuers, iss) != nil {
				return nil, fmt.Errorf("%w: unsupported signature algorithm", ErrInvalid)
			}
		}
		return nil, ErrUntrusted
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, ErrUntrusted
	}
	ti := findIssuer(issuers, unverified.Issuer)
	if ti == nil {
		return nil, ErrUntrusted
	}
	if len(tok.Headers) != 1 {
		return nil, fmt.Errorf("%w: exactly one signature expected", ErrInvalid)
	}
	h := tok.Headers[0]
	keys, err := v.keysFor(ctx, ti, h.KeyID, h.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var claims jwt.Claims
	var extra map[string]any
	verified := false
	for _, k := range keys {
		if tok.Claims(k.Key, &claims, &extra) == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, fmt.Errorf("%w: bad signature", ErrInvalid)
	}
	if claims.Expiry == nil {
		return nil, fmt.Errorf("%w: no exp claim", ErrInvalid)
	}
	if claims.Subject == "" {
		return nil, fmt.Errorf("%w: no sub claim", ErrInvalid)
	}
	exp := jwt.Expected{Issuer: ti.Issuer, Time: v.opts.Now()}
	if ti.Audience != "" {
		exp.AnyAudience = jwt.Audience{ti.Audience}
	}
	if err := claims.ValidateWithLeeway(exp, v.opts.Leeway); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, strings.TrimPrefix(err.Error(), "go-jose/go-jose/jwt: "))
	}
	id := &Identity{Issuer: ti.Issuer, Subject: claims.Subject, User: claims.Subject, Expiry: claims.Expiry.Time()}
	if claims.IssuedAt != nil {
		id.IssuedAt = claims.IssuedAt.Time()
	}
	if ti.UserClaim != "" {
		u, ok := extra[ti.UserClaim].(string)
		if !ok || u == "" {
			return nil, fmt.Errorf("%w: no %s claim", ErrInvalid, ti.UserClaim)
		}
		id.User = u
	}
	return id, nil
}

func findIssuer(list []domain.TrustedIssuer, iss string) *domain.TrustedIssuer {
	if iss == "" {
		return nil
	}
	for i := range list {
		if list[i].Issuer == iss {
			return &list[i]
		}
	}
	return nil
}

// unsafeIssuer reads iss from the payload without parsing the header (whose algorithm
// jwt.ParseSigned refused).
func unsafeIssuer(raw string) string {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := decodeSegment(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	return c.Iss
}

// keysFor returns the issuer's keys that may have signed a token with kid and alg,
// re-reading the key set when kid is unknown (rate-limited) or the set is old.
func (v *Verifier) keysFor(ctx context.Context, ti *domain.TrustedIssuer, kid, alg string) ([]jose.JSONWebKey, error) {
	source := "uri " + ti.JWKSURI
	if ti.JWKSURI == "" {
		source = "file " + ti.JWKSFile
	}
	v.mu.Lock()
	ks := v.sets[source]
	if ks == nil {
		ks = &keySet{}
		v.sets[source] = ks
	}
	v.mu.Unlock()

	ks.mu.Lock()
	defer ks.mu.Unlock()
	now := v.opts.Now()
	match := matching(ks.keys, kid, alg)
	stale := ks.loaded.IsZero() || now.Sub(ks.loaded) > v.opts.MaxAge
	if (len(match) == 0 || stale) && (ks.tried.IsZero() || now.Sub(ks.tried) >= v.opts.MinRefetch) {
		ks.tried = now
		keys, err := v.load(ctx, ti)
		if err != nil {
			ks.lastErr = err
		} else {
			ks.keys, ks.loaded, ks.lastErr = keys, now, nil
			match = matching(keys, kid, alg)
		}
	}
	if len(match) == 0 {
		if ks.lastErr != nil && len(ks.keys) == 0 {
			return nil, fmt.Errorf("the issuer's keys could not be read: %v", ks.lastErr)
		}
		if kid != "" {
			return nil, fmt.Errorf("unknown key id %q", kid)
		}
		return nil, errors.New("no key of the issuer fits the token")
	}
	return match, nil
}

func matching(keys []jose.JSONWebKey, kid, alg string) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, k := range keys {
		if kid != "" && k.KeyID != kid {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		out = append(out, k)
	}
	return out
}

func (v *Verifier) load(ctx context.Context, ti *domain.TrustedIssuer) ([]jose.JSONWebKey, error) {
	var body []byte
	if ti.JWKSURI != "" {
		ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ti.JWKSURI, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		resp, err := v.opts.HTTPClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: HTTP %d", ti.JWKSURI, resp.StatusCode)
		}
		body, err = readBounded(resp.Body, v.opts.MaxJWKSSize)
		if err != nil {
			return nil, fmt.Errorf("GET %s: %v", ti.JWKSURI, err)
		}
	} else {
		f, err := os.Open(ti.JWKSFile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if body, err = readBounded(f, v.opts.MaxJWKSSize); err != nil {
			return nil, fmt.Errorf("%s: %v", ti.JWKSFile, err)
		}
	}
	return parseJWKS(body)
}

func readBounded(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("key set larger than %d bytes", limit)
	}
	return b, nil
}

// parseJWKS keeps the usable public signing keys of a JWKS and skips the others (a key
// type this library does not know, an encryption key, a symmetric key), so that one odd
// entry does not disable the issuer.
func parseJWKS(b []byte) ([]jose.JSONWebKey, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("not a JWKS: %v", err)
	}
	var keys []jose.JSONWebKey
	for _, r := range raw.Keys {
		var k jose.JSONWebKey
		if json.Unmarshal(r, &k) != nil || !k.Valid() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if _, symmetric := k.Key.([]byte); symmetric {
			continue
		}
		if !k.IsPublic() {
			k = k.Public() // a private key given by mistake: only its public half is used
			if !k.Valid() {
				continue
			}
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("the JWKS holds no usable public signing key")
	}
	return keys, nil
}

// canonical reports whether every part of a compact JWS is base64url as an encoder writes
// it: no padding, and zero bits after the last whole byte.
func canonical(raw string) bool {
	for part := range strings.SplitSeq(raw, ".") {
		if _, err := base64.RawURLEncoding.Strict().DecodeString(part); err != nil {
			return false
		}
	}
	return true
}

func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
