// Package secret hashes and verifies passwords and client secrets.
//
// New hashes are argon2id PHC strings; verification also accepts bcrypt ($2a$, $2b$, $2y$),
// so that a configuration file can carry hashes made by other tools. Every comparison is
// constant-time. A PHC string's cost parameters are bounded before anything is computed: a
// configured or stored hash must not be able to make one verification take seconds or
// gigabytes.
package secret

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/alexedwards/argon2id"
	"golang.org/x/crypto/bcrypt"
)

// Params are the argon2id parameters of new hashes: OWASP's first recommendation
// (19 MiB, 2 passes, 1 lane). A larger memory cost would multiply with the number of
// concurrent logins; the token endpoint avoids it altogether through VerifyCache.
var Params = argon2id.Params{
	Memory:      19 * 1024,
	Iterations:  2,
	Parallelism: 1,
	SaltLength:  16,
	KeyLength:   32,
}

// Bounds on the parameters of a hash that is accepted for verification.
const (
	maxArgonMemory     = 256 * 1024 // KiB
	maxArgonIterations = 10
	maxArgonLanes      = 16
	minArgonSalt       = 8
	maxArgonSalt       = 64
	minArgonKey        = 16
	maxArgonKey        = 64
	maxBcryptCost      = 16
	// MaxSecretLen bounds a password or client secret: argon2 would hash megabytes happily.
	MaxSecretLen = 1024
	maxPHCLen    = 512
)

// ErrInvalidHash says a PHC string is not an acceptable argon2id or bcrypt hash.
var ErrInvalidHash = errors.New("not an argon2id or bcrypt hash")

// dummyPHC is an argon2id hash (with Params) of a random string nobody knows; DummyVerify
// spends on it the time a real verification would take.
const dummyPHC = "$argon2id$v=19$m=19456,t=2,p=1$wgxtol6bXZkLnRN20tUlTw$b0Kc5VgrnaFjFPbhky1PAILnTIl5eBaFqqFqDOsyJLg"

// slowSlots bounds how many slow hashes run at once in this process. Each argon2id check
// holds its memory cost (19 MiB by default, up to 256 MiB for a configured hash) for its
// whole run: without a bound, a burst of logins could take the process's memory. Callers
// beyond the bound wait their turn, which also spreads a guessing burst out in time.
//
// Client secrets (VerifyCache) have a pool of their own, half the size: a stream of wrong
// client secrets then queues behind itself, never in front of a user's password login.
var (
	slowSlots   = make(chan struct{}, max(2, runtime.NumCPU()))
	clientSlots = make(chan struct{}, max(1, runtime.NumCPU()/2))
)

func acquireSlow() func() { return acquire(slowSlots) }

func acquire(slots chan struct{}) func() {
	slots <- struct{}{}
	return func() { <-slots }
}

// Hash returns the argon2id PHC string of plain.
func Hash(plain string) (string, error) {
	if len(plain) > MaxSecretLen {
		return "", fmt.Errorf("secret longer than %d bytes", MaxSecretLen)
	}
	defer acquireSlow()()
	p := Params
	return argon2id.CreateHash(plain, &p)
}

// Verify reports whether plain matches phc (argon2id or bcrypt). A malformed or
// out-of-bounds phc is an error, never a match.
func Verify(plain, phc string) (bool, error) {
	return verify(plain, phc, slowSlots)
}

func verify(plain, phc string, slots chan struct{}) (bool, error) {
	kind, err := check(phc)
	if err != nil {
		return false, err
	}
	if len(plain) > MaxSecretLen {
		// Still spend the time, so the length of a guess does not show in the answer time.
		DummyVerify("")
		return false, nil
	}
	defer acquire(slots)()
	switch kind {
	case kindArgon2id:
		ok, err := argon2id.ComparePasswordAndHash(plain, phc)
		if err != nil {
			return false, fmt.Errorf("%w: %v", ErrInvalidHash, err)
		}
		return ok, nil
	default:
		err := bcrypt.CompareHashAndPassword([]byte(phc), []byte(plain))
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword), errors.Is(err, bcrypt.ErrPasswordTooLong):
			return false, nil
		default:
			return false, fmt.Errorf("%w: %v", ErrInvalidHash, err)
		}
	}
}

