package config

import (
	"fmt"
	"strings"
)

// Error is one configuration problem: the field path (`tenants[acme].models[floating].linger`)
// and the reason. It prints as one line: `config: <path>: <reason>`.
type Error struct {
	Path   string
	Reason string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return "config: " + e.Reason
	}
	return "config: " + e.Path + ": " + e.Reason
}

// Errors are every problem found, in file order; it prints one line per problem.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// maxErrors bounds the report: past it, a file is wrong in a way that a longer list would
// not help with.
const maxErrors = 20

type errorList struct {
	errs    Errors
	dropped int
}

func (l *errorList) add(path, format string, args ...any) {
	if len(l.errs) >= maxErrors {
		l.dropped++
		return
	}
	l.errs = append(l.errs, &Error{Path: path, Reason: oneLine(fmt.Sprintf(format, args...))})
}

func (l *errorList) addError(e *Error) {
	l.add(e.Path, "%s", e.Reason)
}

func (l *errorList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	errs := l.errs
	if l.dropped > 0 {
		errs = append(errs[:len(errs):len(errs)], &Error{Reason: fmt.Sprintf("%d more errors not shown", l.dropped)})
	}
	return errs
}

// oneLine keeps a reason on one line whatever a library put in its message.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n\t") {
		return s
	}
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := range fields {
		fields[i] = strings.Join(strings.Fields(fields[i]), " ")
	}
	return strings.Join(fields, "; ")
}
