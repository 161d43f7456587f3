package engine_test

import (
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
)

// TestErrorCodes produces every code of the 10Duke table by the situation it describes.
func TestErrorCodes(t *testing.T) {
	tests := []struct {
		name  string
		geo   bool
		seats int
		model func(m *domain.LicenseModel)
		lic   func(l *domain.License)
		// before runs first (and must succeed); then r is refused with want.
		before func(h *harness)
		r      engine.Request
		want   domain.ErrorCode
	}{
		{
			name:  "anchorLockedToAnotherLicense: hw already consumed a license of the model",
			model: func(m *domain.LicenseModel) { m.HWLock = true },
			before: func(h *harness) {
				h.license(license("L2", "m", 5, nil))
				h.grant(req("alice", "FeatA", hw("H1"), onLicense("L2")))
			},
			r:    req("bob", "FeatA", hw("H1"), onLicense("L1")),
			want: domain.CodeAnchorLocked,
		},
		{
			name: "licenseAnchorMissing: hw_lock needs hw",
			model: func(m *domain.LicenseModel) {
				m.HWLock = true
			},
			r:    req("alice", "FeatA"),
			want: domain.CodeAnchorMissing,
		},
		{name: "BadArgument: negative consumeCount", r: req("alice", "FeatA", count(-1)), want: domain.CodeBadArgument},
		{name: "BadArgument: zero consumeCount", r: req("alice", "FeatA", count(0)), want: domain.CodeBadArgument},
		{
			name: "BadArgument: unknown consumptionMode",
			r:    req("alice", "FeatA", func(r *engine.Request) { r.Mode = "forever" }),
			want: domain.CodeBadArgument,
		},
		{
			name: "BadArgument: negative consumeDuration",
			r:    req("alice", "FeatA", func(r *engine.Request) { r.ConsumeDuration = -time.Second }),
			want: domain.CodeBadArgument,
		},
		{
			name:  "clientGeolocationBlocked",
			geo:   true,
			model: func(m *domain.LicenseModel) { m.Countries = []string{"US"} },
			r:     req("alice", "FeatA", ip("10.1.2.3")),
			want:  domain.CodeGeolocationBlocked,
		},
		{
			name:  "clientIpAddressBlocked",
			model: func(m *domain.LicenseModel) { m.IPRanges = []string{"127.0.0.0/8", "10.0.0.0/8"} },
			r:     req("alice", "FeatA", ip("192.168.1.1")),
			want:  domain.CodeIPBlocked,
		},
		{
			name: "consumptionLimitExceed",
			model: func(m *domain.LicenseModel) {
				m.Anchors = []string{"user", "process"}
				m.ConsumptionLimit = 1
			},
			before: func(h *harness) { h.grant(req("alice", "FeatA", process("p1"))) },
			r:      req("alice", "FeatA", process("p2")),
			want:   domain.CodeConsumptionLimit,
		},
		{
			name:   "leaseIdNotMatching: renewal without the lease id",
			model:  func(m *domain.LicenseModel) { m.LeaseChaining = true },
			before: func(h *harness) { h.grant(req("alice", "FeatA")) },
			r:      req("alice", "FeatA"),
			want:   domain.CodeLeaseIDNotMatching,
		},
		{
			name:   "leaseIdNotMatching: renewal naming an id that never existed",
			model:  func(m *domain.LicenseModel) { m.LeaseChaining = true },
			before: func(h *harness) { h.grant(req("alice", "FeatA")) },
			r:      req("alice", "FeatA", leaseID("d04551aa-7c0a-47a6-aa85-ed345e591ea9")),
			want:   domain.CodeLeaseIDNotMatching,
		},
		{
			name:  "licenseAnchorMissing",
			model: func(m *domain.LicenseModel) { m.Anchors = []string{"user", "hw"} },
			r:     req("alice", "FeatA"),
			want:  domain.CodeAnchorMissing,
		},
		{
			name:  "licenseAssignmentDenied: reservation required",
			model: func(m *domain.LicenseModel) { m.ReservationRequired = true },
			lic:   func(l *domain.License) { l.Reservations = []string{"bob"} },
			r:     req("alice", "FeatA"),
			want:  domain.CodeAssignmentDenied,
		},
		{
			name:  "licenseAssignmentMissing: named seats",
			model: func(m *domain.LicenseModel) { m.NamedSeats = true },
			lic:   func(l *domain.License) { l.Assignments = []string{"bob"} },
			r:     req("alice", "FeatA"),
			want:  domain.CodeAssignmentMissing,
		},
		{
			name: "licenseExpired",
			lic:  func(l *domain.License) { past := t0.Add(-time.Hour); l.ValidUntil = &past },
			r:    req("alice", "FeatA"),
			want: domain.CodeLicenseExpired,
		},
		{
			name: "licenseNotActive",
			lic:  func(l *domain.License) { l.Active = false },
			r:    req("alice", "FeatA"),
			want: domain.CodeLicenseNotActive,
		},
		{
			name:   "licenseQuotaExceeded",
			seats:  1,
			before: func(h *harness) { h.grant(req("bob", "FeatA")) },
			r:      req("alice", "FeatA"),
			want:   domain.CodeQuotaExceeded,
		},
		{
			name: "licenseValidityNotStarted",
			lic:  func(l *domain.License) { future := t0.Add(time.Hour); l.ValidFrom = &future },
			r:    req("alice", "FeatA"),
			want: domain.CodeValidityNotStarted,
		},
		{
			name:   "maxAggregateUseTimeExceed",
			model:  func(m *domain.LicenseModel) { m.MaxUseTime = domain.Duration(10 * time.Minute) },
			before: func(h *harness) { h.grant(req("bob", "FeatA")) },
			r:      req("alice", "FeatA"),
			want:   domain.CodeMaxUseTime,
		},
		{
			name:   "maxConcurrentSessionsExceed",
			model:  func(m *domain.LicenseModel) { m.SessionsPerSeat = 1 },
			before: func(h *harness) { h.grant(req("alice", "FeatA", process("p1"))) },
			r:      req("alice", "FeatA", process("p2")),
			want:   domain.CodeMaxSessions,
		},
		{
			name:  "maxUseCountExceed",
			model: func(m *domain.LicenseModel) { m.MaxUseCount = 2 },
			r:     req("alice", "FeatA", count(3)),
			want:  domain.CodeMaxUseCount,
		},
		{
			name:  "MissingArguments: count required",
			model: func(m *domain.LicenseModel) { m.CountRequired = true },
			r:     req("alice", "FeatA"),
			want:  domain.CodeMissingArguments,
		},
		{name: "noLicenseFound: no license covers the item", r: req("alice", "Other"), want: domain.CodeNoLicenseFound},
		{
			name: "noLicenseFound: another owner's license is invisible",
			lic:  func(l *domain.License) { l.Owner = domain.Owner{Organization: "org-2"} },
			r:    req("alice", "FeatA"),
			want: domain.CodeNoLicenseFound,
		},
		{
			name: "noLicenseFound: the owner filter excludes every license",
			r:    req("alice", "FeatA", func(r *engine.Request) { r.Filter.EntitlementID = "ent-9" }),
			want: domain.CodeNoLicenseFound,
		},
		{
			name: "notAuthorized: free scopes only",
			r:    req("alice", "FeatA", func(r *engine.Request) { r.Caller.Licensed = false }),
			want: domain.CodeNotAuthorized,
		},
		{
			name:  "unallowedClientVersion: outside the constraint",
			model: func(m *domain.LicenseModel) { m.Version = ">=1.0.0 <2.0.0" },
			r:     req("alice", "FeatA", version("2.1.0")),
			want:  domain.CodeUnallowedVersion,
		},
		{
			name:  "unallowedClientVersion: missing",
			model: func(m *domain.LicenseModel) { m.Version = ">=1.0.0 <2.0.0" },
			r:     req("alice", "FeatA"),
			want:  domain.CodeUnallowedVersion,
		},
		{
			name:  "unallowedClientVersion: unparsable",
			model: func(m *domain.LicenseModel) { m.Version = ">=1.0.0 <2.0.0" },
			r:     req("alice", "FeatA", version("one.two")),
			want:  domain.CodeUnallowedVersion,
		},
		{
			name:  "unresolvedGeolocation: address not in the database",
			geo:   true,
			model: func(m *domain.LicenseModel) { m.Countries = []string{"US"} },
			r:     req("alice", "FeatA", ip("8.8.8.8")),
			want:  domain.CodeUnresolvedGeolocation,
		},
		{
			name:  "unresolvedGeolocation: no database",
			model: func(m *domain.LicenseModel) { m.Countries = []string{"US"} },
			r:     req("alice", "FeatA"),
			want:  domain.CodeUnresolvedGeolocation,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []option
			if tt.geo {
				opts = append(opts, withGeo(t))
			}
			h := newHarness(t, opts...)
			seats := tt.seats
			if seats == 0 {
				seats = 5
			}
			h.model(model("m", tt.model))
			h.license(license("L1", "m", seats, tt.lic))
			if tt.before != nil {
				tt.before(h)
			}
			le := h.refuse(tt.r, tt.want)
			if le.Message == "" || le.Technical == "" {
				t.Errorf("error without message or technical detail: %+v", le)
			}
			// A check (doConsume=false) gets the same error.
			c := tt.r
			c.DoConsume = false
			h.refuse(c, tt.want)
		})
	}
}

