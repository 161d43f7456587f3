package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// adminOptions are the flags every `leasehold admin` command shares.
type adminOptions struct {
	url, token, tenant, output string
	stdout, stderr             io.Writer
}

// adminKind is an object kind of the admin API and how a table shows it.
type adminKind struct {
	name, singular string
	columns        []string
}

var adminKinds = []adminKind{
	{"organizations", "organization", []string{"id", "name"}},
	{"users", "user", []string{"username", "organization", "enabled"}},
	{"clients", "client", []string{"client_id", "user", "organization", "enabled", "grant_types", "scopes"}},
	{"products", "product", []string{"name", "items"}},
	{"models", "license model", []string{"name", "anchors", "sessions_per_seat", "lease_chaining", "online_lease", "linger"}},
	{"licenses", "license", []string{"id", "product", "items", "model", "seats", "owner", "valid_until", "active"}},
	{"webhooks", "webhook", []string{"id", "url", "events", "retry_for"}},
}

var (
	tenantColumns  = []string{"name", "default", "dialects"}
	sessionColumns = []string{"id", "user", "client", "kind", "seat", "license", "last_used_at", "expires_at"}
	leaseColumns   = []string{"id", "license", "item", "user", "client", "hw", "mode", "expires_at"}
	usageColumns   = []string{"at", "event", "license", "item", "user", "client", "hw", "code", "overage", "duration_s"}
)

