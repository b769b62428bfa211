package hostile

// The codec's fuzz corpora, read where they live so that this suite replays whatever the codec's
// tests grow to: the seed tables FuzzDecode and FuzzReadPacket start from (addSeeds in
// codec/fuzz_test.go: every fixture and malformed case) and the inputs the fuzzer kept in
// codec/testdata/fuzz. The tables are Go source in package codec's tests, which no other
// package can import, so their raw-packet expressions are evaluated here from the syntax tree:
// the byte builders of codec/helpers_test.go (by, str, u16b, u32b, vbi, pkt, props, cat) are
// implemented after §1.5 of the specification, and helpers that are one return statement
// (connect5, pub5, ...) are expanded. An expression this evaluator does not know fails the
// test, naming it, so a seed is never skipped silently.

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/actormq/actormq/codec"
)

const codecDir = "../../codec"

// seed is one input of the corpora: v is the version the codec's tests decode it with, 0 when
// none (the fuzzer's files, and the cases about the state before CONNECT).
type seed struct {
	name string
	v    codec.Version
	raw  []byte
}

// codecSeeds evaluates the seed tables that addSeeds adds.
func codecSeeds(t testing.TB) []seed {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(codecDir, "*_test.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("codec test sources not found in %s: %v", codecDir, err)
	}
	ev := &evaluator{funcs: map[string]*ast.FuncDecl{}}
	vars := map[string]ast.Expr{}
	structs := map[string]*ast.StructType{}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					ev.funcs[d.Name.Name] = d
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.ValueSpec:
						for i, n := range s.Names {
							if i < len(s.Values) {
								vars[n.Name] = s.Values[i]
							}
						}
					case *ast.TypeSpec:
						if st, ok := s.Type.(*ast.StructType); ok {
							structs[s.Name.Name] = st
						}
					}
				}
			}
		}
	}
	add := ev.funcs["addSeeds"]
	if add == nil {
		t.Fatal("codec/fuzz_test.go has no addSeeds: update seeds_test.go to where the fuzz seeds come from")
	}
	// The tables are the package-level variables addSeeds mentions.
	var tables []string
	seen := map[string]bool{}
	ast.Inspect(add.Body, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && vars[id.Name] != nil && !seen[id.Name] {
			seen[id.Name] = true
			tables = append(tables, id.Name)
		}
		return true
	})
	if len(tables) == 0 {
		t.Fatal("addSeeds mentions no seed table")
	}
	var out []seed
	for _, table := range tables {
		lit, ok := vars[table].(*ast.CompositeLit)
		arr, ok2 := lit.Type.(*ast.ArrayType)
		if !ok || !ok2 {
			t.Fatalf("seed table %s is not a slice literal", table)
		}
		elt, _ := arr.Elt.(*ast.Ident)
		if elt == nil || structs[elt.Name] == nil {
			t.Fatalf("seed table %s: element type not found", table)
		}
		fields := fieldNames(structs[elt.Name])
		for i, e := range lit.Elts {
			row, ok := e.(*ast.CompositeLit)
			if !ok {
				t.Fatalf("%s[%d] is not a composite literal", table, i)
			}
			get := func(field string) ast.Expr {
				for j, x := range row.Elts {
					if kv, ok := x.(*ast.KeyValueExpr); ok {
						if k, _ := kv.Key.(*ast.Ident); k != nil && k.Name == field {
							return kv.Value
						}
					} else if j < len(fields) && fields[j] == field {
						return x
					}
				}
				return nil
			}
			s := seed{name: fmt.Sprintf("%s[%d]", table, i)}
			if x, ok := get("name").(*ast.BasicLit); ok {
				s.name, _ = strconv.Unquote(x.Value)
			}
			switch x := get("v").(type) {
			case *ast.Ident:
				v, ok := map[string]codec.Version{"V31": codec.V31, "V311": codec.V311, "V5": codec.V5}[x.Name]
				if !ok {
					t.Fatalf("%s: unknown version %s", s.name, x.Name)
				}
				s.v = v
			case *ast.BasicLit: // 0: no version yet
			default:
				t.Fatalf("%s: no version field", s.name)
			}
			raw := get("raw")
			if raw == nil {
				t.Fatalf("%s: no raw field", s.name)
			}
			val, err := ev.eval(raw, nil)
			if err != nil {
				t.Fatalf("%s (%s): %v", s.name, fset.Position(raw.Pos()), err)
			}
			b, ok := val.([]byte)
			if !ok {
				t.Fatalf("%s: raw is %T, not bytes", s.name, val)
			}
			s.raw = b
			out = append(out, s)
		}
	}
	return out
}

func fieldNames(st *ast.StructType) []string {
	var names []string
	for _, f := range st.Fields.List {
		for _, n := range f.Names {
			names = append(names, n.Name)
		}
	}
	return names
}

