// Package engine holds every licensing rule of Leasehold: which license a consumption takes,
// seats, leases, renewal chains, linger, counters, queueing and the sweeper. It knows nothing
// of HTTP; the HTTP front parses a request into a Request and renders the Results.
//
// Every decision that reads or changes seat state runs inside one store transaction, after
// Tx.LockLicense on the license it touches (docs/DESIGN.md). Nothing kept in this process's
// memory is trusted for a seat decision, so any number of processes may share a store. The
// engine's own memory holds only derived, read-only data (model constraints compiled once
// per catalog version) and the local queue of waiting requests.
//
// Decisions SPEC.md leaves to us, and what the engine does:
//
//   - Check order per candidate license: active, validity, version, IP, country,
//     assignment, reservation, anchors, hw lock, use count (MissingArguments for
//     count_required is checked here), use time, consumption limit, sessions per seat,
//     seats. When no candidate grants, the refusal of the one that got furthest is
//     reported; among equals the first in license id order.
//   - A live lease of the request's session key on any candidate makes the request a
//     renewal on that license: it is tried first and its answer is final (a refused renewal
//     never moves the client to another license while its lease lives).
//   - lease_chaining: the renewal must name the current lease id (per-item leaseId, else the
//     request's); chain_grace only matters with chaining. Without chaining a leaseId is not
//     checked. A leaseId naming no live lease of the session key is ignored: the request is
//     a new consumption.
//   - max_use_count: a new lease draws consumeCount (default 1); a renewal draws only a
//     consumeCount it gives explicitly. Releases give nothing back.
//   - max_use_time: a grant reserves its whole duration, capped by what is left; a renewal
//     reserves the extension (or refunds a shortening); a release refunds exp − now. An
//     expired lease used all it reserved.
//   - consumption_limit counts live leases whose holder (Lease.User: the user, or the client
//     id of a client token without a user) is the caller, on that license.
//   - sessions_per_seat 0 means unlimited; a model maximum of 0s (online_lease,
//     offline_lease) means "no model maximum", leaving valid_until (or 15m / 720h).
//   - Reservations: a user not in `reservations` takes a seat only while seats held plus
//     reserved users holding none stay under floor(seats × overage).
//   - Session leases (Request.SessionID): no lease id check, no counters, the deadline is
//     Request.Expiry (capped by valid_until), and a renewal never shortens the lease. /authz
//     release refuses them (noConsumptionFoundById): a session never lives without its seat.
//   - Releasing an expired lease never starts a linger: its seat was free already and may
//     have been given to someone else.
//   - Queue: FIFO among the waiters of this process per (tenant, item); a waiter tries only
//     while no earlier waiter of its line wants one of its licenses. A request arriving
//     while others wait makes one immediate attempt before joining the line, and requests
//     without `queue` never wait. Waiters on other processes are served by polling.
//   - Usage events: grant, renew, release, end (admin, abandoned grants, session end
//     without linger), expire (sweeper). Refusals are reported as events (Event, deny), not
//     written to the store, so a polling waiter costs no write per attempt.
//   - Events (events.go): every operation that decides registers its grants, refusals and
//     ends on its transaction's AfterCommit, so observers (Options.Metrics, Observers) see
//     exactly what was made durable, whoever ran the transaction (/authz, a session, the
//     admin API, the sweeper). A queued request's licenseQuotaExceeded is reported once,
//     when its wait ends. A seat refused inside a session's transaction rolls that
//     transaction back (nothing of the login is kept); ReportSeatRefusal reports that
//     refusal once after the rollback, so every refusal is counted whatever the route.
//   - Session seats (sessionseat.go): the session code says when (open, use, end); the
//     engine decides which seat, how long, whether a login token's lingering seat may be
//     reclaimed (reclaimable, the one statement of that rule) and when a shared seat lease
//     is released.
package engine