func adminCommand(stdout, stderr io.Writer) *cobra.Command {
	o := &adminOptions{stdout: stdout, stderr: stderr}
	cmd := group(&cobra.Command{
		Use:   "admin",
		Short: "Drive a running server's admin API (/admin/v1)",
		Long: `Drive a running server's admin API (/admin/v1): objects, live sessions and leases, usage.

The server is --url (env ` + urlEnv + `, default http://127.0.0.1:8080), the token --token (env
` + tokenEnv + `). Commands of one tenant act on --tenant (env ` + tenantEnv + `), else on the
server's default tenant. Tables are the default output; -o json or -o yaml show every field.`,
		Example: `  export LEASEHOLD_ADMIN_TOKEN=demo-admin-token-not-for-production
  leasehold admin licenses list
  leasehold admin leases list --user alice -o json
  leasehold admin clients disable demo-app
  leasehold admin usage --from 2026-12-01T00:00:00Z -o csv
  leasehold admin apply examples/demo.yaml
  leasehold admin get tenants/acme/sessions`,
	})
	pf := cmd.PersistentFlags()
	// The environment is read when a command runs, not as flag defaults: help would print
	// the token.
	pf.StringVar(&o.url, "url", "", "server base URL (env "+urlEnv+"; default http://127.0.0.1:8080)")
	pf.StringVar(&o.token, "token", "", "admin token (env "+tokenEnv+")")
	pf.StringVarP(&o.tenant, "tenant", "t", "", "tenant (env "+tenantEnv+"; default: the server's default tenant)")
	pf.StringVarP(&o.output, "output", "o", "", "output format: table, json or yaml (raw requests: the server's JSON as it is)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))

	cmd.PersistentPreRunE = func(c *cobra.Command, _ []string) error {
		switch o.output {
		case "", "table", "json", "yaml":
		case "csv":
			if c.Name() != "usage" {
				return usageErrorf("-o csv: only admin usage writes CSV; use table, json or yaml")
			}
		default:
			return usageErrorf("-o %q: use table, json or yaml", o.output)
		}
		o.fromEnv()
		return nil
	}
	cmd.AddCommand(tenantsCommand(o))
	for _, k := range adminKinds {
		cmd.AddCommand(objectsCommand(o, k))
	}
	cmd.AddCommand(sessionsCommand(o), leasesCommand(o), locksCommand(o), keysCommand(o), usageCommand(o), applyCommand(o))
	for _, m := range []string{"get", "post", "put", "patch", "delete"} {
		cmd.AddCommand(rawCommand(o, m))
	}
	return cmd
}

// objectsCommand is `leasehold admin KIND list|get|create|patch|delete …`.
func objectsCommand(o *adminOptions, k adminKind) *cobra.Command {
	cmd := group(&cobra.Command{Use: k.name, Short: "The tenant's " + k.name})
	path := func(id ...string) (string, error) {
		t, err := o.resolveTenant()
		if err != nil {
			return "", err
		}
		p := "tenants/" + url.PathEscape(t) + "/" + k.name
		for _, s := range id {
			p += "/" + url.PathEscape(s)
		}
		return p, nil
	}
	cmd.AddCommand(
		&cobra.Command{
			Use: "list", Short: "List the " + k.name, Args: args(cobra.NoArgs),
			RunE: func(*cobra.Command, []string) error {
				p, err := path()
				if err != nil {
					return err
				}
				return o.show(http.MethodGet, p, nil, k.name, k.columns)
			},
		},
		&cobra.Command{
			Use: "get ID", Short: "Show one " + k.singular, Args: args(cobra.ExactArgs(1)),
			RunE: func(_ *cobra.Command, a []string) error {
				p, err := path(a[0])
				if err != nil {
					return err
				}
				return o.show(http.MethodGet, p, nil, "", nil)
			},
		},
		&cobra.Command{
			Use: "create JSON|@FILE", Short: "Create a " + k.singular + " (JSON with the configuration file's field names)",
			Args: args(cobra.ExactArgs(1)),
			RunE: func(_ *cobra.Command, a []string) error {
				p, err := path()
				if err != nil {
					return err
				}
				body, err := bodyArg(a[0])
				if err != nil {
					return err
				}
				return o.show(http.MethodPost, p, body, "", nil)
			},
		},
		&cobra.Command{
			Use: "patch ID JSON|@FILE", Short: "Change the fields given of a " + k.singular,
			Example: fmt.Sprintf("  leasehold admin %s patch ID '{\"%s\": …}'", k.name, k.columns[len(k.columns)-1]),
			Args:    args(cobra.ExactArgs(2)),
			RunE: func(_ *cobra.Command, a []string) error {
				p, err := path(a[0])
				if err != nil {
					return err
				}
				body, err := bodyArg(a[1])
				if err != nil {
					return err
				}
				return o.show(http.MethodPatch, p, body, "", nil)
			},
		},
		&cobra.Command{
			Use: "delete ID", Short: "Delete a " + k.singular, Args: args(cobra.ExactArgs(1)),
			RunE: func(_ *cobra.Command, a []string) error {
				p, err := path(a[0])
				if err != nil {
					return err
				}
				return o.show(http.MethodDelete, p, nil, "", nil)
			},
		},
	)
	switch k.name {
	case "clients":
		for _, on := range []bool{true, false} {
			verb := map[bool]string{true: "enable", false: "disable"}[on]
			cmd.AddCommand(&cobra.Command{
				Use: verb + " CLIENT_ID", Short: strings.ToUpper(verb[:1]) + verb[1:] + " a client (disabled: its grants fail, its tokens stop working)",
				Args: args(cobra.ExactArgs(1)),
				RunE: func(_ *cobra.Command, a []string) error {
					p, err := path(a[0])
					if err != nil {
						return err
					}
					return o.show(http.MethodPatch, p, fmt.Appendf(nil, `{"enabled": %t}`, on), "", nil)
				},
			})
		}
	case "users":
		cmd.AddCommand(
			&cobra.Command{
				Use: "logout-all USERNAME", Short: "End every session of a user", Args: args(cobra.ExactArgs(1)),
				RunE: func(_ *cobra.Command, a []string) error {
					p, err := path(a[0], "logout-all")
					if err != nil {
						return err
					}
					return o.show(http.MethodPost, p, nil, "", nil)
				},
			},
			&cobra.Command{
				Use: "login-tokens USERNAME", Short: "List a user's login tokens", Args: args(cobra.ExactArgs(1)),
				RunE: func(_ *cobra.Command, a []string) error {
					p, err := path(a[0], "login-tokens")
					if err != nil {
						return err
					}
					return o.show(http.MethodGet, p, nil, "login_tokens", nil)
				},
			},
			&cobra.Command{
				Use: "revoke-login-tokens USERNAME [TOKEN_ID]", Short: "Revoke a user's login tokens (all, or one)",
				Args: args(cobra.RangeArgs(1, 2)),
				RunE: func(_ *cobra.Command, a []string) error {
					p, err := path(append([]string{a[0], "login-tokens"}, a[1:]...)...)
					if err != nil {
						return err
					}
					return o.show(http.MethodDelete, p, nil, "", nil)
				},
			},
		)
	}
	complete := o.completeIDs(k.name, idField(k.name))
	for _, c := range cmd.Commands() {
		if first, _, _ := strings.Cut(strings.TrimPrefix(c.Use, c.Name()+" "), " "); first == "ID" || first == "CLIENT_ID" || first == "USERNAME" {
			c.ValidArgsFunction = complete
		}
	}
	return cmd
}

func tenantsCommand(o *adminOptions) *cobra.Command {
	cmd := group(&cobra.Command{Use: "tenants", Short: "Tenants"})
	cmd.AddCommand(
		&cobra.Command{
			Use: "list", Short: "List the tenants", Args: args(cobra.NoArgs),
			RunE: func(*cobra.Command, []string) error {
				return o.show(http.MethodGet, "tenants", nil, "tenants", tenantColumns)
			},
		},
		&cobra.Command{
			Use: "get NAME", Short: "Show a tenant", Args: args(cobra.ExactArgs(1)),
			RunE: func(_ *cobra.Command, a []string) error {
				return o.show(http.MethodGet, "tenants/"+url.PathEscape(a[0]), nil, "", nil)
			},
		},
		&cobra.Command{
			Use: "create JSON|@FILE", Short: "Create a tenant", Args: args(cobra.ExactArgs(1)),
			RunE: func(_ *cobra.Command, a []string) error {
				body, err := bodyArg(a[0])
				if err != nil {
					return err
				}
				return o.show(http.MethodPost, "tenants", body, "", nil)
			},
		},
		&cobra.Command{
			Use: "patch NAME JSON|@FILE", Short: "Change the fields given of a tenant", Args: args(cobra.ExactArgs(2)),
			RunE: func(_ *cobra.Command, a []string) error {
				body, err := bodyArg(a[1])
				if err != nil {
					return err
				}
				return o.show(http.MethodPatch, "tenants/"+url.PathEscape(a[0]), body, "", nil)
			},
		},
		&cobra.Command{
			Use: "delete NAME", Short: "Delete a tenant and everything in it", Args: args(cobra.ExactArgs(1)),
			RunE: func(_ *cobra.Command, a []string) error {
				return o.show(http.MethodDelete, "tenants/"+url.PathEscape(a[0]), nil, "", nil)
			},
		},
	)
	return cmd
}

// liveCommand is `sessions` or `leases`: list (filters) and end.
func liveCommand(o *adminOptions, kind, short string, columns []string, endForce bool) *cobra.Command {
	cmd := group(&cobra.Command{Use: kind, Short: short})
	var user, license string
	list := &cobra.Command{
		Use: "list", Short: "List the live " + kind, Args: args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			t, err := o.resolveTenant()
			if err != nil {
				return err
			}
			q := url.Values{}
			if user != "" {
				q.Set("user", user)
			}
			if license != "" {
				q.Set("license", license)
			}
			p := "tenants/" + url.PathEscape(t) + "/" + kind
			if len(q) > 0 {
				p += "?" + q.Encode()
			}
			return o.show(http.MethodGet, p, nil, kind, columns)
		},
	}
	list.Flags().StringVar(&user, "user", "", "only this user's")
	list.Flags().StringVar(&license, "license", "", "only those on this license id")
	var force bool
	end := &cobra.Command{
		Use: "end ID", Aliases: []string{"delete"}, Args: args(cobra.ExactArgs(1)),
		Short: "End one now: its seat is freed at once, with no linger",
		RunE: func(_ *cobra.Command, a []string) error {
			t, err := o.resolveTenant()
			if err != nil {
				return err
			}
			p := "tenants/" + url.PathEscape(t) + "/" + kind + "/" + url.PathEscape(a[0])
			if force {
				p += "?force=true"
			}
			return o.show(http.MethodDelete, p, nil, "", nil)
		},
	}
	if endForce {
		end.Flags().BoolVar(&force, "force", false, "end an offline (checkout) lease too, whose token would otherwise keep counting until it expires")
	}
	end.ValidArgsFunction = o.completeIDs(kind, "id")
	cmd.AddCommand(list, end)
	return cmd
}

