package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/tokenhash"
)

// Reopen closes s and opens its database again. With fromBefore it first makes the
// database what the version before the token hash key left (no key, the key's migration
// not applied), as an upgrade finds it.
type Reopen func(t *testing.T, s store.Store, fromBefore bool) store.Store

// RunTokenKey checks the token hash key (package tokenhash) on a backend: created with the
// database and kept across reopening; and, on an upgrade, created then, with the unkeyed
// hashes of the earlier version rewritten so that every token issued before still works,
// while its old, unkeyed form no longer finds it.
func RunTokenKey(t *testing.T, open func(t *testing.T) store.Store, reopen Reopen) {
	t.Run("Kept", func(t *testing.T) {
		s := open(t)
		key := append([]byte(nil), s.TokenKey()...)
		if len(key) != tokenhash.KeySize || bytes.Equal(key, make([]byte, tokenhash.KeySize)) {
			t.Fatalf("TokenKey = %x", key)
		}
		if s = reopen(t, s, false); !bytes.Equal(s.TokenKey(), key) {
			t.Fatal("the token hash key changed when the database was reopened")
		}
	})
	t.Run("Upgrade", func(t *testing.T) {
		s := open(t)
		base := baseTime(t, s)
		legacy := func(secret string) string {
			sum := sha256.Sum256([]byte(secret))
			return hex.EncodeToString(sum[:])
		}
		tok := func(hash, kind string) domain.Token {
			return domain.Token{Hash: hash, Tenant: "acme", Kind: kind, SessionID: "s1", FamilyID: "f1",
				ClientID: "app", User: "alice", CreatedAt: base, ExpiresAt: base.Add(time.Hour)}
		}
		insertSessions(t, s, domain.Session{ID: "s1", Tenant: "acme", Kind: domain.SessionPassword, User: "alice",
			CreatedAt: base, LastUsedAt: base, ExpiresAt: base.Add(time.Hour)})
		access := tok(legacy("access-token"), domain.TokenAccess)
		marker := tok("used:"+legacy("a-code"), domain.TokenCode)
		foreign := tok("not-a-hash", domain.TokenAccess)
		insertTokens(t, s, access, marker, foreign)
		update(t, s, func(tx store.Tx) error {
			return tx.InsertUISession(t.Context(), &store.UISession{Hash: legacy("ui\x00cookie"), CreatedAt: base, ExpiresAt: base.Add(time.Hour)})
		})

		s = reopen(t, s, true)
		h := tokenhash.New(s.TokenKey())
		for hash, want := range map[string]domain.Token{
			h.Hash("access-token"):     access,
			"used:" + h.Hash("a-code"): marker,
			"not-a-hash":               foreign, // matches no token: left as it was
		} {
			got, err := getToken(t, s, hash)
			if err != nil {
				t.Fatalf("GetToken of the upgraded %s: %v", want.Hash, err)
			}
			want.Hash = hash
			same(t, "upgraded token", normToken(*got), normToken(want))
		}
		for _, old := range []string{access.Hash, marker.Hash} {
			_, err := getToken(t, s, old)
			wantNotFound(t, "GetToken of an unkeyed hash after the upgrade", err)
		}
		read(t, s, func(tx store.Tx) (*store.UISession, error) { // fails the test when it is not found
			return tx.GetUISession(t.Context(), h.Hash("ui\x00cookie"))
		})

		// Reopened without a downgrade, nothing is rewritten twice.
		key := append([]byte(nil), s.TokenKey()...)
		if s = reopen(t, s, false); !bytes.Equal(s.TokenKey(), key) {
			t.Fatal("the token hash key changed when the database was reopened")
		}
		if _, err := getToken(t, s, h.Hash("access-token")); err != nil {
			t.Fatalf("GetToken after reopening: %v", err)
		}
	})
}