// fuzzFiles reads the corpus files under codec/testdata/fuzz ("go test fuzz v1" with one
// []byte argument).
func fuzzFiles(t testing.TB) []seed {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(codecDir, "testdata", "fuzz", "*", "*"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fuzz corpus files under %s/testdata/fuzz: %v", codecDir, err)
	}
	sort.Strings(paths)
	var out []seed
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 1<<20)
		if !sc.Scan() || sc.Text() != "go test fuzz v1" {
			t.Fatalf("%s: not a Go fuzz corpus file", p)
		}
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			inner, ok := strings.CutPrefix(line, "[]byte(")
			inner, ok2 := strings.CutSuffix(inner, ")")
			if !ok || !ok2 {
				t.Fatalf("%s: %q is not a []byte argument", p, line)
			}
			s, err := strconv.Unquote(inner)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			rel, _ := filepath.Rel(filepath.Join(codecDir, "testdata", "fuzz"), p)
			out = append(out, seed{name: rel, raw: []byte(s)})
		}
	}
	return out
}

// evaluator computes the raw-packet expressions of the seed tables. Values are []byte, int64,
// string, or []any for a variadic parameter passed on with "...".
type evaluator struct {
	funcs map[string]*ast.FuncDecl
}

// constants of package codec the tables use.
var codecConstants = map[string]int64{
	"MaxSubscriptionIdentifier": codec.MaxSubscriptionIdentifier,
	"MaxPacketSize":             codec.MaxPacketSize,
}

func (ev *evaluator) eval(x ast.Expr, env map[string]any) (any, error) {
	switch x := x.(type) {
	case *ast.ParenExpr:
		return ev.eval(x.X, env)
	case *ast.BasicLit:
		switch x.Kind {
		case token.INT:
			return strconv.ParseInt(x.Value, 0, 64)
		case token.CHAR:
			s, err := strconv.Unquote(x.Value)
			if err != nil {
				return nil, err
			}
			return int64([]rune(s)[0]), nil
		case token.STRING:
			return strconv.Unquote(x.Value)
		}
	case *ast.Ident:
		if v, ok := env[x.Name]; ok {
			return v, nil
		}
		if v, ok := codecConstants[x.Name]; ok {
			return v, nil
		}
	case *ast.UnaryExpr:
		v, err := ev.int(x.X, env)
		if err == nil && x.Op == token.SUB {
			return -v, nil
		}
	case *ast.BinaryExpr:
		a, err := ev.int(x.X, env)
		if err != nil {
			return nil, err
		}
		b, err := ev.int(x.Y, env)
		if err != nil {
			return nil, err
		}
		switch x.Op {
		case token.ADD:
			return a + b, nil
		case token.SUB:
			return a - b, nil
		case token.MUL:
			return a * b, nil
		case token.OR:
			return a | b, nil
		case token.AND:
			return a & b, nil
		case token.SHL:
			return a << b, nil
		case token.SHR:
			return a >> b, nil
		}
	case *ast.CompositeLit: // []byte{...}
		if isByteSlice(x.Type) {
			var out []byte
			for _, e := range x.Elts {
				v, err := ev.int(e, env)
				if err != nil {
					return nil, err
				}
				out = append(out, byte(v))
			}
			return out, nil
		}
	case *ast.CallExpr:
		return ev.call(x, env)
	}
	return nil, fmt.Errorf("cannot evaluate %T %s", x, exprString(x))
}

func (ev *evaluator) int(x ast.Expr, env map[string]any) (int64, error) {
	v, err := ev.eval(x, env)
	if err != nil {
		return 0, err
	}
	n, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("%s is %T, want a number", exprString(x), v)
	}
	return n, nil
}

// args evaluates a call's arguments, spreading a variadic list passed on with "...".
func (ev *evaluator) args(x *ast.CallExpr, env map[string]any) ([]any, error) {
	var out []any
	for i, a := range x.Args {
		v, err := ev.eval(a, env)
		if err != nil {
			return nil, err
		}
		if list, ok := v.([]any); ok && x.Ellipsis.IsValid() && i == len(x.Args)-1 {
			out = append(out, list...)
			continue
		}
		out = append(out, v)
	}
	return out, nil
}

