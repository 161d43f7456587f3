// Package client is the Go client of a Leasehold license and session server.
//
// It does on the client side what the systems Leasehold descends from advise their
// integrators to do, so that a program neither loses its seat nor takes a second one:
//
//   - keep one session and reuse it: [New] logs in once (OAuth2 client credentials, or a
//     password login) and keeps the session's tokens fresh in the background;
//   - renew before expiry: every lease returned by [Client.Consume] is a signed JWT,
//     verified against the tenant's JWK Set, and renewed in the background at its refresh
//     time (`rfr`), naming the current lease id so that lease chaining holds;
//   - reconnect instead of taking a second seat: a failed renewal is retried with backoff
//     until the lease's expiry, a refused session refresh re-opens the session from the
//     same device (with a login token when there is one), and with [Config.StateDir] a
//     restarted program resumes its session and its leases;
//   - log off when done: [Client.Close] releases every online lease and ends the session,
//     so its seat is free for others at once (after the model's linger).
//
// Times are measured on the local monotonic clock from the moment an answer was received,
// offset by the token's own iat, exp and rfr: a local clock that is wrong neither renews
// late nor declares a valid lease expired.
//
// A lease's life is reported on [Lease.Events]: [Renewed], [Retrying] (the server could not
// be reached; the lease is still valid), [Lost] (the lease chain ended: an administrator
// ended it, it expired while the server was unreachable, or a license error) and [Restored]
// (a new lease is held again).
//
// Offline use: [WithCheckout] consumes a checkout lease; with [Config.StateDir] it is kept
// on disk, with the JWK Set that verifies it, and [New] returns an offline client that can
// still hand it out while the server cannot be reached.
//
// The sub-packages keep the sessions of the seed systems' own APIs alive for programs that
// call them directly: docuware, webpdf, jim2 and therefore; package webhook verifies the
// signature of Leasehold's webhook deliveries.
package client
