package ui

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/leasehold/leasehold/internal/catalog"
	"github.com/leasehold/leasehold/internal/domain"
	"github.com/leasehold/leasehold/internal/engine"
	"github.com/leasehold/leasehold/internal/store"
)

// SeatsPerPage bounds a license page: the seats (and their leases) of one page are read
// by key from the seat index, so a page costs the same with ten seats held or a million.
const SeatsPerPage = 100

// maxSessionsShown bounds the sessions page.
const maxSessionsShown = 1000

func tenantPath(tenant string) string { return "/ui/t/" + url.PathEscape(tenant) }

func licensePath(tenant, id string) string {
	return tenantPath(tenant) + "/licenses/" + url.PathEscape(id)
}

type tenantView struct {
	Name  string
	Table Table
}

type overviewData struct{ Tenants []tenantView }

// overview lists every tenant with its licenses and the seats held on each.
func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	tenants, err := d.deps.Catalog.Tenants(ctx)
	if err != nil {
		d.internalError(w, r, err)
		return
	}
	var data overviewData
	text := map[string]string{}
	for _, t := range tenants {
		snap, err := d.deps.Catalog.Get(ctx, t.Name)
		if err != nil {
			d.internalError(w, r, err)
			return
		}
		tv := tenantView{Name: t.Name, Table: Table{ID: "licenses-" + t.Name, Empty: "No license."}}
		err = d.deps.Store.View(ctx, func(tx store.Tx) error {
			now := tx.Now()
			for _, id := range sortedLicenseIDs(snap) {
				lic := snap.Licenses[id]
				used, err := engine.SeatsUsed(ctx, tx, t.Name, id, now)
				if err != nil {
					return err
				}
				lingering, err := tx.CountLingeringSeats(ctx, t.Name, id, now)
				if err != nil {
					return err
				}
				tv.Table.Rows = append(tv.Table.Rows, Row{Cells: []Cell{
					{T: id, Href: licensePath(t.Name, id)},
					{T: lic.Product + itemsNote(lic)},
					{T: lic.Model},
					{T: strconv.Itoa(used) + " / " + strconv.Itoa(lic.Seats)},
					{T: strconv.Itoa(lingering)},
					{T: validity(lic)},
				}})
			}
			return nil
		})
		if err != nil {
			d.internalError(w, r, err)
			return
		}
		data.Tenants = append(data.Tenants, tv)
	}
	if wantsJSON(r) {
		ts := make([]Table, 0, len(data.Tenants))
		for _, t := range data.Tenants {
			ts = append(ts, t.Table)
		}
		writeLive(w, live{Tables: tablesOf(ts...), Text: text})
		return
	}
	d.render(w, r, http.StatusOK, "overview", page{Title: "Tenants and licenses", Live: "/ui/?format=json", Data: data})
}