func sessionsCommand(o *adminOptions) *cobra.Command {
	return liveCommand(o, "sessions", "Live sessions", sessionColumns, false)
}

func leasesCommand(o *adminOptions) *cobra.Command {
	return liveCommand(o, "leases", "Live leases", leaseColumns, true)
}

func locksCommand(o *adminOptions) *cobra.Command {
	cmd := group(&cobra.Command{Use: "locks", Short: "hw locks of models with hw_lock"})
	cmd.AddCommand(&cobra.Command{
		Use: "reset HW", Short: "Free a hardware id to consume a license of the model again", Args: args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			t, err := o.resolveTenant()
			if err != nil {
				return err
			}
			return o.show(http.MethodDelete, "tenants/"+url.PathEscape(t)+"/locks/"+url.PathEscape(a[0]), nil, "", nil)
		},
	})
	return cmd
}

func keysCommand(o *adminOptions) *cobra.Command {
	cmd := group(&cobra.Command{Use: "keys", Short: "The tenant's signing keys"})
	cmd.AddCommand(&cobra.Command{
		Use: "rotate", Short: "Sign with a new key from now on (the old one stays in the JWKS until its tokens expire)",
		Args: args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			t, err := o.resolveTenant()
			if err != nil {
				return err
			}
			return o.show(http.MethodPost, "tenants/"+url.PathEscape(t)+"/keys/rotate", nil, "", nil)
		},
	})
	return cmd
}

