// Package openapi holds Leasehold's OpenAPI 3.1 description, served at GET /openapi.json.
package openapi

import _ "embed"

// Document is the OpenAPI 3.1 description of every route.
//
//go:embed openapi.json
var Document []byte
