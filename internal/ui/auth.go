package ui

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/store"
	"github.com/leasehold/leasehold/internal/throttle"
)

const (
	// CookieName is the dashboard's sign-in cookie; no other cookie authenticates /ui/.
	CookieName = "lh_ui"
	// loginCookie carries the sign-in form's CSRF value (double submit): before a sign-in
	// there is no session to derive one from.
	loginCookie = "lh_ui_login"
	// SessionTTL is how long a sign-in lasts.
	SessionTTL = 12 * time.Hour
)

// signIn is the authenticated request's sign-in: the cookie value, from which its CSRF
// token is derived.
type signIn struct{ value string }

type signInKey struct{}

// csrf is the CSRF token of the sign-in. It is derived from the cookie value, which
// JavaScript cannot read (HttpOnly) and another site cannot send (SameSite=Strict), so
// it needs no storage and changes with every sign-in.
func (s signIn) csrf() string {
	sum := sha256.Sum256([]byte("leasehold-ui-csrf\x00" + s.value))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// hashValue is what the store keeps of a cookie value (a token's stored form, in a domain
// of its own): a database copy signs no one in.
func (d *Dashboard) hashValue(v string) string {
	return d.deps.Sessions.HashToken("leasehold-ui-session\x00" + v)
}

func randomValue() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (d *Dashboard) secure(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(d.opts.PublicURL, "https://")
}

func (d *Dashboard) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/ui/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: d.secure(r),
	})
}

// current returns the request's live sign-in, if any.
func (d *Dashboard) current(r *http.Request) (signIn, bool, error) {
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return signIn{}, false, nil
	}
	var live bool
	err = d.deps.Store.View(r.Context(), func(tx store.Tx) error {
		s, err := tx.GetUISession(r.Context(), d.hashValue(c.Value))
		if errors.Is(err, domain.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		live = s.ExpiresAt.After(tx.Now())
		return nil
	})
	if err != nil {
		return signIn{}, false, err
	}
	return signIn{value: c.Value}, live, nil
}

func signedIn(ctx context.Context) signIn {
	s, _ := ctx.Value(signInKey{}).(signIn)
	return s
}

// page wraps a GET handler: without a sign-in a page redirects to the sign-in form and a
// JSON poll gets 401 (the script then stops polling).
func (d *Dashboard) page(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok, err := d.current(r)
		if err != nil {
			d.internalError(w, r, err)
			return
		}
		if !ok {
			if wantsJSON(r) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error":"sign in at /ui/login"}` + "\n"))
				return
			}
			http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), signInKey{}, s)))
	})
}

// form wraps a state-changing POST: it needs a sign-in, a same-origin request and the
// sign-in's CSRF token, else 403.
func (d *Dashboard) form(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := d.cop.Check(r); err != nil {
			d.errorPage(w, r, http.StatusForbidden, "Refused: a cross-site request.")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		s, ok, err := d.current(r)
		if err != nil {
			d.internalError(w, r, err)
			return
		}
		if !ok {
			d.errorPage(w, r, http.StatusForbidden, "Refused: sign in first.")
			return
		}
		if got := r.PostFormValue("csrf"); subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf())) != 1 {
			d.errorPage(w, r, http.StatusForbidden, "Refused: the form's CSRF token is missing or wrong. Reload the page and try again.")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), signInKey{}, s)))
	})
}

type loginData struct {
	CSRF  string
	Error string
}

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, ok, err := d.current(r); err == nil && ok {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	d.renderLogin(w, r, http.StatusOK, "")
}

func (d *Dashboard) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	// One value per browser, kept across failed attempts, so two open sign-in forms both work.
	v := ""
	if c, err := r.Cookie(loginCookie); err == nil && len(c.Value) == 43 {
		v = c.Value
	} else {
		v = randomValue()
	}
	d.setCookie(w, r, loginCookie, v, 3600)
	d.render(w, r, status, "login", page{Title: "Sign in", Data: loginData{CSRF: v, Error: msg}})
}

// login signs in with the admin token, compared in constant time (or against its hash),
// failures throttled per client address. The session stored is a fresh random value's
// hash; the token itself is never stored nor put in a cookie.
func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	if err := d.cop.Check(r); err != nil {
		d.errorPage(w, r, http.StatusForbidden, "Refused: a cross-site request.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	c, err := r.Cookie(loginCookie)
	got := r.PostFormValue("csrf")
	if err != nil || c.Value == "" || subtle.ConstantTimeCompare([]byte(got), []byte(c.Value)) != 1 {
		d.errorPage(w, r, http.StatusForbidden, "Refused: the sign-in form's CSRF token is missing or wrong. Reload the sign-in page and try again.")
		return
	}
	ok, wait := d.opts.Admin.Check(r.PostFormValue("token"), clientAddr(r))
	if wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(throttle.RetrySeconds(wait)))
		d.renderLogin(w, r, http.StatusTooManyRequests,
			"Too many wrong tokens from this address: try again in "+strconv.Itoa(throttle.RetrySeconds(wait))+" s.")
		return
	}
	if !ok {
		d.renderLogin(w, r, http.StatusUnauthorized, "Wrong admin token.")
		return
	}
	value := randomValue()
	err = d.deps.Store.Update(r.Context(), func(tx store.Tx) error {
		now := tx.Now()
		return tx.InsertUISession(r.Context(), &store.UISession{Hash: d.hashValue(value), CreatedAt: now, ExpiresAt: now.Add(SessionTTL)})
	})
	if err != nil {
		d.internalError(w, r, err)
		return
	}
	d.setCookie(w, r, loginCookie, "", -1)
	d.setCookie(w, r, CookieName, value, int(SessionTTL/time.Second))
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	s := signedIn(r.Context())
	err := d.deps.Store.Update(r.Context(), func(tx store.Tx) error {
		_, err := tx.DeleteUISession(r.Context(), d.hashValue(s.value))
		return err
	})
	if err != nil {
		d.internalError(w, r, err)
		return
	}
	d.setCookie(w, r, CookieName, "", -1)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

func wantsJSON(r *http.Request) bool { return r.URL.Query().Get("format") == "json" }
