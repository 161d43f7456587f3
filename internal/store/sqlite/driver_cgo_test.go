//go:build cgo

package sqlite

const wantDriver = "mattn/go-sqlite3"
