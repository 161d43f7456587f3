package server

// sessionRoutes mounts the session API (/session/*): logins, cookies, login tokens and
// session documents.
func (s *Server) sessionRoutes() {}
