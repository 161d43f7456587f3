package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// decide decides one item in tx and, unless dry, has its answer reported after commit. A
// queued request's licenseQuotaExceeded is not: it may still be granted, and WaitForSeat
// reports the answer the wait ends with.
func (e *Engine) decide(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, req *Request, item ItemRequest, dry, fast bool) (Result, error) {
	res, err := e.decideItem(ctx, tx, snap, req, item, dry, fast)
	if err != nil || dry || (req.Queue > 0 && res.Err != nil && res.Err.Code == domain.CodeQuotaExceeded) {
		return res, err
	}
	if ev, ok := resultEvent(req, res); ok {
		if err := e.report(ctx, tx, ev); err != nil {
			return Result{}, err
		}
	}
	return res, nil
}

func (e *Engine) decideItem(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, req *Request, item ItemRequest, dry, fast bool) (Result, error) {
	a := &attempt{
		ctx: ctx, tx: tx, e: e, req: req, item: item, tenant: req.Tenant,
		now: tx.Now(), dry: dry, leaseID: item.LeaseID, comp: e.compiledFor(req.Tenant, snap), fast: fast && !dry,
	}
	if a.leaseID == "" {
		a.leaseID = req.LeaseID
	}
	refuse := func(le *domain.LicenseError) (Result, error) { return Result{Item: item.Name, Err: le}, nil }

	if !req.Caller.Licensed {
		return refuse(domain.NewLicenseError(domain.CodeNotAuthorized, item.Name,
			fmt.Sprintf("Authorization failed for %q: the token carries no licensed scope", item.Name)))
	}
	if le := a.validate(); le != nil {
		return refuse(le)
	}
	cands := candidates(snap, req, item)
	if len(cands) == 0 {
		return refuse(domain.NewLicenseError(domain.CodeNoLicenseFound, item.Name,
			fmt.Sprintf("no license of the caller covers %q", item.Name)))
	}

	// A live lease of this session key makes the request a renewal on that license, so
	// that license goes first and its answer is final; a login token's seat goes next.
	renewOn := ""
	if req.SessionID != "" && a.leaseID != "" {
		// The session code names its lease: it is extended whatever the request's anchors
		// say now (a session that reclaimed another device's seat keeps that seat).
		l, err := findLease(ctx, tx, a.tenant, a.leaseID)
		if err != nil {
			return Result{}, err
		}
		if l != nil && l.Live(a.now) && l.User == req.Caller.User && l.Item == item.Name {
			for _, lic := range cands {
				if lic.ID == l.LicenseID {
					a.pinned, renewOn = l, lic.ID
				}
			}
		}
	}
	for _, lic := range cands {
		if renewOn != "" {
			break
		}
		seatKey, sessKey, missing := anchorKeys(lic, a.comp.model(lic).m, req, item.Name)
		if missing != "" {
			continue
		}
		l, err := a.lookupLease(lic, seatKey, sessKey)
		if err != nil {
			return Result{}, err
		}
		if !dry {
			a.seen = append(a.seen, seenLease{licenseID: lic.ID, seatKey: seatKey, sessKey: sessKey, lease: l})
		}
		if l != nil && l.Live(a.now) {
			renewOn = lic.ID
			break
		}
	}
	a.renewOn = renewOn
	ordered := make([]*domain.License, 0, len(cands))
	for _, first := range []string{renewOn, req.ReclaimLicense} {
		for _, lic := range cands {
			if first != "" && lic.ID == first && !containsLicense(ordered, lic) {
				ordered = append(ordered, lic)
			}
		}
	}
	for _, lic := range cands {
		if !containsLicense(ordered, lic) {
			ordered = append(ordered, lic)
		}
	}

	var best *outcome
	var bestOn string
	for _, lic := range ordered {
		o, err := a.try(lic)
		if err != nil {
			return Result{}, err
		}
		if o.err == nil {
			o.res.Item = item.Name
			return o.res, nil
		}
		if o.final || lic.ID == renewOn {
			return Result{Item: item.Name, Err: o.err, RefusedOn: lic.ID}, nil
		}
		if best == nil || o.step > best.step {
			best, bestOn = &o, lic.ID
		}
	}
	return Result{Item: item.Name, Err: best.err, RefusedOn: bestOn}, nil
}

