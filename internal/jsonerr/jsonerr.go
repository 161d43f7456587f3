// Package jsonerr says what is wrong with a JSON request body in the API's terms: the
// field and the kind of value it takes, never a Go type name (encoding/json's own messages
// name Go structs and types).
package jsonerr

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"
)

// Reason describes err, an error of json.Unmarshal or a json.Decoder.
func Reason(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return fmt.Sprintf("the body must be %s, not %s", Describe(te.Type), te.Value)
		}
		return fmt.Sprintf("%s must be %s, not %s", te.Field, Describe(te.Type), te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("not valid JSON at byte %d", se.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || err.Error() == "unexpected end of JSON input" {
		return "the JSON ends too early"
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if strings.Contains(msg, "Go ") {
		return "not the expected JSON"
	}
	return msg
}

// Describe names the kind of value a Go type takes, in the words of a configuration file
// or a JSON body ("a string", "an integer", "a list", "a mapping", "an RFC 3339 time"): the
// one wording of every "must be …" the file, the admin API and the session API answer.
func Describe(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType {
		return "an RFC 3339 time"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return "a " + t.Kind().String()
}

var timeType = reflect.TypeFor[time.Time]()
