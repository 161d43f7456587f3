package server

// The jim2 dialect: Jim2 Server's token and logoff resources, rooted at the tenant
// (/{tenant}/token, as Jim2's /Jim_Test/token; the tenant name is matched
// case-insensitively, '_' as '-'). The token endpoint is the OAuth2 server's: the
// client_credentials grant with Basic or body credentials, scope view taking no seat, a
// refresh token whose 20-minute sliding window holds the seat (refresh_token_ttl, for a
// client with refresh_with_client_credentials); logoff ends the session and its seat lingers.
func init() {
	registerDialect(&dialect{
		name:       "jim2",
		foldTenant: true,
		tenantRoutes: []dialectRoute{
			{pattern: "POST /token", auth: dialectEntry, serve: alias((*Server).token)},
			{pattern: "POST /logoff", auth: dialectEntry, serve: alias((*Server).logoff)},
		},
	})
}
