module github.com/leasehold/leasehold/client

go 1.26.8

require (
	github.com/go-jose/go-jose/v4 v4.1.9
	go.uber.org/goleak v1.3.0
	golang.org/x/oauth2 v0.37.0
)
