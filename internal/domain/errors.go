package domain

import (
	"errors"
	"fmt"
)

// ErrorCode is a 10Duke license error code, as sent on the wire (`<item>_errorCode`).
type ErrorCode string

// Every code of the 10Duke error table, plus noConsumptionFoundById and releaseNotAllowed
// used by release.
const (
	CodeAnchorLocked           ErrorCode = "anchorLockedToAnotherLicense"
	CodeBadArgument            ErrorCode = "BadArgument"
	CodeGeolocationBlocked     ErrorCode = "clientGeolocationBlocked"
	CodeIPBlocked              ErrorCode = "clientIpAddressBlocked"
	CodeConsumptionLimit       ErrorCode = "consumptionLimitExceed"
	CodeLeaseIDNotMatching     ErrorCode = "leaseIdNotMatching"
	CodeAnchorMissing          ErrorCode = "licenseAnchorMissing"
	CodeAssignmentDenied       ErrorCode = "licenseAssignmentDenied"
	CodeAssignmentMissing      ErrorCode = "licenseAssignmentMissing"
	CodeLicenseExpired         ErrorCode = "licenseExpired"
	CodeLicenseNotActive       ErrorCode = "licenseNotActive"
	CodeQuotaExceeded          ErrorCode = "licenseQuotaExceeded"
	CodeValidityNotStarted     ErrorCode = "licenseValidityNotStarted"
	CodeMaxUseTime             ErrorCode = "maxAggregateUseTimeExceed"
	CodeMaxSessions            ErrorCode = "maxConcurrentSessionsExceed"
	CodeMaxUseCount            ErrorCode = "maxUseCountExceed"
	CodeMissingArguments       ErrorCode = "MissingArguments"
	CodeNoLicenseFound         ErrorCode = "noLicenseFound"
	CodeNotAuthorized          ErrorCode = "notAuthorized"
	CodeUnallowedVersion       ErrorCode = "unallowedClientVersion"
	CodeUnresolvedGeolocation  ErrorCode = "unresolvedGeolocation"
	CodeNoConsumptionFoundByID ErrorCode = "noConsumptionFoundById"
	CodeReleaseNotAllowed      ErrorCode = "releaseNotAllowed"
)

// LicenseError is a refused license check. It is an answer, not a failure: /authz renders it
// at HTTP 200.
type LicenseError struct {
	Code      ErrorCode
	Message   string // for people: `Access to "X" denied`
	Technical string // for developers: what exactly failed
}

func (e *LicenseError) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Technical) }

// NewLicenseError builds a LicenseError for item with a technical detail.
func NewLicenseError(code ErrorCode, item, technical string) *LicenseError {
	return &LicenseError{
		Code:      code,
		Message:   fmt.Sprintf("Access to %q denied", item),
		Technical: technical,
	}
}

// Store-level sentinel errors.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)
