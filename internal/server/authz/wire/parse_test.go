package wire

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
)

const seedHW = "T29qb1RoYWU3aWV6MENoYWlkaWUyZXRoMWphMmFoQmUK"

// base is the request every consumption starts from: the defaults.
func base(items ...engine.ItemRequest) engine.Request {
	return engine.Request{Items: items, DoConsume: true, Mode: domain.ModeCache}
}

func item(name string) engine.ItemRequest { return engine.ItemRequest{Name: name} }

func TestParseConsume(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  engine.Request
		tweak func(*engine.Request)
	}{
		{
			name:  "seed: consume with hw",
			query: "AppFeature-XYZ&hw=" + seedHW,
			want:  base(item("AppFeature-XYZ")),
			tweak: func(r *engine.Request) { r.HW = seedHW },
		},
		{
			name:  "seed: renew with leaseId",
			query: "AppFeature-XYZ&hw=" + seedHW + "&leaseId=d04551aa-7c0a-47a6-aa85-ed345e591ea9",
			want:  base(item("AppFeature-XYZ")),
			tweak: func(r *engine.Request) {
				r.HW = seedHW
				r.LeaseID = "d04551aa-7c0a-47a6-aa85-ed345e591ea9"
			},
		},
		{
			name: "seed: two items each with =;leaseId=",
			query: "AppFeature-XYZ=;leaseId=d04551aa-7c0a-47a6-aa85-ed345e591ea9" +
				"&AppFeature-ABC=;leaseId=d82cde79-da02-4e24-861c-ed3bf96a4fed&hw=" + seedHW,
			want: base(
				engine.ItemRequest{Name: "AppFeature-XYZ", LeaseID: "d04551aa-7c0a-47a6-aa85-ed345e591ea9"},
				engine.ItemRequest{Name: "AppFeature-ABC", LeaseID: "d82cde79-da02-4e24-861c-ed3bf96a4fed"},
			),
			tweak: func(r *engine.Request) { r.HW = seedHW },
		},
		{
			name:  "hw and process with names",
			query: "X&hw=HW-1;name=Alice's laptop&process=4242;name=excel.exe",
			want:  base(item("X")),
			tweak: func(r *engine.Request) {
				r.HW, r.HWName = "HW-1", "Alice's laptop"
				r.Process, r.ProcessName = "4242", "excel.exe"
			},
		},
		{
			name:  "hw with the separators percent-encoded, as a generic URL encoder writes it",
			query: "X&hw=HW-1%3Bname%3DMy+PC",
			want:  base(item("X")),
			tweak: func(r *engine.Request) { r.HW, r.HWName = "HW-1", "My PC" },
		},
		{
			name:  "percent-encoded item names and options",
			query: "App%20Feature+%C3%A9%26co=;licenseId=lic%2F1;leaseId=a%2Bb&caf%C3%A9",
			want: base(
				engine.ItemRequest{Name: "App Feature é&co", LeaseID: "a+b", Filter: engine.OwnerFilter{LicenseID: "lic/1"}},
				item("café"),
			),
		},
		{
			name:  "item order is kept, parameters interleaved",
			query: "Zeta&hw=h&Alpha&version=1.2.3&Mid=;leaseId=m&Beta",
			want:  base(item("Zeta"), item("Alpha"), engine.ItemRequest{Name: "Mid", LeaseID: "m"}, item("Beta")),
			tweak: func(r *engine.Request) { r.HW, r.Version = "h", "1.2.3" },
		},
		{
			name: "every parameter",
			query: "X&doConsume=false&consumptionMode=checkout&consumeDuration=60000&consumeCount=3" +
				"&version=1.6.14&leaseId=L&ownerOrganizationId=org-1&ownerUserId=alice" +
				"&entitlementId=ent-1&licenseId=lic-1&queue=2500&tenant=acme",
			want: base(item("X")),
			tweak: func(r *engine.Request) {
				r.DoConsume, r.Mode = false, domain.ModeCheckout
				r.ConsumeDuration = time.Minute
				r.ConsumeCount, r.CountGiven = 3, true
				r.Version, r.LeaseID = "1.6.14", "L"
				r.Filter = engine.OwnerFilter{OwnerOrganizationID: "org-1", OwnerUserID: "alice", EntitlementID: "ent-1", LicenseID: "lic-1"}
				r.Queue = 2500 * time.Millisecond
			},
		},
		{
			name:  "per-item owner filters",
			query: "X=;ownerOrganizationId=o;ownerUserId=u;entitlementId=e;licenseId=l&Y=;",
			want: base(
				engine.ItemRequest{Name: "X", Filter: engine.OwnerFilter{OwnerOrganizationID: "o", OwnerUserID: "u", EntitlementID: "e", LicenseID: "l"}},
				item("Y"),
			),
		},
		{
			name:  "doConsume is case-insensitive; empty optional values are absent",
			query: "X&doConsume=TRUE&version=&leaseId=&hw=",
			want:  base(item("X")),
		},
		{
			name:  "empty pairs are skipped, repeated identical parameters are fine",
			query: "&&X&&hw=a&hw=a&",
			want:  base(item("X")),
			tweak: func(r *engine.Request) { r.HW = "a" },
		},
		{
			name:  "duplicate items are kept",
			query: "X&X",
			want:  base(item("X"), item("X")),
		},
		{
			name:  "huge durations saturate instead of overflowing",
			query: "X&consumeDuration=9223372036854775807",
			want:  base(item("X")),
			tweak: func(r *engine.Request) { r.ConsumeDuration = time.Duration(1<<63 - 1) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseConsumeRaw(tt.query, "")
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if tt.tweak != nil {
				tt.tweak(&want)
			}
			if !reflect.DeepEqual(p.Request, want) {
				t.Fatalf("request\n got %+v\nwant %+v", p.Request, want)
			}
			for i, e := range p.Invalid {
				if e != nil {
					t.Fatalf("item %d refused: %v", i, e)
				}
			}
			if p.Release || p.ReleaseIDs != nil {
				t.Fatalf("release %v %v", p.Release, p.ReleaseIDs)
			}
			if strings.Contains(tt.query, "tenant=acme") != (p.Tenant == "acme") {
				t.Fatalf("tenant %q", p.Tenant)
			}
		})
	}
}

