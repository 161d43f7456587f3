package session

import (
	"crypto/rand"
	"encoding/hex"
)

// NewID returns a random identifier for sessions and token families.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}
