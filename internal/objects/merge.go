package objects

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/leasehold/leasehold/internal/jsonerr"
)

// mergePatch applies an RFC 7396 JSON merge patch to cur.
func mergePatch(cur, patch []byte) ([]byte, error) {
	var base, p any
	if err := json.Unmarshal(cur, &base); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(patch, &p); err != nil {
		return nil, fmt.Errorf("body: %s", jsonerr.Reason(err))
	}
	pm, ok := p.(map[string]any)
	if !ok {
		return nil, errors.New("body: a PATCH body is a JSON object of the fields to change")
	}
	// A new plaintext password or secret replaces the stored hash.
	if b, ok := base.(map[string]any); ok {
		for plain, hash := range map[string]string{"password": "password_hash", "client_secret": "client_secret_hash"} {
			if _, given := pm[plain]; given {
				if _, alsoHash := pm[hash]; !alsoHash {
					delete(b, hash)
				}
			}
		}
	}
	return json.Marshal(merge(base, p))
}

func merge(base, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	b, ok := base.(map[string]any)
	if !ok {
		b = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(b, k)
		} else {
			b[k] = merge(b[k], v)
		}
	}
	return b
}
