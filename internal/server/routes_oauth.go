package server

// oauthRoutes mounts the OAuth2 routes beyond the token endpoint (authorize, revoke,
// introspect, metadata).
func (s *Server) oauthRoutes() {
	m := s.mux
	m.HandleFunc("GET /oauth2/authorize", s.authorizeGet)
	m.HandleFunc("POST /oauth2/authorize", s.authorizePost)
	m.HandleFunc("POST /oauth2/revoke", s.oauthRevoke)
	m.HandleFunc("POST /oauth2/introspect", s.oauthIntrospect)
	m.HandleFunc("GET /.well-known/oauth-authorization-server", s.oauthMetadata)
	m.HandleFunc("GET /.well-known/oauth-authorization-server/t/{tenant}", s.oauthMetadata)
	m.HandleFunc("GET /.well-known/openid-configuration", s.oauthMetadata)
}
