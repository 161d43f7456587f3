package server

// The therefore dialect: Therefore's OAuth endpoints are the OAuth2 server's own, under
// Therefore's paths. /OAuth/Authorize?tenant=… shows the login page (whose form posts back
// to /OAuth/Authorize) and redirects with a code; /OAuth/Token?tenant=… takes the
// authorization_code and refresh_token grants with HTTP Basic client authentication.
// Therefore_Read, Therefore_User and offline_access are client scopes like any other
// (Therefore_Read is free by default); expires_in is access_token_ttl, 1199 s by default.
// Therefore's tenant names are matched case-insensitively (tenant=NTWare1 is ntware1).
func init() {
	registerDialect(&dialect{
		name:       "therefore",
		foldTenant: true,
		routes: []dialectRoute{
			{pattern: "GET /OAuth/Authorize", auth: dialectEntry, serve: alias((*Server).authorizeGet)},
			{pattern: "POST /OAuth/Authorize", auth: dialectEntry, serve: alias((*Server).authorizePost)},
			{pattern: "POST /OAuth/Token", auth: dialectEntry, serve: alias((*Server).token)},
		},
	})
}
