package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

const adminUsage = `usage: leasehold admin [--url URL] [--token TOKEN] COMMAND
  apply FILE                 apply a configuration file's tenants to the running server
  get PATH                   GET /admin/v1/PATH
  post PATH [JSON|@FILE]     POST a JSON body
  patch PATH JSON|@FILE      PATCH (only the fields given change)
  put PATH JSON|@FILE        PUT (replace)
  delete PATH                DELETE
The token defaults to $LEASEHOLD_ADMIN_TOKEN, the URL to $LEASEHOLD_URL or http://127.0.0.1:8080.
Example: leasehold admin patch tenants/acme/clients/jim2-app '{"enabled": false}'
`

func admin(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", envOr("LEASEHOLD_URL", "http://127.0.0.1:8080"), "server base URL")
	token := fs.String("token", os.Getenv("LEASEHOLD_ADMIN_TOKEN"), "admin token")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rest := fs.Args()
	if len(rest) == 0 || rest[0] == "help" {
		fmt.Fprint(stdout, adminUsage)
		return 0
	}
	var method, path string
	var body []byte
	switch cmd := rest[0]; cmd {
	case "apply":
		if len(rest) != 2 {
			fmt.Fprint(stderr, adminUsage)
			return 2
		}
		data, err := os.ReadFile(rest[1])
		if err != nil {
			fmt.Fprintln(stderr, "leasehold:", err)
			return 1
		}
		method, path, body = http.MethodPost, "apply", data
	case "get", "delete":
		if len(rest) != 2 {
			fmt.Fprint(stderr, adminUsage)
			return 2
		}
		method, path = strings.ToUpper(cmd), rest[1]
	case "post", "patch", "put":
		if len(rest) < 2 || len(rest) > 3 || (cmd != "post" && len(rest) != 3) {
			fmt.Fprint(stderr, adminUsage)
			return 2
		}
		method, path = strings.ToUpper(cmd), rest[1]
		if len(rest) == 3 {
			b, err := bodyArg(rest[2])
			if err != nil {
				fmt.Fprintln(stderr, "leasehold:", err)
				return 1
			}
			body = b
		}
	default:
		fmt.Fprintf(stderr, "leasehold: unknown admin command %q\n%s", cmd, adminUsage)
		return 2
	}
	url := strings.TrimRight(*base, "/") + "/admin/v1/" + strings.TrimLeft(path, "/")
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		fmt.Fprintln(stderr, "leasehold:", err)
		return 1
	}
	req.Header.Set("Authorization", "Bearer "+*token)
	if body != nil {
		if path == "apply" {
			req.Header.Set("Content-Type", "application/yaml")
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "leasehold:", err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(stdout, resp.Body)
	if resp.StatusCode >= 300 {
		fmt.Fprintf(stderr, "leasehold: %s %s: %s\n", method, url, resp.Status)
		return 1
	}
	return 0
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