func usageCommand(o *adminOptions) *cobra.Command {
	var from, to string
	cmd := &cobra.Command{
		Use:   "usage",
		Short: "Consumption history: one row per grant, renewal, release, expiry and end",
		Long: `Consumption history of the tenant: one row per grant, renewal, release, expiry and end.
-o csv writes the server's CSV as it is (at,event,license,item,user,client,hw,hw_name,lease,code,overage,duration_s).`,
		Example: "  leasehold admin usage --from 2026-12-01T00:00:00Z --to 2026-12-02T00:00:00Z -o csv > usage.csv",
		Args:    args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			for name, v := range map[string]string{"from": from, "to": to} {
				if _, err := time.Parse(time.RFC3339, v); v != "" && err != nil {
					return usageErrorf("--%s %q: want an RFC 3339 time such as 2026-12-01T00:00:00Z", name, v)
				}
			}
			t, err := o.resolveTenant()
			if err != nil {
				return err
			}
			q := url.Values{"tenant": {t}, "format": {"json"}}
			if from != "" {
				q.Set("from", from)
			}
			if to != "" {
				q.Set("to", to)
			}
			if o.output == "csv" {
				q.Set("format", "csv")
				body, err := o.request(http.MethodGet, "usage?"+q.Encode(), nil)
				if err != nil {
					return err
				}
				_, err = o.stdout.Write(body)
				return err
			}
			return o.show(http.MethodGet, "usage?"+q.Encode(), nil, "usage", usageColumns)
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "start (RFC 3339)")
	cmd.Flags().StringVar(&to, "to", "", "end (RFC 3339)")
	return cmd
}

func applyCommand(o *adminOptions) *cobra.Command {
	var dry bool
	cmd := &cobra.Command{
		Use:   "apply FILE",
		Short: "Apply a configuration file's tenants to the running server",
		Long: `Apply a configuration file's tenants to the running server, object by object, as a start
does: an object is written only when its definition in the file changed since the file last
applied it. Objects not in the file are left alone. --dry-run lists what would be created
or updated, and writes nothing.`,
		Example: "  leasehold admin apply --dry-run examples/demo.yaml\n  leasehold admin apply examples/demo.yaml",
		Args:    args(cobra.ExactArgs(1)),
		RunE: func(_ *cobra.Command, a []string) error {
			data, err := os.ReadFile(a[0])
			if err != nil {
				return err
			}
			path := "apply"
			if dry {
				path += "?dry_run=true"
			}
			out, err := o.requestTyped(http.MethodPost, path, data, "application/yaml")
			if err != nil {
				return err
			}
			if o.output != "" && o.output != "table" {
				return render(o.stdout, o.output, out, "", nil)
			}
			return printApplyReport(o.stdout, out, dry)
		},
	}
	cmd.Flags().BoolVar(&dry, "dry-run", false, "list what would change, write nothing")
	return cmd
}