func (ev *evaluator) call(x *ast.CallExpr, env map[string]any) (any, error) {
	if isByteSlice(x.Fun) && len(x.Args) == 1 { // []byte("...")
		v, err := ev.eval(x.Args[0], env)
		if s, ok := v.(string); ok {
			return []byte(s), err
		}
		return nil, fmt.Errorf("cannot convert %T to []byte", v)
	}
	if sel, ok := x.Fun.(*ast.SelectorExpr); ok {
		if pkg, _ := sel.X.(*ast.Ident); pkg != nil && pkg.Name == "bytes" && sel.Sel.Name == "Repeat" && len(x.Args) == 2 {
			b, err := ev.eval(x.Args[0], env)
			if err != nil {
				return nil, err
			}
			n, err := ev.int(x.Args[1], env)
			if err != nil {
				return nil, err
			}
			if bb, ok := b.([]byte); ok {
				return bytes.Repeat(bb, int(n)), nil
			}
		}
		return nil, fmt.Errorf("cannot evaluate call %s", exprString(x))
	}
	fn, ok := x.Fun.(*ast.Ident)
	if !ok {
		return nil, fmt.Errorf("cannot evaluate call %s", exprString(x))
	}
	args, err := ev.args(x, env)
	if err != nil {
		return nil, err
	}
	if b, ok, err := builder(fn.Name, args); ok {
		return b, err
	}
	// A helper that is one return statement: bind its parameters and evaluate its result.
	d := ev.funcs[fn.Name]
	if d == nil || len(d.Body.List) != 1 {
		return nil, fmt.Errorf("cannot evaluate %s: not a byte builder nor a one-statement helper", fn.Name)
	}
	ret, ok := d.Body.List[0].(*ast.ReturnStmt)
	if !ok || len(ret.Results) != 1 {
		return nil, fmt.Errorf("cannot evaluate %s: its body is not one return", fn.Name)
	}
	inner := map[string]any{}
	i := 0
	for _, f := range d.Type.Params.List {
		_, variadic := f.Type.(*ast.Ellipsis)
		for _, n := range f.Names {
			if variadic {
				inner[n.Name] = append([]any(nil), args[min(i, len(args)):]...)
				i = len(args)
				continue
			}
			if i >= len(args) {
				return nil, fmt.Errorf("%s: too few arguments", fn.Name)
			}
			inner[n.Name] = args[i]
			i++
		}
	}
	return ev.eval(ret.Results[0], inner)
}

// builder implements the byte builders of codec/helpers_test.go from the specification: a
// Two Byte Integer and a Four Byte Integer are big-endian (§1.5.2, §1.5.3), a UTF-8 Encoded
// String and Binary Data have a two-byte length prefix (§1.5.4, §1.5.6), a Variable Byte
// Integer carries 7 bits per byte, least significant first, the high bit meaning "more"
// (§1.5.5); a packet is its first byte, its Remaining Length and its body (§2.1.1), a property
// block its Property Length and its properties (§2.2.2.1).
func builder(name string, args []any) ([]byte, bool, error) {
	bs := func() ([]byte, error) { // args as byte slices, concatenated
		var out []byte
		for _, a := range args {
			b, ok := a.([]byte)
			if !ok {
				return nil, fmt.Errorf("%s: argument %T, want bytes", name, a)
			}
			out = append(out, b...)
		}
		return out, nil
	}
	num := func(i int) (int64, error) {
		if i >= len(args) {
			return 0, fmt.Errorf("%s: too few arguments", name)
		}
		n, ok := args[i].(int64)
		if !ok {
			return 0, fmt.Errorf("%s: argument %T, want a number", name, args[i])
		}
		return n, nil
	}
	switch name {
	case "cat":
		b, err := bs()
		return b, true, err
	case "by":
		out := make([]byte, len(args))
		for i := range args {
			n, err := num(i)
			if err != nil {
				return nil, true, err
			}
			out[i] = byte(n)
		}
		return out, true, nil
	case "str":
		if len(args) != 1 {
			return nil, true, fmt.Errorf("str: %d arguments", len(args))
		}
		s, ok := args[0].(string)
		if !ok {
			return nil, true, fmt.Errorf("str: argument %T, want a string", args[0])
		}
		return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...), true, nil
	case "u16b":
		n, err := num(0)
		return []byte{byte(n >> 8), byte(n)}, true, err
	case "u32b":
		n, err := num(0)
		return []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, true, err
	case "vbi":
		n, err := num(0)
		return varint(int(n)), true, err
	case "pkt":
		b0, err := num(0)
		if err != nil {
			return nil, true, err
		}
		args = args[1:]
		body, err := bs()
		return append(append([]byte{byte(b0)}, varint(len(body))...), body...), true, err
	case "props":
		body, err := bs()
		return append(varint(len(body)), body...), true, err
	}
	return nil, false, nil
}

// varint is a Variable Byte Integer (§1.5.5).
func varint(x int) []byte {
	var out []byte
	for {
		b := byte(x & 0x7F)
		x >>= 7
		if x > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if x == 0 {
			return out
		}
	}
}

func isByteSlice(x ast.Expr) bool {
	arr, ok := x.(*ast.ArrayType)
	if !ok || arr.Len != nil {
		return false
	}
	id, ok := arr.Elt.(*ast.Ident)
	return ok && id.Name == "byte"
}

func exprString(x ast.Expr) string {
	var b strings.Builder
	_ = printer.Fprint(&b, token.NewFileSet(), x)
	return b.String()
}