// Bad values are answered per item with BadArgument (HTTP 200), never as parse errors.
func TestParseBadArgument(t *testing.T) {
	tests := []struct {
		query string
		bad   []bool // per item
		why   string // part of the technical message of the first bad item
	}{
		{"X&consumeCount=-1", []bool{true}, "consumeCount must be a positive integer"},
		{"X&Y&consumeCount=abc", []bool{true, true}, `got "abc"`},
		{"X&consumeCount=0", []bool{true}, "consumeCount"},
		{"X&consumeCount=", []bool{true}, "consumeCount"},
		{"X&consumptionMode=offline", []bool{true}, "consumptionMode must be cache or checkout"},
		{"X&consumptionMode=", []bool{true}, "consumptionMode"},
		{"X&doConsume=maybe", []bool{true}, "doConsume must be true or false"},
		{"X&doConsume", []bool{true}, "doConsume"},
		{"X&consumeDuration=-5", []bool{true}, "consumeDuration"},
		{"X&consumeDuration=0", []bool{true}, "consumeDuration"},
		{"X&consumeDuration=1.5", []bool{true}, "consumeDuration"},
		{"X&queue=-1", []bool{true}, "queue"},
		{"X&queue=soon", []bool{true}, "queue"},
		{"X&hw=;name=laptop", []bool{true}, "hw has an empty id"},
		{"X&hw=a;color=red", []bool{true}, "hw accepts only the option name"},
		{"X&process=1;name=a;name=b", []bool{true}, "two different names"},
		{"X&hw=a&hw=b", []bool{true}, "hw is given twice with different values"},
		{"X&leaseId=a&leaseId=b", []bool{true}, "leaseId is given twice"},
		{"X=;leaseId=a&Y=;color=red", []bool{false, true}, `unknown item option "color=red"`},
		{"X=;leaseId&Y", []bool{true, false}, `unknown item option "leaseId"`},
		{"X=;leaseId=a;leaseId=b&Y", []bool{true, false}, "given twice"},
		{"X=true&Y", []bool{true, false}, `must follow "=;"`},
		{"iss&Y", []bool{true, false}, "reserved claim name"},
		{"Y&licenseProperties", []bool{false, true}, "reserved claim name"},
		{"X=;color=red&consumeCount=-1", []bool{true}, "consumeCount must be a positive integer, got \"-1\"; unknown item option"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			p, err := ParseConsumeRaw(tt.query, "")
			if err != nil {
				t.Fatalf("parse error %v, want BadArgument", err)
			}
			if len(p.Invalid) != len(tt.bad) || len(p.Request.Items) != len(tt.bad) {
				t.Fatalf("%d items, %d invalid, want %d", len(p.Request.Items), len(p.Invalid), len(tt.bad))
			}
			first := true
			for i, bad := range tt.bad {
				e := p.Invalid[i]
				if (e != nil) != bad {
					t.Fatalf("item %d (%s): invalid=%v, want %v", i, p.Request.Items[i].Name, e, bad)
				}
				if e == nil {
					continue
				}
				if e.Code != domain.CodeBadArgument {
					t.Fatalf("code %s", e.Code)
				}
				if want := `Access to "` + p.Request.Items[i].Name + `" denied`; e.Message != want {
					t.Fatalf("message %q, want %q", e.Message, want)
				}
				if first && !strings.Contains(e.Technical, tt.why) {
					t.Fatalf("technical %q does not say %q", e.Technical, tt.why)
				}
				first = false
			}
		})
	}
}