func containsLicense(list []*domain.License, l *domain.License) bool {
	for _, x := range list {
		if x == l {
			return true
		}
	}
	return false
}

func (a *attempt) validate() *domain.LicenseError {
	bad := func(format string, args ...any) *domain.LicenseError {
		return domain.NewLicenseError(domain.CodeBadArgument, a.item.Name, fmt.Sprintf(format, args...))
	}
	r := a.req
	switch {
	case a.item.Name == "":
		return bad("empty licensed item name")
	case r.CountGiven && r.ConsumeCount <= 0:
		return bad("consumeCount must be a positive integer, got %d", r.ConsumeCount)
	case r.Mode != "" && r.Mode != domain.ModeCache && r.Mode != domain.ModeCheckout:
		return bad("consumptionMode must be cache or checkout, got %q", r.Mode)
	case r.ConsumeDuration < 0:
		return bad("consumeDuration must not be negative")
	case !r.Expiry.IsZero() && !r.Expiry.After(a.now):
		return bad("the session's deadline has passed")
	}
	return nil
}

func (a *attempt) mode() string {
	if a.req.Mode == "" {
		return domain.ModeCache
	}
	return a.req.Mode
}

func (a *attempt) fail(step int, code domain.ErrorCode, format string, args ...any) outcome {
	return outcome{step: step, err: domain.NewLicenseError(code, a.item.Name, fmt.Sprintf(format, args...))}
}

// static runs the checks that need no license state.
func (a *attempt) static(lic *domain.License, cm *compiledModel) *outcome {
	m, r, now := cm.m, a.req, a.now
	fail := func(step int, code domain.ErrorCode, format string, args ...any) *outcome {
		o := a.fail(step, code, format, args...)
		return &o
	}
	if !lic.Active {
		return fail(stepActive, domain.CodeLicenseNotActive, "license %s is not active", lic.ID)
	}
	if lic.ValidFrom != nil && now.Before(*lic.ValidFrom) {
		return fail(stepValidity, domain.CodeValidityNotStarted, "license %s is valid from %s", lic.ID, lic.ValidFrom.UTC().Format(time.RFC3339))
	}
	if lic.ValidUntil != nil && !now.Before(*lic.ValidUntil) {
		return fail(stepValidity, domain.CodeLicenseExpired, "license %s expired at %s", lic.ID, lic.ValidUntil.UTC().Format(time.RFC3339))
	}
	if m.Version != "" {
		if cm.versionErr != nil {
			return fail(stepVersion, domain.CodeUnallowedVersion, "license model %s has an invalid version constraint", m.Name)
		}
		if r.Version == "" {
			return fail(stepVersion, domain.CodeUnallowedVersion, "a version is required (constraint %q)", m.Version)
		}
		v, err := semverVersion(r.Version)
		if err != nil {
			return fail(stepVersion, domain.CodeUnallowedVersion, "version %q is not a semantic version", r.Version)
		}
		if !cm.constraint.Check(v) {
			return fail(stepVersion, domain.CodeUnallowedVersion, "version %s does not satisfy %q", r.Version, m.Version)
		}
	}
	if len(m.IPRanges) > 0 {
		ip := r.ClientIP.Unmap()
		ok := false
		for _, p := range cm.prefixes {
			if ip.IsValid() && p.Contains(ip) {
				ok = true
				break
			}
		}
		if !ok {
			return fail(stepIP, domain.CodeIPBlocked, "client address %s is outside the allowed ranges", r.ClientIP)
		}
	}
	if len(cm.countries) > 0 {
		var country string
		ok := false
		if a.e.opts.Geo != nil && r.ClientIP.IsValid() {
			country, ok = a.e.opts.Geo.Country(r.ClientIP.Unmap())
		}
		if !ok {
			return fail(stepCountry, domain.CodeUnresolvedGeolocation, "the location of client address %s cannot be resolved", r.ClientIP)
		}
		if !cm.countries[country] {
			return fail(stepCountry, domain.CodeGeolocationBlocked, "country %s is not allowed", country)
		}
	}
	if m.NamedSeats && !contains(lic.Assignments, r.Caller.User) {
		return fail(stepAssignment, domain.CodeAssignmentMissing, "user %q has no seat assignment on license %s", r.Caller.User, lic.ID)
	}
	if m.ReservationRequired && !contains(lic.Reservations, r.Caller.User) {
		return fail(stepReservation, domain.CodeAssignmentDenied, "user %q has no reservation on license %s", r.Caller.User, lic.ID)
	}
	return nil
}

