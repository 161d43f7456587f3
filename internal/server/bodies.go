package server

import (
	"encoding/json"
	"time"

	"github.com/leasehold/leasehold/internal/apply"
	"github.com/leasehold/leasehold/internal/documents"
	"github.com/leasehold/leasehold/internal/domain"
)

// The JSON bodies of the routes that answer a short result. Each body a handler writes or
// reads is a named type, so that the OpenAPI document's component schemas can be generated
// from it and checked against it (openapi_test.go, go test -run OpenAPI -update).

// okBody is {"ok": true}: the change was made.
type okBody struct {
	OK bool `json:"ok"`
}

// readiness is GET /readyz's answer.
type readiness struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

type keyRotated struct {
	OK  bool   `json:"ok"`
	Kid string `json:"kid"`
}

type tenantList struct {
	Tenants []domain.Tenant `json:"tenants"`
}

// objectList is {"<kind>": [object, …]}: the one key is the kind listed.
type objectList map[string][]json.RawMessage

type applyResult struct {
	OK     bool         `json:"ok"`
	DryRun bool         `json:"dry_run"`
	Report apply.Report `json:"report"`
}

type sessionList struct {
	Sessions []sessionView `json:"sessions"`
}

type leaseList struct {
	Leases []leaseView `json:"leases"`
}

// leaseEnded is DELETE …/leases/{id}: an offline checkout not forced keeps counting until
// counts_until.
type leaseEnded struct {
	OK          bool       `json:"ok"`
	Freed       bool       `json:"freed"`
	CountsUntil *time.Time `json:"counts_until,omitempty"`
}

type locksRemoved struct {
	OK           bool `json:"ok"`
	LocksRemoved int  `json:"locks_removed"`
}

type loginTokenList struct {
	LoginTokens []loginTokenView `json:"login_tokens"`
}

type tokensRevoked struct {
	OK      bool `json:"ok"`
	Revoked int  `json:"revoked"`
}

type sessionsEnded struct {
	OK            bool `json:"ok"`
	SessionsEnded int  `json:"sessions_ended"`
}

// usageRow is one consumption event of GET /admin/v1/usage.
type usageRow struct {
	At        time.Time `json:"at"`
	Event     string    `json:"event"`
	License   string    `json:"license"`
	Item      string    `json:"item"`
	User      string    `json:"user,omitempty"`
	Client    string    `json:"client,omitempty"`
	HW        string    `json:"hw,omitempty"`
	HWName    string    `json:"hw_name,omitempty"`
	Lease     string    `json:"lease,omitempty"`
	Code      string    `json:"code,omitempty"`
	Overage   bool      `json:"overage,omitempty"`
	DurationS float64   `json:"duration_s"`
}

type usageReport struct {
	Tenant string     `json:"tenant"`
	Usage  []usageRow `json:"usage"`
}

type entitlementList struct {
	Licenses []entitlementView `json:"licenses"`
}

type documentList struct {
	Documents []documents.Info `json:"documents"`
}

// loginTokenBody is POST /session/login-token's answer.
type loginTokenBody struct {
	Token string `json:"token"`
}

// Request bodies. A JSON body is one way to send them; the same fields come as a form too
// (README, "Sessions").

// sessionLoginRequest is POST /session/login and /session/token-login: a password or a
// login token; refresh asks for a refresh token; queue waits that many seconds for a seat.
type sessionLoginRequest struct {
	Username string    `json:"username"`
	Password string    `json:"password"`
	Token    string    `json:"token"`
	Device   string    `json:"device"`
	Refresh  *flexBool `json:"refresh"`
	Queue    *int64    `json:"queue"`
}

type sessionRefreshRequest struct {
	RefreshToken string `json:"refreshToken"`
}

// loginTokenRequest is DocuWare's Organizations/LoginToken body, also POST
// /session/login-token's: {"TargetProducts":["PlatformService"],"Usage":"Multi","Lifetime":"1.00:00:00"}.
type loginTokenRequest struct {
	TargetProducts []string `json:"TargetProducts"`
	Usage          string   `json:"Usage"`
	Lifetime       string   `json:"Lifetime"`
}

// dwLogonRequest is DocuWare's Account/Logon JSON body (names matched case-insensitively,
// as encoding/json does).
type dwLogonRequest struct {
	UserName     string `json:"UserName"`
	Password     string `json:"Password"`
	Organization string `json:"Organization"`
}

// webPDFLoginRequest is webPDF's login body.
type webPDFLoginRequest struct {
	CreateRefreshToken *flexBool `json:"createRefreshToken"`
}