func TestParseRelease(t *testing.T) {
	tests := []struct {
		query string
		ids   []string
	}{
		{"release&d04551aa-7c0a-47a6-aa85-ed345e591ea9", []string{"d04551aa-7c0a-47a6-aa85-ed345e591ea9"}},
		{"release&b&a&c", []string{"b", "a", "c"}},
		{"release=true&a&a&b", []string{"a", "b"}},
		{"a&release&b", []string{"a", "b"}},
		{"release&leaseId=x", []string{"x"}},
		{"release&a%2Fb&hw=ignored&tenant=acme", []string{"a/b"}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			p, err := ParseConsumeRaw(tt.query, "")
			if err != nil {
				t.Fatal(err)
			}
			if !p.Release || !reflect.DeepEqual(p.ReleaseIDs, tt.ids) {
				t.Fatalf("release=%v ids=%q, want %q", p.Release, p.ReleaseIDs, tt.ids)
			}
			if len(p.Request.Items) != 0 {
				t.Fatalf("items %v", p.Request.Items)
			}
		})
	}
	// release=false is no release: its other keys are items.
	p, err := ParseConsumeRaw("release=false&X", "")
	if err != nil || p.Release || len(p.Request.Items) != 1 {
		t.Fatalf("release=false: %+v %v", p, err)
	}
}

func TestParseErrors(t *testing.T) {
	many := func(n int, f func(i int) string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = f(i)
		}
		return strings.Join(parts, "&")
	}
	itemN := func(i int) string {
		return "Item" + strings.Repeat("x", i%7) + string(rune('A'+i%26)) + string(rune('a'+i/26))
	}
	tests := []struct {
		name, query, body, reason string
	}{
		{"no items", "hw=abc&version=1", "", "no_items"},
		{"empty request", "", "", "no_items"},
		{"release without ids", "release&hw=x", "", "no_items"},
		{"release id with a value", "release&abc=;x", "", "malformed"},
		{"release with a value", "release=now&a", "", "malformed"},
		{"bad percent-encoding in a key", "App%zzFeature", "", "malformed"},
		{"bad percent-encoding in a value", "X&hw=%4", "", "malformed"},
		{"pair without a name", "X&=value", "", "malformed"},
		{"65 items", many(65, itemN), "", "too_many_items"},
		{"65 items across query and body", many(40, itemN), many(25, func(i int) string { return itemN(i + 40) }), "too_many_items"},
		{"65 release ids", "release&" + many(65, itemN), "", "too_many_items"},
		{"65 release ids by leaseId", "release&" + many(65, func(i int) string { return "leaseId=" + itemN(i) }), "", "too_many_items"},
		{"257-byte key", strings.Repeat("k", 257), "", "field_too_long"},
		{"257-byte decoded key", strings.Repeat("%41", 257), "", "field_too_long"},
		{"257-byte value", "X&version=" + strings.Repeat("1", 257), "", "field_too_long"},
		{"257-byte item options", "X=;leaseId=" + strings.Repeat("a", 248), "", "field_too_long"},
		{"query over 16 KiB", "X&" + strings.Repeat("&", MaxQueryLen), "", "too_large"},
		{"query and body over 16 KiB", "X", strings.Repeat("&", MaxQueryLen), "too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConsumeRaw(tt.query, tt.body)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v, want a ParseError", err)
			}
			if pe.Reason != tt.reason || pe.Status() != 400 {
				t.Fatalf("reason %q status %d (%s), want %q", pe.Reason, pe.Status(), pe.Message, tt.reason)
			}
		})
	}
}