// try runs every check of one candidate and, unless dry, grants or renews.
func (a *attempt) try(lic *domain.License) (outcome, error) {
	cm := a.comp.model(lic)
	if o := a.static(lic, cm); o != nil {
		return *o, nil
	}
	seatKey, sessKey, missing := anchorKeys(lic, cm.m, a.req, a.item.Name)
	if missing != "" {
		return a.fail(stepAnchors, domain.CodeAnchorMissing, "anchor %q required by license model %s is missing", missing, cm.m.Name), nil
	}

	if a.fast && lic.ID == a.renewOn && fastRenewable(cm.m, a.req, lic.ID) {
		return a.tryFast(lic, cm, seatKey, sessKey)
	}

	if !a.dry {
		if o, ok, err := a.refuseUnlocked(lic, cm, seatKey, sessKey); err != nil || ok {
			return o, err
		}
	}
	var st *domain.LicenseState
	var err error
	if a.dry {
		st, err = a.tx.GetLicenseState(a.ctx, a.tenant, lic.ID)
	} else {
		st, err = a.tx.LockLicense(a.ctx, a.tenant, lic.ID)
	}
	if err != nil {
		return outcome{}, err
	}
	saved := *st
	o, err := a.tryLocked(lic, cm, st, seatKey, sessKey)
	if err != nil {
		return outcome{}, err
	}
	if !a.dry {
		a.e.full.note(a.tenant, lic.ID, a.now, &o)
	}
	// Housekeeping (reaped seats) changes the state even when the answer is a refusal.
	if !a.dry && *st != saved {
		if err := a.tx.SaveLicenseState(a.ctx, st); err != nil {
			return outcome{}, err
		}
	}
	return o, nil
}

// refuseUnlocked answers, without the license lock, a request on a license this process
// refused for want of a seat within fullFor: the same decision (tryLocked) runs as a check
// on what the store holds now (the lease decide looked up under the request's key, then
// the license's state, the caller's seat and a count of the live seats), and when that is
// a refusal for want of a seat, it is the answer: the license's live seats, counted while
// the request was being decided, left none for a caller that held no live lease or seat
// there. The counter's expired rows are left to the sweeper. Anything else (a grant,
// another refusal, housekeeping to do) is decided under the lock as usual (ok false).
// Refusals of a full license thus stop taking turns on its lock with the grants and
// renewals that free and take its seats, across processes too. A serial store (one
// writer) holds no lock to spare, and gains nothing.
func (a *attempt) refuseUnlocked(lic *domain.License, cm *compiledModel, seatKey, sessKey string) (o outcome, ok bool, err error) {
	if a.tx.Serial() || !a.e.full.recent(a.tenant, lic.ID, a.now) {
		return outcome{}, false, nil
	}
	st, err := a.tx.GetLicenseState(a.ctx, a.tenant, lic.ID)
	if err != nil {
		return outcome{}, false, err
	}
	saved := *st
	a.dry = true
	o, err = a.tryLocked(lic, cm, st, seatKey, sessKey)
	a.dry = false
	if err != nil || o.err == nil || o.err.Code != domain.CodeQuotaExceeded || o.final || *st != saved {
		return outcome{}, false, err
	}
	a.e.full.note(a.tenant, lic.ID, a.now, &o)
	return o, true, nil
}

