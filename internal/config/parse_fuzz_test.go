package config

import (
	"errors"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
)

// FuzzParseAccepted holds what Parse accepts to the bounds the rest of the server relies
// on, where FuzzParse only looks at how it refuses:
//   - every error is an *Error of one line, "config: …", at most maxErrors+1 of them;
//   - Parse is deterministic (the same file gives the same configuration or errors);
//   - an accepted file has no negative duration or size anywhere (a lease, linger or token
//     that ends before it begins), and every tenant of it passes ValidateTenant as the
//     admin API would run it.
func FuzzParseAccepted(f *testing.F) {
	f.Add([]byte(base))
	f.Add([]byte(minimal))
	if b, err := os.ReadFile("testdata/full.yaml"); err == nil {
		f.Add(b)
	}
	for _, v := range []string{"0", "90s", "1e10", "9223372036.9", "-1", `"2562047h"`, "1.5"} {
		f.Add([]byte("tenants:\n  - name: acme\n    users: [{username: alice}]\n    products: [{name: P}]\n" +
			"    session: {refresh_grace: " + v + "}\n" +
			"    models: [{name: m, linger: " + v + ", restart_grace: " + v + ", max_use_time: " + v + "}]\n" +
			"    licenses: [{id: L1, product: P, model: m, owner: {user: alice}}]\n"))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		cfg2, err2 := Parse(data)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) ||
			(err == nil && !reflect.DeepEqual(cfg, cfg2)) {
			t.Fatalf("not deterministic: %v / %v", err, err2)
		}
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 || len(errs) > maxErrors+1 {
				t.Fatalf("error of type %T (%d): %v", err, len(errs), err)
			}
			for _, e := range errs {
				if !strings.HasPrefix(e.Error(), "config: ") || strings.ContainsAny(e.Error(), "\r\n") {
					t.Fatalf("error %q", e.Error())
				}
			}
			return
		}
		if p, v := negative(reflect.ValueOf(cfg), "config"); p != "" {
			t.Fatalf("accepted with %s = %v", p, v)
		}
		for i := range cfg.Tenants {
			if err := ValidateTenant(&cfg.Tenants[i], cfg.GeoIPDatabase != ""); err != nil {
				t.Fatalf("accepted, but the admin API would refuse tenant %d: %v", i, err)
			}
		}
	})
}

var (
	durationType = reflect.TypeFor[domain.Duration]()
	stdDuration  = reflect.TypeFor[time.Duration]()
	byteSizeType = reflect.TypeFor[domain.ByteSize]()
)

// negative finds a negative duration or size anywhere in v and returns its path.
func negative(v reflect.Value, path string) (string, any) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return negative(v.Elem(), path)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if !v.Type().Field(i).IsExported() {
				continue
			}
			if p, x := negative(v.Field(i), path+"."+v.Type().Field(i).Name); p != "" {
				return p, x
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return "", nil // raw JSON
		}
		for i := 0; i < v.Len(); i++ {
			if p, x := negative(v.Index(i), path+"["+strconv.Itoa(i)+"]"); p != "" {
				return p, x
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if p, x := negative(it.Value(), path+"["+it.Key().String()+"]"); p != "" {
				return p, x
			}
		}
	case reflect.Int64:
		if (v.Type() == durationType || v.Type() == stdDuration || v.Type() == byteSizeType) && v.Int() < 0 {
			return path, v.Interface()
		}
	}
	return "", nil
}