func TestParseBoundsInclusive(t *testing.T) {
	var parts []string
	for i := range MaxItems {
		parts = append(parts, "I"+strings.Repeat("x", i))
	}
	p, err := ParseConsumeRaw(strings.Join(parts, "&"), "")
	if err != nil || len(p.Request.Items) != MaxItems {
		t.Fatalf("%d items: %v", MaxItems, err)
	}
	key := strings.Repeat("k", MaxFieldLen)
	p, err = ParseConsumeRaw(key+"&version="+strings.Repeat("1", MaxFieldLen), "")
	if err != nil || p.Request.Items[0].Name != key || len(p.Request.Version) != MaxFieldLen {
		t.Fatalf("%d-byte fields: %v", MaxFieldLen, err)
	}
	q := "X&" + strings.Repeat("&", MaxQueryLen-2)
	if _, err := ParseConsumeRaw(q, ""); err != nil {
		t.Fatalf("%d-byte query: %v", len(q), err)
	}
}

func TestParsePostBody(t *testing.T) {
	p, err := ParseConsumeRaw("A", "B=;leaseId=l&hw=h;name=n&C")
	if err != nil {
		t.Fatal(err)
	}
	want := base(item("A"), engine.ItemRequest{Name: "B", LeaseID: "l"}, item("C"))
	want.HW, want.HWName = "h", "n"
	if !reflect.DeepEqual(p.Request, want) {
		t.Fatalf("got %+v\nwant %+v", p.Request, want)
	}

	// Parsed form values: appended after the query's items, keys sorted; values keep
	// their ';' options whatever their encoding.
	form := url.Values{"Zed": {";leaseId=z"}, "Bee": {""}, "hw": {"h;name=n"}, "a=b": {""}}
	p, err = ParseConsume("First", form)
	if err != nil {
		t.Fatal(err)
	}
	want = base(item("First"), item("Bee"), engine.ItemRequest{Name: "Zed", LeaseID: "z"}, item("a=b"))
	want.HW, want.HWName = "h", "n"
	if !reflect.DeepEqual(p.Request, want) {
		t.Fatalf("got %+v\nwant %+v", p.Request, want)
	}
	big := url.Values{"X": {strings.Repeat("a", 200)}}
	for i := range 100 {
		big.Add("k"+strings.Repeat("y", i), "v")
	}
	if _, err := ParseConsume("", big); err == nil {
		t.Fatal("oversized form accepted")
	}
}

func TestEngineRequestAndMerge(t *testing.T) {
	p, err := ParseConsumeRaw("A&B=;bogus=1&C", "")
	if err != nil {
		t.Fatal(err)
	}
	req := p.EngineRequest()
	if len(req.Items) != 2 || req.Items[0].Name != "A" || req.Items[1].Name != "C" || len(p.Request.Items) != 3 {
		t.Fatalf("engine items %v (all %v)", req.Items, p.Request.Items)
	}
	lic := &domain.License{ID: "lic"}
	got, err := p.Merge([]engine.Result{{Item: "A", License: lic}, {Item: "C", License: lic}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Item != "A" || got[1].Item != "B" || got[1].Err.Code != domain.CodeBadArgument || got[2].Item != "C" || got[2].Err != nil {
		t.Fatalf("merged %+v", got)
	}
	if _, err := p.Merge([]engine.Result{{Item: "A"}}); err == nil {
		t.Fatal("too few results accepted")
	}
	if _, err := p.Merge(make([]engine.Result, 3)); err == nil {
		t.Fatal("too many results accepted")
	}

	// Every item refused: no engine call needed, Merge(nil) answers them all.
	p, _ = ParseConsumeRaw("A&B&consumeCount=-1", "")
	if n := len(p.EngineRequest().Items); n != 0 {
		t.Fatalf("%d items for the engine", n)
	}
	got, err = p.Merge(nil)
	if err != nil || len(got) != 2 || got[0].Err == nil || got[1].Err == nil {
		t.Fatalf("merged %+v %v", got, err)
	}
}