// printApplyReport prints an apply report as the changes it made (or, dry, would make),
// one per line, and the counts.
func printApplyReport(w io.Writer, body []byte, dry bool) error {
	var resp struct {
		Report struct {
			Created, Updated, Unchanged int
			Changes                     []struct{ Tenant, Kind, ID, Action string }
		} `json:"report"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return err
	}
	rep := resp.Report
	for _, c := range rep.Changes {
		mark := map[string]string{"created": "+", "updated": "~"}[c.Action]
		if c.Kind == "tenants" {
			fmt.Fprintf(w, "%s tenant %s\n", mark, c.ID)
		} else {
			fmt.Fprintf(w, "%s %s/%s/%s\n", mark, c.Tenant, c.Kind, c.ID)
		}
	}
	verb := "applied"
	if dry {
		verb = "would apply (dry run, nothing written)"
	}
	fmt.Fprintf(w, "%s: %d created, %d updated, %d unchanged\n", verb, rep.Created, rep.Updated, rep.Unchanged)
	return nil
}

// rawCommand sends one request to any admin path, for what the nouns do not cover.
func rawCommand(o *adminOptions, method string) *cobra.Command {
	use, n := method+" PATH", cobra.ExactArgs(1)
	switch method {
	case "post":
		use, n = method+" PATH [JSON|@FILE]", cobra.RangeArgs(1, 2)
	case "put", "patch":
		use, n = method+" PATH JSON|@FILE", cobra.ExactArgs(2)
	}
	return &cobra.Command{
		Use:     use,
		Short:   strings.ToUpper(method) + " /admin/v1/PATH (the server's JSON as it is, unless -o)",
		Example: "  leasehold admin " + method + " tenants/acme/clients/demo-app" + map[string]string{"patch": ` '{"enabled": false}'`, "put": " @client.json", "post": ""}[method],
		Args:    args(n),
		RunE: func(_ *cobra.Command, a []string) error {
			var body []byte
			if len(a) == 2 {
				b, err := bodyArg(a[1])
				if err != nil {
					return err
				}
				body = b
			}
			if o.output == "" {
				out, err := o.request(strings.ToUpper(method), a[0], body)
				if err != nil {
					return err
				}
				if len(out) > 0 && out[len(out)-1] != '\n' {
					out = append(out, '\n')
				}
				_, err = o.stdout.Write(out)
				return err
			}
			return o.show(strings.ToUpper(method), a[0], body, "", nil)
		},
	}
}

// fromEnv fills what the flags left empty from the environment.
func (o *adminOptions) fromEnv() {
	if o.url == "" {
		o.url = envOr(urlEnv, "http://127.0.0.1:8080")
	}
	if o.token == "" {
		o.token = os.Getenv(tokenEnv)
	}
	if o.tenant == "" {
		o.tenant = os.Getenv(tenantEnv)
	}
}

// completeIDs completes the first argument with the ids the server lists under
// tenants/{tenant}/{kind}, read from field. Shell completion runs no command hooks, hence
// fromEnv here.
func (o *adminOptions) completeIDs(kind, field string) cobra.CompletionFunc {
	return func(_ *cobra.Command, a []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(a) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		o.fromEnv()
		t, err := o.resolveTenant()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		body, err := o.request(http.MethodGet, "tenants/"+url.PathEscape(t)+"/"+kind, nil)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var m map[string][]map[string]any
		_ = json.Unmarshal(body, &m)
		var ids []cobra.Completion
		for _, row := range m[kind] {
			if id, ok := row[field].(string); ok {
				ids = append(ids, id)
			}
		}
		return ids, cobra.ShellCompDirectiveNoFileComp
	}
}

// idField is the field that names an object of a kind.
func idField(kind string) string {
	switch kind {
	case "users":
		return "username"
	case "clients":
		return "client_id"
	case "products", "models":
		return "name"
	}
	return "id"
}

// resolveTenant is --tenant, else the tenant the server marks default.
func (o *adminOptions) resolveTenant() (string, error) {
	if o.tenant != "" {
		return o.tenant, nil
	}
	body, err := o.request(http.MethodGet, "tenants", nil)
	if err != nil {
		return "", err
	}
	var list struct {
		Tenants []struct {
			Name    string `json:"name"`
			Default bool   `json:"default"`
		} `json:"tenants"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return "", fmt.Errorf("GET /admin/v1/tenants: %w", err)
	}
	for _, t := range list.Tenants {
		if t.Default {
			return t.Name, nil
		}
	}
	return "", usageErrorf("the server has no default tenant: name one with --tenant (or %s)", tenantEnv)
}

