package server

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/build"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// bodySite is one place in the package's code where a JSON body is written or read.
type bodySite struct {
	pos  string
	fn   string // the enclosing function: "name" or "recv.name"
	typ  types.Type
	call string
}

// jsonBodySites type-checks this package's non-test files (against the export data of its
// dependencies, from the build cache) and returns every value handed to writeJSON and every
// value json.Unmarshal or a json.Decoder decodes into.
func jsonBodySites(t *testing.T) []bodySite {
	t.Helper()
	args := []string{"list", "-export", "-deps", "-json=ImportPath,Export"}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, ".")...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	exports := map[string]string{}
	for dec := json.NewDecoder(bytes.NewReader(out)); dec.More(); {
		var p struct{ ImportPath, Export string }
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		exports[p.ImportPath] = p.Export
	}
	fset := token.NewFileSet()
	var files []*ast.File
	names, _ := filepath.Glob("*.go")
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		if ok, err := build.Default.MatchFile(".", name); err != nil || !ok {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	conf := types.Config{Importer: importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		return os.Open(exports[path])
	})}
	info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}, Uses: map[*ast.Ident]types.Object{}}
	if _, err := conf.Check("github.com/leasehold/leasehold/internal/server", fset, files, info); err != nil {
		t.Fatalf("type-check: %v", err)
	}
	var sites []bodySite
	for _, f := range files {
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			sites = append(sites, callSites(fset, info, fd)...)
		}
	}
	sort.Slice(sites, func(i, j int) bool { return sites[i].pos < sites[j].pos })
	return sites
}

// callSites is jsonBodySites for one function.
func callSites(fset *token.FileSet, info *types.Info, fd *ast.FuncDecl) []bodySite {
	fn := fd.Name.Name
	if fd.Recv != nil && len(fd.Recv.List) == 1 {
		rt := fd.Recv.List[0].Type
		if st, ok := rt.(*ast.StarExpr); ok {
			rt = st.X
		}
		if id, ok := rt.(*ast.Ident); ok && id.Name != "Server" {
			fn = id.Name + "." + fn
		}
	}
	var sites []bodySite
	{
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			var arg ast.Expr
			name := ""
			switch fn := call.Fun.(type) {
			case *ast.Ident:
				if fn.Name == "writeJSON" && len(call.Args) == 3 {
					arg, name = call.Args[2], "writeJSON"
				}
			case *ast.SelectorExpr:
				obj := info.Uses[fn.Sel]
				if obj == nil || obj.Pkg() == nil || obj.Pkg().Path() != "encoding/json" {
					break
				}
				switch fn.Sel.Name {
				case "Unmarshal":
					arg, name = call.Args[1], "json.Unmarshal"
				case "Decode":
					arg, name = call.Args[0], "json.Decoder.Decode"
				case "Marshal":
					arg, name = call.Args[0], "json.Marshal"
				}
			}
			if arg == nil {
				return true
			}
			typ := info.Types[arg].Type
			if name != "writeJSON" && name != "json.Marshal" {
				if p, ok := typ.(*types.Pointer); ok {
					typ = p.Elem()
				}
			}
			sites = append(sites, bodySite{pos: fset.Position(arg.Pos()).String(), fn: fn, typ: typ, call: name})
			return true
		})
	}
	return sites
}
