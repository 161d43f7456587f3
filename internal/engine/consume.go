package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/google/uuid"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

// The checks of one candidate license, in the order SPEC 3.1 fixes. A candidate refused at
// step s passed s checks; when no candidate grants, the refusal of the one that got furthest
// is reported (the first in license id order among equals).
const (
	stepActive = iota
	stepValidity
	stepVersion
	stepIP
	stepCountry
	stepAssignment
	stepReservation
	stepAnchors
	stepHWLock
	stepUseCount
	stepUseTime
	stepConsumptionLimit
	stepSessions
	stepSeats
)

// Consume decides every item of req, in request order, each in its own transaction. The
// error is only for store failures (and for ctx ending while a queued request waited);
// refusals are Results with Err set.
//
// With req.Queue > 0, ctx must be the client's request context (r.Context() in HTTP): when
// it ends after a queued request was granted, the grants of this request are released
// without linger and ctx's error is returned, so a client that went away holds no seat.
func (e *Engine) Consume(ctx context.Context, req Request) ([]Result, error) {
	snap, err := e.cat.Get(ctx, req.Tenant)
	if err != nil {
		return nil, err
	}
	out := make([]Result, 0, len(req.Items))
	for _, item := range req.Items {
		r, err := e.consumeItem(ctx, snap, &req, item)
		if err == nil && req.Queue > 0 && ctx.Err() != nil {
			out = append(out, r)
			err = ctx.Err()
		}
		if err != nil {
			if req.Queue > 0 && ctx.Err() != nil {
				e.abandon(ctx, req.Tenant, out)
			}
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (e *Engine) consumeItem(ctx context.Context, snap *catalog.Snapshot, req *Request, item ItemRequest) (Result, error) {
	if !req.DoConsume {
		var res Result
		err := e.st.View(ctx, func(tx store.Tx) error {
			var err error
			res, err = e.decide(ctx, tx, snap, req, item, true, false)
			return err
		})
		return res, err
	}
	res, err := e.consumeOnce(ctx, snap, req, item)
	if err != nil {
		return Result{}, err
	}
	if req.Queue > 0 && res.Err != nil && res.Err.Code == domain.CodeQuotaExceeded {
		return e.WaitForSeat(ctx, *req, item, res, func(ctx context.Context) (Result, error) {
			snap, err := e.cat.Get(ctx, req.Tenant)
			if err != nil {
				return Result{}, err
			}
			return e.consumeOnce(ctx, snap, req, item)
		})
	}
	return res, nil
}

func (e *Engine) consumeOnce(ctx context.Context, snap *catalog.Snapshot, req *Request, item ItemRequest) (Result, error) {
	var res Result
	// The first try may renew under the lease's lock alone; when that turns out to need
	// the license lock it rolls back (errSlowPath) and the decision runs again under it.
	for _, fast := range []bool{true, false} {
		err := e.st.Update(ctx, func(tx store.Tx) error {
			var err error
			res, err = e.decide(ctx, tx, snap, req, item, !req.DoConsume, fast)
			return err
		})
		if !errors.Is(err, errSlowPath) {
			return res, err
		}
	}
	return Result{}, errors.New("engine: a renewal asked for the license lock while holding it")
}

// errSlowPath rolls back a renewal tried under its lease lock alone that needs the
// license lock after all (a counter or the seat count would change).
var errSlowPath = errors.New("engine: renewal needs the license lock")

// abandon releases, without linger, the leases this request created (not the ones it
// renewed: their holder still has the previous token).
func (e *Engine) abandon(ctx context.Context, tenant string, results []Result) {
	ctx = context.WithoutCancel(ctx)
	snap, err := e.cat.Get(ctx, tenant)
	if err != nil {
		e.log.Error("releasing the grants of an abandoned request", "tenant", tenant, "err", err)
		return
	}
	for _, r := range results {
		if r.Lease == nil || r.Renewed {
			continue
		}
		l := r.Lease
		err := e.st.Update(ctx, func(tx store.Tx) error {
			_, err := e.ReleaseTx(ctx, tx, snap, l, false)
			return err
		})
		if err != nil {
			e.log.Error("releasing the grant of an abandoned request", "tenant", tenant, "lease", l.ID, "err", err)
			continue
		}
		e.q.wake(tenant, l.LicenseID)
	}
}

// ConsumeTx decides one item inside tx, so that a caller can take a seat in the same
// transaction that creates what holds it (a session: see TakeSessionSeat). It writes
// nothing when the answer is a refusal other than the housekeeping of expired rows. The
// result is reported to the observers once tx commits. The error is only for store
// failures.
func (e *Engine) ConsumeTx(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, req Request, item ItemRequest) (Result, error) {
	// The caller's transaction cannot be rolled back and run again, so it always takes the
	// license lock.
	return e.decide(ctx, tx, snap, &req, item, !req.DoConsume, false)
}

// attempt is one decision: one item of one request, inside one transaction.
type attempt struct {
	ctx     context.Context
	tx      store.Tx
	e       *Engine
	req     *Request
	item    ItemRequest
	tenant  string
	now     time.Time
	dry     bool // check only: a View, nothing written
	leaseID string
	comp    *compiled
	pinned  *domain.Lease // a session's own lease, named by Request.LeaseID
	// fast allows renewing a live lease under its own row lock instead of the license's
	// (see tryFast); renewOn is the license where a live lease of the request was seen.
	fast    bool
	renewOn string
	// seen holds what decide found under each session key it looked up (a lease, or none),
	// kept when tx is Serial: no other writer can change it before this attempt's
	// lockLease of that key, which then takes it instead of reading it again. A new seat
	// thus reads its session key once, not twice.
	seen []seenLease
}

// seenLease is what a session key of a license held when decide looked: Lease nil for none.
type seenLease struct {
	licenseID, seatKey, sessKey string
	lease                       *domain.Lease
}

// outcome of trying one candidate license.
type outcome struct {
	res   Result
	err   *domain.LicenseError
	step  int
	final bool // a refused renewal: no other candidate may be tried
}

// decide decides one item in tx and, unless dry, has its answer reported after commit. A
// queued request's licenseQuotaExceeded is not: it may still be granted, and WaitForSeat
// reports the answer the wait ends with.
func (e *Engine) decide(ctx context.Context, tx store.Tx, snap *catalog.Snapshot, req *Request, item ItemRequest, dry, fast bool) (Result, error) {
	res, err := e.decideItem(ctx, tx, snap, req, item, dry, fast)
	if err != nil || dry || (req.Queue > 0 && res.Err != nil && res.Err.Code == domain.CodeQuotaExceeded) {
		return res, err
	}
	if ev, ok := resultEvent(req.Tenant, res); ok {
		e.report(tx, ev)
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
		l, err := leaseBySessionKey(ctx, tx, a.tenant, lic.ID, seatKey, sessKey)
		if err != nil {
			return Result{}, err
		}
		if !dry && tx.Serial() {
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
	// Housekeeping (reaped seats) changes the state even when the answer is a refusal.
	if !a.dry && *st != saved {
		if err := a.tx.SaveLicenseState(a.ctx, st); err != nil {
			return outcome{}, err
		}
	}
	return o, nil
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
	if a.dry {
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
		a.e.report(a.tx, endEvent(cur, domain.EventExpire))
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

// lockLease is the package's lockLease, except that what decide saw under the key (a.seen)
// answers for itself, once: until this attempt locks a lease of the license it writes none
// there (only the license lock, LockLicense, may have come in between, and trying another
// license writes nothing to this one's leases), and no other writer runs.
func (a *attempt) lockLease(licenseID, seatKey, sessKey string) (*domain.Lease, error) {
	for i, s := range a.seen {
		if s.licenseID == licenseID {
			a.seen = append(a.seen[:i], a.seen[i+1:]...)
			if s.seatKey == seatKey && s.sessKey == sessKey {
				return s.lease, nil
			}
			break
		}
	}
	return lockLease(a.ctx, a.tx, a.tenant, licenseID, seatKey, sessKey)
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

func (a *attempt) grant(lic *domain.License, cm *compiledModel, st *domain.LicenseState, seatKey, sessKey string) (outcome, error) {
	m, r, now := cm.m, a.req, a.now
	ctx, tx := a.ctx, a.tx

	if m.HWLock {
		if r.HW == "" {
			return a.fail(stepHWLock, domain.CodeAnchorMissing, "license model %s locks licenses to hardware: hw is required", m.Name), nil
		}
		owner, err := tx.GetHWLock(ctx, a.tenant, m.Name, r.HW)
		if err != nil {
			return outcome{}, err
		}
		if owner != "" && owner != lic.ID {
			return a.fail(stepHWLock, domain.CodeAnchorLocked, "hw %s is locked to another license of model %s", r.HW, m.Name), nil
		}
	}

	// A session's seat draws on no counter: the session, not a client, decides its length.
	counted := r.SessionID == ""
	var draw int64
	if counted {
		if m.CountRequired && !r.CountGiven {
			return a.fail(stepUseCount, domain.CodeMissingArguments, "license model %s requires consumeCount", m.Name), nil
		}
		draw = 1
		if r.CountGiven {
			draw = r.ConsumeCount
		}
		if m.MaxUseCount > 0 && st.UseCount+draw > m.MaxUseCount {
			return a.fail(stepUseCount, domain.CodeMaxUseCount, "use count %d + %d exceeds %d", st.UseCount, draw, m.MaxUseCount), nil
		}
	}

	d := a.leaseLength(lic, m)
	var reserve time.Duration
	if counted && m.MaxUseTime > 0 {
		left := m.MaxUseTime.D() - st.UseTime
		if left <= 0 {
			return a.fail(stepUseTime, domain.CodeMaxUseTime, "the license's use time of %s is spent", m.MaxUseTime.D()), nil
		}
		d = min(d, left)
		reserve = d
	}

	if m.ConsumptionLimit > 0 {
		n, err := tx.CountLiveLeasesByHolder(ctx, a.tenant, lic.ID, r.Caller.User, "", now)
		if err != nil {
			return outcome{}, err
		}
		if n >= m.ConsumptionLimit {
			return a.fail(stepConsumptionLimit, domain.CodeConsumptionLimit, "%q holds %d leases on license %s (limit %d)", r.Caller.User, n, lic.ID, m.ConsumptionLimit), nil
		}
	}

	seat, err := getSeat(ctx, tx, a.tenant, lic.ID, seatKey)
	if err != nil {
		return outcome{}, err
	}
	if seat != nil && !seat.HeldUntil.After(now) {
		// Our own seat, expired: it counts for nothing, so taking it is taking a new seat.
		if !a.dry {
			if _, err := tx.DeleteSeat(ctx, a.tenant, lic.ID, seatKey); err != nil {
				return outcome{}, err
			}
		}
		st.SeatsHeld = max(0, st.SeatsHeld-1)
		seat = nil
	}
	overage := false
	if seat != nil {
		if m.SessionsPerSeat > 0 {
			n, err := tx.CountLiveLeasesOnSeat(ctx, a.tenant, lic.ID, seatKey, now)
			if err != nil {
				return outcome{}, err
			}
			if n >= m.SessionsPerSeat {
				return a.fail(stepSessions, domain.CodeMaxSessions, "the seat holds %d sessions (limit %d)", n, m.SessionsPerSeat), nil
			}
		}
		overage = seat.Overage
	} else {
		limit := seatCap(lic, m)
		// Reserved users not holding a seat keep one free each.
		need := 0
		if len(lic.Reservations) > 0 && !contains(lic.Reservations, r.Caller.User) {
			holding, err := tx.UsersHoldingSeats(ctx, a.tenant, lic.ID, lic.Reservations, now)
			if err != nil {
				return outcome{}, err
			}
			seen := map[string]bool{}
			for _, u := range lic.Reservations {
				if !seen[u] && !holding[u] {
					need++
				}
				seen[u] = true
			}
		}
		held := st.SeatsHeld
		if held+need >= lic.Seats {
			// The counter includes expired rows: make it exact before refusing or flagging.
			if a.dry {
				if held, err = tx.CountLiveSeats(ctx, a.tenant, lic.ID, now); err != nil {
					return outcome{}, err
				}
			} else {
				n, err := tx.ReapSeats(ctx, a.tenant, lic.ID, now)
				if err != nil {
					return outcome{}, err
				}
				st.SeatsHeld = max(0, st.SeatsHeld-n)
				held = st.SeatsHeld
			}
		}
		if held+need >= limit {
			tech := fmt.Sprintf("all %d seats of license %s are held", limit, lic.ID)
			if need > 0 {
				tech = fmt.Sprintf("%d of %d seats of license %s are held and %d are reserved", held, limit, lic.ID, need)
			}
			return a.fail(stepSeats, domain.CodeQuotaExceeded, "%s", tech), nil
		}
		overage = held+1 > lic.Seats
	}

	if a.dry {
		return outcome{res: Result{License: lic}}, nil
	}

	if m.HWLock {
		owner, err := tx.LockHW(ctx, a.tenant, m.Name, r.HW, lic.ID)
		if err != nil {
			return outcome{}, err
		}
		if owner != lic.ID {
			return a.fail(stepHWLock, domain.CodeAnchorLocked, "hw %s is locked to another license of model %s", r.HW, m.Name), nil
		}
	}

	exp := ms(now.Add(d))
	// No query for the seat's other leases: a seat's HeldUntil already covers every live
	// lease on it (the seat invariant), and a missing or expired seat has none.
	if seat == nil {
		seat = &domain.Seat{Tenant: a.tenant, LicenseID: lic.ID, Key: seatKey, User: r.Caller.User, Overage: overage}
		st.SeatsHeld++
	}
	// A reclaimed lingering seat keeps at least its linger: it was counted until then anyway.
	seat.HeldUntil = maxTime(exp, seat.HeldUntil)
	seat.Lingering = false
	if err := tx.PutSeat(ctx, seat); err != nil {
		return outcome{}, err
	}
	st.UseCount += draw
	st.UseTime += reserve

	// Time-ordered (UUIDv7): a new lease's key lands at the end of the leases table, on a
	// page the last commit already wrote, rather than on a random one.
	id := uuid.Must(uuid.NewV7()).String()
	lease := &domain.Lease{
		ID: id, Root: id, Tenant: a.tenant, LicenseID: lic.ID, Item: a.item.Name,
		SeatKey: seatKey, SessionKey: sessKey,
		User: r.Caller.User, Client: r.Caller.Client,
		HW: r.HW, HWName: r.HWName, Process: r.Process, ProcessName: r.ProcessName, Version: r.Version,
		Mode: a.mode(), IssuedAt: now, RenewedAt: now, ExpiresAt: exp, RefreshAt: refreshAt(m, now, exp),
		Overage: overage, UseTimeReserved: reserve, SessionID: r.SessionID, ChainKey: domain.NewChainKey(),
	}
	if err := tx.InsertLease(ctx, lease); err != nil {
		return outcome{}, err
	}
	if err := tx.AppendUsage(ctx, []domain.UsageEvent{usage(lease, now, domain.EventGrant, d)}); err != nil {
		return outcome{}, err
	}
	return outcome{res: Result{Lease: lease, License: lic}}, nil
}

// renew extends the live lease cur of this session key. Every refusal leaves it untouched.
func (a *attempt) renew(lic *domain.License, cm *compiledModel, st *domain.LicenseState, cur *domain.Lease) (outcome, error) {
	m, r, now := cm.m, a.req, a.now
	ctx, tx := a.ctx, a.tx

	// Session seats are renewed by the session code, which is trusted and holds no lease id.
	if m.LeaseChaining && r.SessionID == "" {
		switch {
		case a.leaseID == cur.ID:
		case a.leaseID != "" && a.leaseID == cur.PrevID && now.Before(cur.PrevUntil):
			// A retry of a renewal whose answer was lost: the same answer again.
			res := Result{License: lic, Renewed: true}
			if !a.dry {
				res.Lease = cur
			}
			return outcome{res: res}, nil
		case a.leaseID == "":
			return a.fail(stepAnchors, domain.CodeLeaseIDNotMatching, "license model %s requires the current leaseId to renew", m.Name), nil
		default:
			return a.fail(stepAnchors, domain.CodeLeaseIDNotMatching, "leaseId %s is not the current lease of this session", a.leaseID), nil
		}
	}

	if m.HWLock && cur.HW != "" {
		owner, err := tx.GetHWLock(ctx, a.tenant, m.Name, cur.HW)
		if err != nil {
			return outcome{}, err
		}
		if owner != "" && owner != lic.ID {
			return a.fail(stepHWLock, domain.CodeAnchorLocked, "hw %s is locked to another license of model %s", cur.HW, m.Name), nil
		}
	}

	// A renewal draws use count only when it says so: the lease was paid for when granted.
	counted := r.SessionID == ""
	var draw int64
	if counted && r.CountGiven {
		draw = r.ConsumeCount
	}
	if m.MaxUseCount > 0 && st.UseCount+draw > m.MaxUseCount {
		return a.fail(stepUseCount, domain.CodeMaxUseCount, "use count %d + %d exceeds %d", st.UseCount, draw, m.MaxUseCount), nil
	}

	exp := ms(now.Add(a.leaseLength(lic, m)))
	if (!r.Expiry.IsZero() || cur.SessionID != "") && cur.ExpiresAt.After(exp) {
		// Sessions sharing one lease: it lasts as long as the longest of them, and an
		// /authz renewal of a session's lease never cuts the session short.
		exp = cur.ExpiresAt
	}
	ext := exp.Sub(cur.ExpiresAt)
	if counted && m.MaxUseTime > 0 && ext > 0 {
		left := m.MaxUseTime.D() - st.UseTime
		if left <= 0 {
			return a.fail(stepUseTime, domain.CodeMaxUseTime, "the license's use time of %s is spent", m.MaxUseTime.D()), nil
		}
		if ext > left {
			ext = left
			exp = cur.ExpiresAt.Add(ext)
		}
	}

	if a.dry {
		return outcome{res: Result{License: lic, Renewed: true}}, nil
	}
	if m.HWLock && cur.HW != "" {
		// Re-taken when an administrator reset it meanwhile.
		if _, err := tx.LockHW(ctx, a.tenant, m.Name, cur.HW, lic.ID); err != nil {
			return outcome{}, err
		}
	}

	next := *cur
	if counted && m.MaxUseTime > 0 && ext > 0 {
		st.UseTime += ext
		next.UseTimeReserved += ext
	} else if ext < 0 {
		refund := min(-ext, next.UseTimeReserved)
		st.UseTime = max(0, st.UseTime-refund)
		next.UseTimeReserved -= refund
	}
	st.UseCount += draw
	if r.SessionID == "" && cur.SessionID == "" {
		if len(next.ChainKey) == 0 {
			next.ChainKey = domain.NewChainKey() // a lease from before derived ids
		}
		next.ChainSeq++
		next.ID = domain.ChainedLeaseID(next.Root, next.ChainKey, next.ChainSeq)
		next.PrevID = cur.ID
		next.PrevUntil = ms(now.Add(m.ChainGrace.D()))
	}
	next.RenewedAt = now
	next.ExpiresAt = exp
	next.RefreshAt = refreshAt(m, now, exp)
	next.Mode = a.mode()
	if r.Version != "" {
		next.Version = r.Version
	}
	if r.HWName != "" {
		next.HWName = r.HWName
	}
	if r.ProcessName != "" {
		next.ProcessName = r.ProcessName
	}
	if err := tx.UpdateLease(ctx, &next); err != nil {
		return outcome{}, err
	}

	extended, err := a.extendSeat(cur, exp)
	if err != nil {
		return outcome{}, err
	}
	if !extended {
		seat, err := getSeat(ctx, tx, a.tenant, lic.ID, cur.SeatKey)
		if err != nil {
			return outcome{}, err
		}
		if seat == nil {
			// A live lease always has its seat; rebuild it rather than lose the count.
			seat = &domain.Seat{Tenant: a.tenant, LicenseID: lic.ID, Key: cur.SeatKey, User: cur.User, Overage: cur.Overage}
			st.SeatsHeld++
		}
		if err := a.holdSeat(seat, cur, exp); err != nil {
			return outcome{}, err
		}
	}
	if err := tx.AppendUsage(ctx, []domain.UsageEvent{usage(&next, now, domain.EventRenew, exp.Sub(now))}); err != nil {
		return outcome{}, err
	}
	return outcome{res: Result{Lease: &next, License: lic, Renewed: true}}, nil
}

// extendSeat is holdSeat in one statement when cur is extended: the seat then holds until
// max(HeldUntil, exp), for the reason holdSeat gives. false (nothing written) leaves the
// case to holdSeat: a lease not extended (its seat already covers it, unless it must stop
// lingering), a missing seat, or one that already holds long enough for another lease.
func (a *attempt) extendSeat(cur *domain.Lease, exp time.Time) (bool, error) {
	if !exp.After(cur.ExpiresAt) {
		return false, nil
	}
	return a.tx.ExtendSeat(a.ctx, a.tenant, cur.LicenseID, cur.SeatKey, exp)
}

// holdSeat makes seat (read in this transaction, or new with a zero HeldUntil) hold until
// the latest expiry of its live leases now that cur runs until exp, writing it only when
// that moves it.
//
// A seat's HeldUntil is never before the exp of any of its live leases (every writer keeps
// that), so when the renewal does not shorten cur the seat already covers every other
// lease, and max(HeldUntil, exp) is the answer without looking at them. Only a shortened
// lease (or a seat being rebuilt) needs the latest expiry of the others.
func (a *attempt) holdSeat(seat *domain.Seat, cur *domain.Lease, exp time.Time) error {
	held := seat.HeldUntil
	if seat.HeldUntil.IsZero() || exp.Before(cur.ExpiresAt) {
		latest, err := a.tx.LatestLiveExpiryOnSeat(a.ctx, a.tenant, cur.LicenseID, cur.SeatKey, cur.Root, a.now)
		if err != nil {
			return err
		}
		held = maxTime(exp, latest)
	} else if exp.After(held) {
		held = exp
	}
	if seat.HeldUntil.Equal(held) && !seat.Lingering {
		return nil
	}
	seat.HeldUntil, seat.Lingering = held, false
	return a.tx.PutSeat(a.ctx, seat)
}