// DummyVerify costs what a Verify of a Hash-made PHC costs. Call it when there is nothing to
// verify against (an unknown user or client) so the answer time does not tell which names exist.
func DummyVerify(plain string) {
	if len(plain) > MaxSecretLen {
		plain = plain[:MaxSecretLen]
	}
	defer acquireSlow()()
	_, _ = argon2id.ComparePasswordAndHash(plain, dummyPHC)
}

// ValidHash checks that phc is an argon2id or bcrypt PHC string that Verify accepts, with
// cost parameters inside the bounds. Use it on a configured password_hash / client_secret_hash.
func ValidHash(phc string) error {
	_, err := check(phc)
	return err
}

// Equal compares two strings in constant time (for the length of the longer one).
func Equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

type kind int

const (
	kindArgon2id kind = iota + 1
	kindBcrypt
)

func check(phc string) (kind, error) {
	if len(phc) > maxPHCLen {
		return 0, fmt.Errorf("%w: longer than %d bytes", ErrInvalidHash, maxPHCLen)
	}
	switch {
	case strings.HasPrefix(phc, "$argon2id$"):
		return kindArgon2id, checkArgon2id(phc)
	case strings.HasPrefix(phc, "$2a$"), strings.HasPrefix(phc, "$2b$"), strings.HasPrefix(phc, "$2y$"):
		return kindBcrypt, checkBcrypt(phc)
	case strings.HasPrefix(phc, "$argon2"):
		return 0, fmt.Errorf("%w: only the argon2id variant is accepted", ErrInvalidHash)
	default:
		return 0, ErrInvalidHash
	}
}

func checkArgon2id(phc string) error {
	p, _, _, err := argon2id.DecodeHash(phc)
	if err != nil {
		return fmt.Errorf("%w: malformed argon2id hash", ErrInvalidHash)
	}
	// The parsing is lenient (Sscanf); insist on the canonical layout so that two spellings
	// of one hash cannot exist.
	canonical := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$", p.Memory, p.Iterations, p.Parallelism)
	if !strings.HasPrefix(phc, canonical) {
		return fmt.Errorf("%w: malformed argon2id hash", ErrInvalidHash)
	}
	switch {
	case p.Parallelism < 1 || p.Parallelism > maxArgonLanes:
		return fmt.Errorf("%w: argon2id p must be in 1..%d", ErrInvalidHash, maxArgonLanes)
	case p.Iterations < 1 || p.Iterations > maxArgonIterations:
		return fmt.Errorf("%w: argon2id t must be in 1..%d", ErrInvalidHash, maxArgonIterations)
	case p.Memory < 8*uint32(p.Parallelism) || p.Memory > maxArgonMemory:
		// Below 8·p KiB the library silently raises m, so the hash could never match.
		return fmt.Errorf("%w: argon2id m must be in %d..%d KiB", ErrInvalidHash, 8*uint32(p.Parallelism), maxArgonMemory)
	case p.SaltLength < minArgonSalt || p.SaltLength > maxArgonSalt:
		return fmt.Errorf("%w: argon2id salt must be %d..%d bytes", ErrInvalidHash, minArgonSalt, maxArgonSalt)
	case p.KeyLength < minArgonKey || p.KeyLength > maxArgonKey:
		return fmt.Errorf("%w: argon2id key must be %d..%d bytes", ErrInvalidHash, minArgonKey, maxArgonKey)
	}
	return nil
}

func checkBcrypt(phc string) error {
	// $2b$10$ + 22 characters of salt + 31 of hash.
	if len(phc) != 60 || phc[6] != '$' {
		return fmt.Errorf("%w: malformed bcrypt hash", ErrInvalidHash)
	}
	for _, c := range phc[7:] {
		if !(c == '.' || c == '/' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return fmt.Errorf("%w: malformed bcrypt hash", ErrInvalidHash)
		}
	}
	cost, err := bcrypt.Cost([]byte(phc))
	if err != nil {
		return fmt.Errorf("%w: malformed bcrypt hash", ErrInvalidHash)
	}
	if cost > maxBcryptCost {
		return fmt.Errorf("%w: bcrypt cost must be at most %d", ErrInvalidHash, maxBcryptCost)
	}
	return nil
}