// TestPassingConstraints shows the constraints of TestErrorCodes let the right requests through.
func TestPassingConstraints(t *testing.T) {
	h := newHarness(t, withGeo(t))
	h.setup(5, func(m *domain.LicenseModel) {
		m.Version = ">=1.0.0 <2.0.0"
		m.IPRanges = []string{"127.0.0.0/8", "10.0.0.0/8"}
		m.Countries = []string{"us", "FI"}
		m.HWLock = true
		m.NamedSeats = true
		m.ReservationRequired = true
		m.Anchors = []string{"user", "hw"}
		m.SessionsPerSeat = 3 // one seat, one session per item
	})
	h.license(license("L1", "m", 5, func(l *domain.License) {
		l.Assignments = []string{"alice"}
		l.Reservations = []string{"alice"}
	}))
	h.grant(req("alice", "FeatA", version("1.6.14"), hw("H1")))
	h.grant(req("alice", "App", version("1.0.0"), hw("H1"), ip("10.9.8.7")))
	h.grant(req("alice", "FeatB", version("v1.2"), hw("H1"), ip("::ffff:127.0.0.1")))
}

func TestReleaseErrors(t *testing.T) {
	h := newHarness(t)
	h.setup(5, nil)
	h.model(model("norelease", func(m *domain.LicenseModel) { m.AllowRelease = false }))
	h.put(tenant, domain.KindProduct, "Tool", domain.Product{Name: "Tool"})
	h.license(license("L2", "norelease", 5, func(l *domain.License) { l.Product = "Tool" }))

	mine := h.grant(req("alice", "FeatA"))
	bobs := h.grant(req("bob", "FeatA"))
	stuck := h.grant(req("alice", "Tool"))

	res := h.release("alice", "no-such-lease", bobs.ID, stuck.ID, mine.ID, mine.ID)
	want := []domain.ErrorCode{domain.CodeNoConsumptionFoundByID, domain.CodeNoConsumptionFoundByID,
		domain.CodeReleaseNotAllowed, "", domain.CodeNoConsumptionFoundByID}
	for i, r := range res {
		got := domain.ErrorCode("")
		if r.Err != nil {
			got = r.Err.Code
		}
		if got != want[i] || r.ID == "" {
			t.Errorf("release %d (%s): %q, want %q", i, r.ID, got, want[i])
		}
	}
	// Bob's lease was not touched: he can still renew it.
	if l := h.grant(req("bob", "FeatA")); l.Root != bobs.Root {
		t.Errorf("bob's lease was replaced")
	}
	// Another tenant never sees the lease.
	other, err := h.eng.Release(h.ctx, "other", caller("bob"), []string{bobs.ID})
	if err == nil && (len(other) != 1 || other[0].Err == nil) {
		t.Errorf("release from another tenant: %+v", other)
	}
}