func (a *attempt) tryLocked(lic *domain.License, cm *compiledModel, st *domain.LicenseState, seatKey, sessKey string) (outcome, error) {
	if p := a.pinned; p != nil && p.LicenseID == lic.ID {
		seatKey, sessKey = p.SeatKey, p.SessionKey
	} else if a.req.ReclaimSeat != "" && a.req.ReclaimLicense == lic.ID {
		ok, err := reclaimable(a.ctx, a.tx, a.tenant, lic.ID, a.req.ReclaimSeat, a.req.Caller.User, a.now)
		if err != nil {
			return outcome{}, err
		}
		if ok {
			seatKey = a.req.ReclaimSeat
			sessKey = SessionKey(seatKey, a.item.Name, a.req.Process)
		}
	}
	var cur *domain.Lease
	var err error
	if l, ok := a.seenLease(lic.ID, seatKey, sessKey); ok && a.dry {
		cur = l // a check without the lock (refuseUnlocked) takes what decide read
	} else if a.dry {
		cur, err = leaseBySessionKey(a.ctx, a.tx, a.tenant, lic.ID, seatKey, sessKey)
	} else {
		// Locked, so that a renewal under the lease lock alone (tryFast) and this decision
		// take turns on it.
		cur, err = a.lockLease(lic.ID, seatKey, sessKey)
	}
	if err != nil {
		return outcome{}, err
	}
	if cur != nil && cur.Live(a.now) {
		o, err := a.renew(lic, cm, st, cur)
		o.final = true
		return o, err
	}
	if cur != nil && !a.dry {
		// An expired lease left by no sweep yet: it counts for nothing, and its session
		// key, which has one lease at most (a unique key in the store), is needed for the
		// new lease.
		if err := a.e.expireTx(a.ctx, a.tx, cur, a.now); err != nil {
			return outcome{}, err
		}
		if err := a.e.report(a.ctx, a.tx, endEvent(cur, domain.EventExpire)); err != nil {
			return outcome{}, err
		}
	}
	return a.grant(lic, cm, st, seatKey, sessKey)
}

// fastRenewable reports whether a renewal on license licenseID of model m may run under
// its lease's row lock instead of the license lock: nothing it does may read or change a
// license counter (use count, use time), take a hardware lock, or take another seat.
func fastRenewable(m *domain.LicenseModel, r *Request, licenseID string) bool {
	return m.MaxUseCount == 0 && m.MaxUseTime == 0 && !m.HWLock && !r.CountGiven &&
		(r.ReclaimSeat == "" || r.ReclaimLicense != licenseID)
}

// tryFast renews the live lease of the request's session key holding only that lease's
// row lock (and then its seat's, see store.Tx.GetSeat), not the license lock: on
// PostgreSQL, renewals on one license then run side by side. docs/DESIGN.md ("Renewals
// without the license lock") gives the reasoning. Anything that would need the license
// lock (the lease is gone or expired, its seat must be rebuilt, use time to refund) rolls
// the attempt back with errSlowPath, so that it runs again under the license lock; no
// other lock is ever taken after a lease's.
func (a *attempt) tryFast(lic *domain.License, cm *compiledModel, seatKey, sessKey string) (outcome, error) {
	if p := a.pinned; p != nil && p.LicenseID == lic.ID {
		seatKey, sessKey = p.SeatKey, p.SessionKey
	}
	cur, err := a.lockLease(lic.ID, seatKey, sessKey)
	if err != nil {
		return outcome{}, err
	}
	if cur == nil || !cur.Live(a.now) || cur.UseTimeReserved != 0 {
		return outcome{}, errSlowPath
	}
	st := domain.LicenseState{Tenant: a.tenant, LicenseID: lic.ID}
	saved := st
	o, err := a.renew(lic, cm, &st, cur)
	if err != nil {
		return outcome{}, err
	}
	if st != saved {
		return outcome{}, errSlowPath
	}
	o.final = true
	return o, nil
}

