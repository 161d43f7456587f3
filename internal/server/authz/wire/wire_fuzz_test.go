package wire

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/engine"
)

// FuzzParseConsume feeds arbitrary queries and bodies to the parser: it must never panic,
// must answer either a ParseError or a request within the bounds, and whatever it accepts
// must render in every format.
func FuzzParseConsume(f *testing.F) {
	seeds := [][2]string{
		{"AppFeature-XYZ&hw=" + seedHW, ""},
		{"AppFeature-XYZ&hw=" + seedHW + "&leaseId=d04551aa-7c0a-47a6-aa85-ed345e591ea9", ""},
		{"AppFeature-XYZ=;leaseId=a&AppFeature-ABC=;leaseId=b&hw=h", ""},
		{"X&hw=ID;name=NAME&process=1;name=p&consumeCount=-1", ""},
		{"release&a&b&leaseId=c", ""},
		{"X=;ownerOrganizationId=o;licenseId=l&doConsume=false&consumptionMode=checkout", "Y&queue=100"},
		{"%zz&=&;;&==;=", "release=false"},
		{"iss&X=true&tenant=acme&consumeDuration=99999999999999999999", ""},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	sign := func(payload any) (string, error) {
		b, err := json.Marshal(payload)
		return string(b), err
	}
	f.Fuzz(func(t *testing.T, query, body string) {
		p, err := ParseConsumeRaw(query, body)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Reason == "" || !json.Valid(pe.Body()) {
				t.Fatalf("error %v is not a proper ParseError", err)
			}
			return
		}
		if len(query)+len(body) > MaxQueryLen {
			t.Fatalf("accepted %d bytes", len(query)+len(body))
		}
		meta := Meta{Issuer: "https://x/t/acme", Subject: "alice", IssuedAt: time.Unix(1, 0)}
		if p.Release {
			if len(p.ReleaseIDs) == 0 || len(p.ReleaseIDs) > MaxItems || len(p.Request.Items) != 0 {
				t.Fatalf("release ids %d, items %d", len(p.ReleaseIDs), len(p.Request.Items))
			}
			results := make([]engine.ReleaseResult, len(p.ReleaseIDs))
			seen := map[string]bool{}
			for i, id := range p.ReleaseIDs {
				if id == "" || len(id) > MaxFieldLen || seen[id] {
					t.Fatalf("release id %q", id)
				}
				seen[id] = true
				results[i].ID = id
			}
			for _, fm := range []Format{Text, JSON, JWT} {
				out, err := RenderRelease(fm, meta, results, sign)
				if err != nil {
					t.Fatal(err)
				}
				if fm == JSON {
					uniqueKeys(t, out)
				}
			}
			return
		}
		items := p.Request.Items
		if len(items) == 0 || len(items) > MaxItems || len(p.Invalid) != len(items) {
			t.Fatalf("items %d, invalid %d", len(items), len(p.Invalid))
		}
		for _, it := range items {
			for _, s := range []string{it.Name, it.LeaseID, it.Filter.LicenseID, it.Filter.OwnerOrganizationID, it.Filter.OwnerUserID, it.Filter.EntitlementID} {
				if len(s) > MaxFieldLen {
					t.Fatalf("field of %d bytes", len(s))
				}
			}
			if it.Name == "" {
				t.Fatal("empty item name")
			}
		}
		r := p.Request
		if r.ConsumeDuration < 0 || r.Queue < 0 || r.ConsumeCount < 0 || (r.CountGiven && r.ConsumeCount == 0) {
			t.Fatalf("bad values passed through: %+v", r)
		}
		if r.Mode != "cache" && r.Mode != "checkout" {
			t.Fatalf("mode %q", r.Mode)
		}
		valid := p.EngineRequest()
		results := make([]engine.Result, len(valid.Items))
		for i, it := range valid.Items {
			results[i] = engine.Result{Item: it.Name}
		}
		all, err := p.Merge(results)
		if err != nil {
			t.Fatal(err)
		}
		for _, fm := range []Format{Text, JSON, JWT} {
			out, err := RenderConsume(fm, meta, all, sign)
			if err != nil {
				t.Fatal(err)
			}
			switch fm {
			case JSON:
				if len(all) == 1 {
					uniqueKeys(t, out)
				} else if !json.Valid(out) {
					t.Fatalf("invalid JSON %s", out)
				}
			case Text:
				if n := strings.Count(string(out), "&") + 1; n != len(all) {
					t.Fatalf("%d text answers for %d items", n, len(all))
				}
			}
		}
	})
}

// uniqueKeys checks that out is one JSON object whose keys, once decoded, are distinct.
func uniqueKeys(t *testing.T, out []byte) {
	t.Helper()
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(out, &obj); err != nil {
		t.Fatalf("invalid JSON object %s: %v", out, err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	dec.Token() // {
	n := 0
	for dec.More() {
		if _, err := dec.Token(); err != nil { // key
			t.Fatal(err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != len(obj) {
		t.Fatalf("duplicate keys in %s", out)
	}
}