func sortedLicenseIDs(snap *catalog.Snapshot) []string {
	ids := make([]string, 0, len(snap.Licenses))
	for id := range snap.Licenses {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func itemsNote(l *domain.License) string {
	if len(l.Items) == 0 {
		return ""
	}
	if l.Product == "" {
		return strings.Join(l.Items, ", ")
	}
	return " (+ " + strings.Join(l.Items, ", ") + ")"
}

func validity(l *domain.License) string {
	var s string
	switch {
	case l.ValidFrom == nil && l.ValidUntil == nil:
		s = "always"
	case l.ValidUntil == nil:
		s = "from " + fmtTime(*l.ValidFrom)
	case l.ValidFrom == nil:
		s = "until " + fmtTime(*l.ValidUntil)
	default:
		s = fmtTime(*l.ValidFrom) + " – " + fmtTime(*l.ValidUntil)
	}
	if !l.Active {
		s += " (inactive)"
	}
	return s
}

type licenseData struct {
	Tenant    string
	License   *domain.License
	Used      int
	Lingering int
	Table     Table
	// Next is the URL of the next page of seats ("" on the last); Paged is set past the
	// first page.
	Next  string
	Paged bool
}

// licensePage shows a page of the license's held seats: each seat's anchor, its live
// leases with an End button each, and lingering seats with the end of their linger.
func (d *Dashboard) licensePage(w http.ResponseWriter, r *http.Request) {
	snap, ok := d.tenant(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	tenant, id := snap.Tenant.Name, r.PathValue("id")
	lic := snap.Licenses[id]
	if lic == nil {
		d.errorPage(w, r, http.StatusNotFound, "No such license in "+tenant+": "+id+".")
		return
	}
	after := r.URL.Query().Get("after")
	data := licenseData{Tenant: tenant, License: lic, Paged: after != "",
		Table: Table{ID: "seats", Empty: "No seat is held."}}
	self := licensePath(tenant, id)
	if after != "" {
		self += "?after=" + url.QueryEscape(after)
	}
	err := d.deps.Store.View(ctx, func(tx store.Tx) error {
		now := tx.Now()
		var err error
		if data.Used, err = engine.SeatsUsed(ctx, tx, tenant, id, now); err != nil {
			return err
		}
		if data.Lingering, err = tx.CountLingeringSeats(ctx, tenant, id, now); err != nil {
			return err
		}
		// One more than a page tells whether there is a next one.
		seats, err := tx.ListHeldSeats(ctx, tenant, id, now, after, SeatsPerPage+1)
		if err != nil {
			return err
		}
		if len(seats) > SeatsPerPage {
			seats = seats[:SeatsPerPage]
			data.Next = licensePath(tenant, id) + "?after=" + url.QueryEscape(seats[len(seats)-1].Key)
		}
		keys := make([]string, len(seats))
		for i, s := range seats {
			keys[i] = s.Key
		}
		leases, err := tx.ListLeasesOnSeats(ctx, tenant, id, keys, now)
		if err != nil {
			return err
		}
		data.Table.Rows = seatRows(tenant, self, seats, leases)
		return nil
	})
	if err != nil {
		d.internalError(w, r, err)
		return
	}
	summary := seatSummary(data.Used, lic.Seats, data.Lingering)
	if wantsJSON(r) {
		writeLive(w, live{Tables: tablesOf(data.Table), Text: map[string]string{"seat-summary": summary}})
		return
	}
	live := self
	if strings.Contains(live, "?") {
		live += "&format=json"
	} else {
		live += "?format=json"
	}
	d.render(w, r, http.StatusOK, "license", page{Title: "License " + id, Tenant: tenant, Live: live,
		Message: doneMessage(r), Data: struct {
			licenseData
			Summary string
		}{data, summary}})
}

func seatSummary(used, seats, lingering int) string {
	return strconv.Itoa(used) + " of " + strconv.Itoa(seats) + " seats held, " + strconv.Itoa(lingering) + " of them lingering"
}

// seatRows lays out a page of seats: one row per live lease, one per seat that no live
// lease holds (lingering). leases come ordered by seat key, as seats do.
func seatRows(tenant, back string, seats []domain.Seat, leases []domain.Lease) []Row {
	bySeat := make(map[string][]domain.Lease, len(seats))
	for _, l := range leases {
		bySeat[l.SeatKey] = append(bySeat[l.SeatKey], l)
	}
	rows := make([]Row, 0, len(leases)+len(seats))
	for _, s := range seats {
		ls := bySeat[s.Key]
		if len(ls) == 0 {
			rows = append(rows, Row{Cells: []Cell{
				{T: or(s.User, "—")}, {T: "—"}, {T: "—"},
				{T: "lingering until " + fmtTime(s.HeldUntil)},
				{T: "—"}, {T: "—"}, {T: "—"}, {T: "—"}, {T: "—"},
			}})
			continue
		}
		for _, l := range ls {
			hw := l.HW
			if l.HWName != "" {
				hw += " (" + l.HWName + ")"
			}
			mode := l.Mode
			if l.SessionID != "" {
				mode = "session"
			}
			rows = append(rows, Row{
				Cells: []Cell{
					{T: or(l.User, "—")}, {T: or(hw, "—")}, {T: or(l.Client, "—")},
					{T: "held"},
					{T: l.ID}, {T: l.Item}, {T: mode}, {T: fmtTime(l.IssuedAt)}, {T: fmtTime(l.ExpiresAt)}},
				End:     endLeasePath(tenant, l.ID, back),
				EndWhat: "lease " + l.ID,
			})
		}
	}
	return rows
}

func endLeasePath(tenant, id, back string) string {
	return tenantPath(tenant) + "/leases/" + url.PathEscape(id) + "/end?back=" + url.QueryEscape(back)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// doneMessage is the notice an End leaves for the page it returns to.
func doneMessage(r *http.Request) string {
	q := r.URL.Query()
	switch {
	case q.Get("ended") != "":
		return "Ended " + q.Get("ended") + "."
	case q.Get("gone") != "":
		return "Nothing to end: " + q.Get("gone") + " had already ended."
	}
	return ""
}

// backTo is where an End returns: the page it was pressed on, only ever a /ui/ path.
func backTo(r *http.Request, def string) string {
	b := r.URL.Query().Get("back")
	if !strings.HasPrefix(b, "/ui/") || strings.HasPrefix(b, "//") || strings.ContainsAny(b, "\\\r\n") {
		return def
	}
	return b
}

func withNotice(back, key, value string) string {
	sep := "?"
	if strings.Contains(back, "?") {
		sep = "&"
	}
	return back + sep + key + "=" + url.QueryEscape(value)
}

type confirmData struct {
	What   string
	Until  string
	Action string
	Back   string
}

// endLease does what DELETE /admin/v1/tenants/{t}/leases/{id} does, with the same calls:
// a session's seat lease ends its sessions; any other lease is ended by the engine. A live
// offline checkout lease keeps counting until its exp unless forced, so the dashboard
// forces it, after a confirmation page that says so.
func (d *Dashboard) endLease(w http.ResponseWriter, r *http.Request) {
	snap, ok := d.tenant(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	tenant, id := snap.Tenant.Name, r.PathValue("id")
	back := backTo(r, tenantPath(tenant)+"/sessions")
	force := r.PostFormValue("force") == "true"
	l, err := store.Read(ctx, d.deps.Store, func(tx store.Tx) (*domain.Lease, error) {
		l, err := tx.FindLease(ctx, tenant, id)
		if err != nil || !l.Live(tx.Now()) {
			return nil, err
		}
		return l, nil
	})
	if err != nil && !errors.Is(err, domain.ErrNotFound) {
		d.internalError(w, r, err)
		return
	}
	if l == nil {
		http.Redirect(w, r, withNotice(back, "gone", "lease "+id), http.StatusSeeOther)
		return
	}
	if l.Mode == domain.ModeCheckout && !force {
		d.render(w, r, http.StatusOK, "confirm", page{Title: "End an offline lease?", Tenant: tenant, Data: confirmData{
			What: "lease " + id, Until: fmtTime(l.ExpiresAt),
			Action: endLeasePath(tenant, id, back), Back: back,
		}})
		return
	}
	// The admin API's rule, from its one owner: a session's seat lease ends its sessions,
	// any other lease ends alone.
	res, err := d.deps.Sessions.EndLease(domain.WithEndReason(ctx, domain.EndAdmin), tenant, id, force)
	if err != nil {
		d.internalError(w, r, err)
		return
	}
	if !res.Found {
		http.Redirect(w, r, withNotice(back, "gone", "lease "+id), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, withNotice(back, "ended", "lease "+id), http.StatusSeeOther)
}

type sessionsData struct {
	Tenant string
	Table  Table
	Count  int
	Capped bool
}

// sessionsPage lists the tenant's live sessions, each with an End button.
func (d *Dashboard) sessionsPage(w http.ResponseWriter, r *http.Request) {
	snap, ok := d.tenant(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	tenant := snap.Tenant.Name
	self := tenantPath(tenant) + "/sessions"
	data := sessionsData{Tenant: tenant, Table: Table{ID: "sessions", Empty: "No live session."}}
	err := d.deps.Store.View(ctx, func(tx store.Tx) error {
		now := tx.Now()
		list, err := tx.ListSessions(ctx, tenant, store.LeaseFilter{Limit: maxSessionsShown})
		if err != nil {
			return err
		}
		data.Capped = len(list) == maxSessionsShown
		for _, s := range list {
			if !s.Live(now) {
				continue // the sweeper has not reached it yet; it holds nothing
			}
			seat := Cell{T: "no seat"}
			if s.LeaseRoot != "" {
				seat = Cell{T: s.LeaseLicense, Href: licensePath(tenant, s.LeaseLicense)}
			}
			data.Table.Rows = append(data.Table.Rows, Row{
				Cells: []Cell{{T: s.ID}, {T: or(s.User, "—")}, {T: or(s.Client, "—")}, {T: or(s.Device, "—")},
					{T: fmtTime(s.CreatedAt)}, {T: fmtTime(s.LastUsedAt)}, {T: fmtTime(s.ExpiresAt)}, seat},
				End:     tenantPath(tenant) + "/sessions/" + url.PathEscape(s.ID) + "/end?back=" + url.QueryEscape(self),
				EndWhat: "session " + s.ID,
			})
		}
		data.Count = len(data.Table.Rows)
		return nil
	})
	if err != nil {
		d.internalError(w, r, err)
		return
	}
	count := strconv.Itoa(data.Count) + " live sessions"
	if wantsJSON(r) {
		writeLive(w, live{Tables: tablesOf(data.Table), Text: map[string]string{"session-count": count}})
		return
	}
	d.render(w, r, http.StatusOK, "sessions", page{Title: "Sessions of " + tenant, Tenant: tenant,
		Live: self + "?format=json", Message: doneMessage(r), Data: struct {
			sessionsData
			CountText string
		}{data, count}})
}

// endSession does what DELETE /admin/v1/tenants/{t}/sessions/{id} does: the session ends
// and its seat is freed at once.
func (d *Dashboard) endSession(w http.ResponseWriter, r *http.Request) {
	snap, ok := d.tenant(w, r)
	if !ok {
		return
	}
	tenant, id := snap.Tenant.Name, r.PathValue("id")
	back := backTo(r, tenantPath(tenant)+"/sessions")
	ended, err := d.deps.Sessions.End(domain.WithEndReason(r.Context(), domain.EndAdmin), tenant, id, false)
	if err != nil {
		d.internalError(w, r, err)
		return
	}
	if !ended {
		http.Redirect(w, r, withNotice(back, "gone", "session "+id), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, withNotice(back, "ended", "session "+id), http.StatusSeeOther)
}