// lockLease is the package's lockLease, except that on a serial store what decide saw
// under the key (a.seen) answers for itself, once: until this attempt locks a lease of the
// license it writes none there (only the license lock, LockLicense, may have come in
// between, and trying another license writes nothing to this one's leases), and no other
// writer runs.
func (a *attempt) lockLease(licenseID, seatKey, sessKey string) (*domain.Lease, error) {
	if a.tx.Serial() {
		for i, s := range a.seen {
			if s.licenseID == licenseID {
				a.seen = append(a.seen[:i], a.seen[i+1:]...)
				if s.seatKey == seatKey && s.sessKey == sessKey {
					return s.lease, nil
				}
				break
			}
		}
	}
	return lockLease(a.ctx, a.tx, a.tenant, licenseID, seatKey, sessKey)
}

// lookupLease finds the lease of the request's key on a candidate license. When a live
// one there would be renewed under its own lock (tryFast), on a store whose writers run in
// parallel, the lookup takes that lock at once (LockLiveLease: with the seat, in one round
// trip), so the renewal that follows reads nothing again; it locks nothing when it finds no
// live lease, and an expired one is left for the decision under the license lock to find.
func (a *attempt) lookupLease(lic *domain.License, seatKey, sessKey string) (*domain.Lease, error) {
	if a.fast && !a.tx.Serial() && fastRenewable(a.comp.model(lic).m, a.req, lic.ID) {
		l, err := a.tx.LockLiveLease(a.ctx, a.tenant, lic.ID, seatKey, sessKey, a.now)
		if notFound(err) {
			return nil, nil
		}
		return l, err
	}
	return leaseBySessionKey(a.ctx, a.tx, a.tenant, lic.ID, seatKey, sessKey)
}

// seenLease is what decide read under the key of license licenseID, if it did.
func (a *attempt) seenLease(licenseID, seatKey, sessKey string) (*domain.Lease, bool) {
	for _, s := range a.seen {
		if s.licenseID == licenseID && s.seatKey == seatKey && s.sessKey == sessKey {
			return s.lease, true
		}
	}
	return nil, false
}

// leaseLength is the duration a grant or renewal may have, before max_use_time.
func (a *attempt) leaseLength(lic *domain.License, m *domain.LicenseModel) time.Duration {
	var d time.Duration
	if !a.req.Expiry.IsZero() {
		d = a.req.Expiry.Sub(a.now)
	} else {
		limit, fallback := m.OnlineLease.D(), 15*time.Minute
		if a.mode() == domain.ModeCheckout {
			limit, fallback = m.OfflineLease.D(), 720*time.Hour
		}
		d = a.req.ConsumeDuration
		if d == 0 || (limit > 0 && d > limit) {
			d = limit
		}
		// An explicit 0s maximum means "no model maximum"; a lease still needs an end.
		if d == 0 {
			d = fallback
		}
	}
	if lic.ValidUntil != nil {
		if rest := lic.ValidUntil.Sub(a.now); rest < d {
			d = rest
		}
	}
	return d
}

func semverVersion(v string) (*semver.Version, error) { return semver.NewVersion(v) }

func refreshAt(m *domain.LicenseModel, iat, exp time.Time) time.Time {
	r := m.RefreshRatio
	if r < 0 || r > 1 {
		r = 0.8
	}
	return ms(iat.Add(time.Duration(r * float64(exp.Sub(iat)))))
}

// ms truncates to the millisecond, the precision every store keeps, so that a lease read
// back (a chain_grace retry) answers exactly what its grant answered.
func ms(t time.Time) time.Time { return t.Truncate(time.Millisecond) }
