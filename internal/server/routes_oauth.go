package server

// oauthRoutes mounts the OAuth2 routes beyond the token endpoint (authorize, revoke,
// introspect, metadata).
func (s *Server) oauthRoutes() {}