func (o *adminOptions) request(method, path string, body []byte) ([]byte, error) {
	return o.requestTyped(method, path, body, "application/json")
}

func (o *adminOptions) requestTyped(method, path string, body []byte, contentType string) ([]byte, error) {
	u := strings.TrimRight(o.url, "/") + "/admin/v1/" + strings.TrimLeft(path, "/")
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if o.token != "" {
		req.Header.Set("Authorization", "Bearer "+o.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error, Message string }
		msg := strings.TrimSpace(string(out))
		if json.Unmarshal(out, &e) == nil && e.Message != "" {
			msg = e.Message + " (" + e.Error + ")"
		}
		return nil, fmt.Errorf("%s %s: %s: %s", method, u, resp.Status, msg)
	}
	return out, nil
}

func (o *adminOptions) show(method, path string, body []byte, listKey string, columns []string) error {
	return o.showTyped(method, path, body, "application/json", listKey, columns)
}

// showTyped sends a request and prints its answer in the chosen format.
func (o *adminOptions) showTyped(method, path string, body []byte, contentType, listKey string, columns []string) error {
	out, err := o.requestTyped(method, path, body, contentType)
	if err != nil {
		return err
	}
	return render(o.stdout, o.output, out, listKey, columns)
}

// render prints a JSON answer as a table (the default), indented JSON or YAML. A table of a
// list (under listKey) has the given columns, else those of its first row; any other
// answer is a two-column table of its fields.
func render(w io.Writer, format string, data []byte, listKey string, columns []string) error {
	switch format {
	case "json":
		var b bytes.Buffer
		if err := json.Indent(&b, data, "", "  "); err != nil {
			return err
		}
		b.WriteByte('\n')
		_, err := w.Write(b.Bytes())
		return err
	case "yaml":
		y, err := yaml.JSONToYAML(data)
		if err != nil {
			return err
		}
		_, err = w.Write(y)
		return err
	case "", "table":
	default:
		return usageErrorf("-o %q: use table, json or yaml", format)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	if m, ok := v.(map[string]any); ok && listKey != "" {
		if rows, ok := m[listKey].([]any); ok {
			if len(rows) == 0 {
				fmt.Fprintf(tw, "(no %s)\n", strings.ReplaceAll(listKey, "_", " "))
				return nil
			}
			if len(columns) == 0 {
				columns = keysOf(rows[0])
			}
			fmt.Fprintln(tw, strings.ToUpper(strings.Join(columns, "\t")))
			for _, r := range rows {
				row, _ := r.(map[string]any)
				cells := make([]string, len(columns))
				for i, c := range columns {
					cells[i] = cell(row[c])
				}
				fmt.Fprintln(tw, strings.Join(cells, "\t"))
			}
			return nil
		}
	}
	m, ok := v.(map[string]any)
	if !ok {
		fmt.Fprintln(tw, cell(v))
		return nil
	}
	for _, k := range keysOf(m) {
		fmt.Fprintf(tw, "%s\t%s\n", k, cell(m[k]))
	}
	return nil
}

func keysOf(v any) []string {
	m, _ := v.(map[string]any)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// Identity first, as a reader looks for it.
	for _, id := range []string{"client_id", "username", "name", "id"} {
		if i := slices.Index(keys, id); i > 0 {
			keys = append([]string{id}, slices.Delete(keys, i, i+1)...)
		}
	}
	return keys
}

// cell is one table cell: strings as they are, lists joined with commas, anything else
// as compact JSON.
func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = cell(e)
		}
		return strings.Join(parts, ",")
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

func bodyArg(s string) ([]byte, error) {
	if strings.HasPrefix(s, "@") {
		return os.ReadFile(s[1:])
	}
	return []byte(s), nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
