package server

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
)

type loginTokenView struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Data      any       `json:"details,omitempty"`
}

func (s *Server) adminListLoginTokens(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	list, err := store.Read(r.Context(), s.deps.Store, func(tx store.Tx) ([]domain.Token, error) {
		return tx.ListTokens(r.Context(), snap.Tenant.Name, domain.TokenLogin, r.PathValue("id"))
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	out := make([]loginTokenView, 0, len(list))
	for _, t := range list {
		v := loginTokenView{ID: t.Hash, User: t.User, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt}
		var details map[string]any
		if json.Unmarshal(t.Data, &details) == nil {
			delete(details, "seat_key")
			v.Data = details
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, loginTokenList{LoginTokens: out})
}

// adminRevokeLoginTokens revokes one login token (by id) or all of a user's.
func (s *Server) adminRevokeLoginTokens(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	tenant, user, one := snap.Tenant.Name, r.PathValue("id"), r.PathValue("token")
	n := 0
	err := s.deps.Store.Update(r.Context(), func(tx store.Tx) error {
		n = 0
		list, err := tx.ListTokens(r.Context(), tenant, domain.TokenLogin, user)
		if err != nil {
			return err
		}
		for _, t := range list {
			if one != "" && subtle.ConstantTimeCompare([]byte(t.Hash), []byte(one)) != 1 {
				continue
			}
			if _, err := tx.DeleteToken(r.Context(), t.Hash); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if one != "" && n == 0 {
		writeError(w, http.StatusNotFound, "not_found", "no such login token")
		return
	}
	writeJSON(w, http.StatusOK, tokensRevoked{OK: true, Revoked: n})
}

// adminLogoutAll ends every session of a user (their seats linger, as at a logout).
func (s *Server) adminLogoutAll(w http.ResponseWriter, r *http.Request) {
	snap, ok := s.adminTenant(w, r)
	if !ok {
		return
	}
	n, err := s.deps.Sessions.EndAll(r.Context(), snap.Tenant.Name, r.PathValue("id"))
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sessionsEnded{OK: true, SessionsEnded: n})
}
