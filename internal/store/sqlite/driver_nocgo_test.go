//go:build !cgo

package sqlite

const wantDriver = "ncruces/go-sqlite3"
