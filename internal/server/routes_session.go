package server

// sessionRoutes mounts the session API (/session/*): logins, cookies, login tokens and
// session documents.
func (s *Server) sessionRoutes() {
	m := s.mux
	m.HandleFunc("POST /session/login", s.sessionLogin)
	m.HandleFunc("POST /session/token-login", s.sessionTokenLogin)
	m.HandleFunc("POST /session/refresh", s.sessionRefresh)
	m.HandleFunc("POST /session/logout", s.sessionLogout)
	m.HandleFunc("GET /session/logout", s.sessionLogout)
	m.HandleFunc("POST /session/logout-all", s.sessionLogoutAll)
	m.HandleFunc("POST /session/login-token", s.sessionLoginToken)
	m.HandleFunc("GET /session/documents", s.documentList)
	m.HandleFunc("PUT /session/documents/{name}", s.documentPut)
	m.HandleFunc("GET /session/documents/{name}", s.documentGet)
	m.HandleFunc("DELETE /session/documents/{name}", s.documentDelete)
}
