package wire

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
)

// referenceJSON is what Payload.MarshalJSON wrote before it had its own encoder: every key
// and value through encoding/json. The encoder must match it byte for byte, since
// signatures and golden files are over these bytes.
func referenceJSON(t testing.TB, p Payload) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range p {
		if p[:i].has(f.Key) {
			continue
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(f.Key)
		if err != nil {
			t.Fatal(err)
		}
		v, err := json.Marshal(f.Value)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes()
}

func checkPayloadJSON(t testing.TB, p Payload) {
	t.Helper()
	got, err := p.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if want := referenceJSON(t, p); !bytes.Equal(got, want) {
		t.Fatalf("payload %#v\n got %s\nwant %s", p, got, want)
	}
	if !json.Valid(got) {
		t.Fatalf("invalid JSON %s", got)
	}
}

// awkward strings: everything encoding/json escapes or replaces, and its neighbours.
var awkward = []string{
	"", "a", "AppFeature-XYZ", `"`, `\`, `\"`, "a\"b\\c", "<script>&amp;</script>", "a<b", ">", "&",
	"\x00", "\x01\x1f", "\b\f\n\r\t", "\x7f", " ~", "é", "日本語", "emoji 🎉", "\u2028", "\u2029", "a\u2028b\u2029c",
	"\u2027\u202a", "\xff", "\xc3", "a\xc3(b", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\uFFFD", "\U0010FFFF",
	"en,es", "k=v;x", "/t/acme", "https://leasehold.example/t/acme", strings.Repeat("x", 300),
}

func TestPayloadJSONMatchesEncodingJSON(t *testing.T) {
	for _, s := range awkward {
		checkPayloadJSON(t, Payload{{s, true}})
		checkPayloadJSON(t, Payload{{"k", s}})
		checkPayloadJSON(t, Payload{{"licenseProperties", map[string]string{s: s, "lang": s}}})
	}
	for _, v := range []any{true, false, int64(0), int64(-1), int64(1 << 62), int64(-1 << 63),
		map[string]string{}, map[string]string(nil), 1.5, []string{"a", "<"}, nil, 42, struct{ A string }{"&"}} {
		checkPayloadJSON(t, Payload{{"v", v}, {"w", "x"}})
	}
	big := map[string]string{}
	for i := range 40 { // more than the sort's stack array
		big["p"+strconv.Itoa(i*7919%1000)] = "v" + strconv.Itoa(i)
	}
	checkPayloadJSON(t, Payload{{"licenseProperties", big}})
	checkPayloadJSON(t, Payload{{"iss", true}, {"iss", "x"}, {"a", int64(1)}, {"a", "dup"}}) // repeats
	checkPayloadJSON(t, Payload{})

	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() string { return randomString(rng, 3, 12) }
	for range 5000 {
		p := Payload{}
		for range rng.IntN(16) {
			var v any
			switch rng.IntN(5) {
			case 0:
				v = rng.IntN(2) == 0
			case 1:
				v = rng.Int64() - rng.Int64()
			case 2:
				v = pick()
			case 3:
				m := map[string]string{}
				for range rng.IntN(20) {
					m[pick()] = pick()
				}
				v = m
			case 4:
				v = rng.Float64()
			}
			p = append(p, Field{pick(), v})
		}
		checkPayloadJSON(t, p)
	}
}

// Several results render as one array of the same objects.
func TestRenderJSONArrayMatchesPayloads(t *testing.T) {
	results := multiResults()
	got, err := RenderConsume(JSON, meta, results, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	want.WriteByte('[')
	for i, r := range results {
		if i > 0 {
			want.WriteByte(',')
		}
		want.Write(referenceJSON(t, ConsumePayload(meta, r)))
	}
	want.WriteByte(']')
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("got %s\nwant %s", got, want.Bytes())
	}
}

func FuzzPayloadJSON(f *testing.F) {
	for _, s := range awkward {
		f.Add(s, s, int64(len(s)))
	}
	f.Fuzz(func(t *testing.T, k, v string, n int64) {
		checkPayloadJSON(t, Payload{{k, v}, {v, n}, {"b", k == v}, {"licenseProperties", map[string]string{k: v, v: k, "x": ""}}, {k, "dup"}})
	})
}

// randomResult is a lease, a check or an error, with or without a license, properties,
// validity, subject…, made of awkward strings, and item names that collide with claims.
func randomResult(rng *rand.Rand, pick func() string) (Meta, engine.Result) {
	tm := func() time.Time {
		if rng.IntN(4) == 0 {
			return time.Time{}
		}
		return time.Unix(rng.Int64N(4e9)-1e9, 0)
	}
	m := Meta{Issuer: pick(), IssuedAt: tm()}
	if rng.IntN(3) > 0 {
		m.Subject = pick()
	}
	item := pick()
	if rng.IntN(8) == 0 {
		item = []string{"exp", "iss", "lic", "hw", "licenseProperties", "overage", "iat", ""}[rng.IntN(8)]
	}
	r := engine.Result{Item: item}
	if rng.IntN(3) > 0 {
		l := &domain.License{ID: pick()}
		if rng.IntN(2) == 0 {
			from := tm()
			l.ValidFrom = &from
		}
		if rng.IntN(2) == 0 {
			until := tm()
			l.ValidUntil = &until
		}
		if rng.IntN(2) == 0 {
			l.Properties = map[string]string{}
			for range rng.IntN(20) {
				l.Properties[pick()] = pick()
			}
		}
		r.License = l
	}
	switch rng.IntN(3) {
	case 0:
		r.Err = &domain.LicenseError{Code: domain.ErrorCode(pick()), Message: pick(), Technical: pick()}
	case 1:
		r.Lease = &domain.Lease{ID: pick(), LicenseID: pick(), Item: pick(), HW: pick(), Version: pick(),
			RenewedAt: tm(), ExpiresAt: tm(), RefreshAt: tm(), Overage: rng.IntN(2) == 0}
	}
	return m, r
}

// The answers are encoded straight from the results: the bytes must be those of the
// Payload the same result makes, encoded by encoding/json.
func TestConsumeJSONMatchesPayload(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	pick := func() string { return randomString(rng, 2, 10) }
	sign := func(payload any) (string, error) {
		raw, ok := payload.(json.RawMessage)
		if !ok {
			t.Fatalf("signer given %T, want the JSON bytes", payload)
		}
		return string(raw), nil
	}
	for range 5000 {
		m, r := randomResult(rng, pick)
		want := referenceJSON(t, ConsumePayload(m, r))
		got, err := RenderConsume(JSON, m, []engine.Result{r}, nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("result %+v lease %+v license %+v\n got %s\nwant %s (%v)", r, r.Lease, r.License, got, want, err)
		}
		if got, err := RenderConsume(JWT, m, []engine.Result{r}, sign); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("signed payload\n got %s\nwant %s (%v)", got, want, err)
		}
		_, r2 := randomResult(rng, pick)
		got, err = RenderConsume(JSON, m, []engine.Result{r, r2}, nil)
		want = []byte("[" + string(want) + "," + string(referenceJSON(t, ConsumePayload(m, r2))) + "]")
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("array\n got %s\nwant %s (%v)", got, want, err)
		}
		rel := make([]engine.ReleaseResult, rng.IntN(4))
		for i := range rel {
			rel[i].ID = pick()
			if rng.IntN(2) == 0 {
				rel[i].Err = &domain.LicenseError{Code: domain.ErrorCode(pick()), Message: pick()}
			}
		}
		want = referenceJSON(t, ReleasePayload(m, rel))
		if got, err := RenderRelease(JSON, m, rel, nil); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("release\n got %s\nwant %s (%v)", got, want, err)
		}
		if got, err := RenderRelease(JWT, m, rel, sign); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("signed release\n got %s\nwant %s (%v)", got, want, err)
		}
	}
}

// A lease answer is encoded into one buffer, allocated once.
func TestLeaseJSONAllocs(t *testing.T) {
	m, results := benchResult()
	if n := testing.AllocsPerRun(100, func() { _, _ = RenderConsume(JSON, m, results, nil) }); n > 2 {
		t.Errorf("RenderConsume(JSON) of a lease: %v allocations, want at most 2", n)
	}
}

// randomString is one of the awkward strings once in awkwardOneIn, else up to maxLen-1
// random bytes (invalid UTF-8 included).
func randomString(rng *rand.Rand, awkwardOneIn, maxLen int) string {
	if rng.IntN(awkwardOneIn) == 0 {
		return awkward[rng.IntN(len(awkward))]
	}
	b := make([]byte, rng.IntN(maxLen))
	for i := range b {
		b[i] = byte(rng.IntN(256))
	}
	return string(b)
}
