package server

import (
	"net/http"
	"strconv"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

type sessionView struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	User       string    `json:"user"`
	Client     string    `json:"client,omitempty"`
	Device     string    `json:"device,omitempty"`
	Scopes     []string  `json:"scopes"`
	Seat       bool      `json:"seat"`
	License    string    `json:"license,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	ExpiresAt  time.Time `json:"expires_at"`
}

func adminFilter(r *http.Request) store.LeaseFilter {
	q := r.URL.Query()
	f := store.LeaseFilter{LicenseID: q.Get("license"), User: q.Get("user"), Client: q.Get("client"), Limit: 1000}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 && n <= 100000 {
		f.Limit = n
	}
	return f
}

func (s *Server) adminListSessions(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	list, err := store.Read(r.Context(), s.deps.Store, func(tx store.Tx) ([]domain.Session, error) {
		return tx.ListSessions(r.Context(), snap.Tenant.Name, adminFilter(r))
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	out := make([]sessionView, 0, len(list))
	for _, x := range list {
		out = append(out, sessionView{ID: x.ID, Kind: x.Kind, User: x.User, Client: x.Client, Device: x.Device,
			Scopes: x.Scopes, Seat: x.LeaseRoot != "", License: x.LeaseLicense,
			CreatedAt: x.CreatedAt, LastUsedAt: x.LastUsedAt, ExpiresAt: x.ExpiresAt})
	}
	writeJSON(w, http.StatusOK, sessionList{Sessions: out})
}

// adminEndSession ends a session; its seat is freed at once (no linger).
func (s *Server) adminEndSession(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	ended, err := s.deps.Sessions.End(r.Context(), snap.Tenant.Name, r.PathValue("id"), false)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if !ended {
		writeError(w, http.StatusNotFound, "not_found", "no such session")
		return
	}
	writeJSON(w, http.StatusOK, okBody{OK: true})
}

type leaseView struct {
	ID        string    `json:"id"`
	License   string    `json:"license"`
	Item      string    `json:"item"`
	User      string    `json:"user,omitempty"`
	Client    string    `json:"client,omitempty"`
	HW        string    `json:"hw,omitempty"`
	HWName    string    `json:"hw_name,omitempty"`
	Process   string    `json:"process,omitempty"`
	Version   string    `json:"version,omitempty"`
	Mode      string    `json:"mode"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Overage   bool      `json:"overage,omitempty"`
	Session   string    `json:"session,omitempty"`
}

func (s *Server) adminListLeases(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	list, err := store.Read(r.Context(), s.deps.Store, func(tx store.Tx) ([]domain.Lease, error) {
		return tx.ListLeases(r.Context(), snap.Tenant.Name, adminFilter(r), tx.Now())
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	out := make([]leaseView, 0, len(list))
	for _, l := range list {
		out = append(out, leaseView{ID: l.ID, License: l.LicenseID, Item: l.Item, User: l.User, Client: l.Client,
			HW: l.HW, HWName: l.HWName, Process: l.Process, Version: l.Version, Mode: l.Mode,
			IssuedAt: l.IssuedAt, ExpiresAt: l.ExpiresAt, Overage: l.Overage, Session: l.SessionID})
	}
	writeJSON(w, http.StatusOK, leaseList{Leases: out})
}

// adminEndLease frees a lease's seat at once — except an offline checkout without
// ?force=true, whose signed token stays valid offline and so keeps counting until its exp.
// A session's seat lease is ended by ending the sessions that hold it.
func (s *Server) adminEndLease(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	res, err := s.deps.Sessions.EndLease(r.Context(), snap.Tenant.Name, r.PathValue("id"), r.URL.Query().Get("force") == "true")
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if !res.Found {
		writeError(w, http.StatusNotFound, "not_found", "no such lease")
		return
	}
	out := leaseEnded{OK: true, Freed: res.Freed}
	if !res.Freed {
		out.CountsUntil = &res.CountsUntil
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) adminResetLock(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	var n int
	err := s.deps.Store.Update(r.Context(), func(tx store.Tx) error {
		var err error
		n, err = tx.DeleteHWLocks(r.Context(), snap.Tenant.Name, r.PathValue("hw"))
		return err
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, locksRemoved{OK: true, LocksRemoved: n})
}
