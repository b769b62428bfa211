package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

const header = `# actormq configuration
#
# This file was generated on the first run of actormq with every setting at
# its default. Edit it and restart the broker. A key you delete keeps its
# default; delete the whole file to have it generated again. Unknown keys are
# errors, so a typo cannot go unnoticed.
#
# Every key is described, with its range, in docs/CONFIG.md.
# Durations are strings with a unit: "500ms", "10s", "1m30s", "24h".
`

// tlsExample shows the keys a default file does not use, so users find them
// without opening the reference. It is all comments: it decodes to nothing.
const tlsExample = `# A TLS listener (MQTT over TLS, usually port 8883) looks like this:
# [[listeners]]
# name = "mqtts"
# kind = "tls"
# address = ":8883"
# protocol = "3.1.1"
# tls_cert = "/etc/actormq/cert.pem"
# tls_key = "/etc/actormq/key.pem"
# tls_client_ca = ""          # needed for tls_client_auth = "optional" or "required"
# tls_client_auth = "none"
# use_cn_as_username = false
`

// Generate returns the file written on first run: every key at its default,
// each with a one-line comment taken from the struct tags, so the file and
// the types cannot drift apart. Parse(Generate()) equals Default().
//
// It is written by hand rather than with toml.Marshal for two reasons: a
// listener shows only the keys its kind uses, and strings come out in the
// usual double quotes.
func Generate() []byte {
	var b strings.Builder
	b.WriteString(header)
	cfg := Default()
	v := reflect.ValueOf(cfg)
	for _, sec := range sections() {
		b.WriteString("\n# " + sec.comment + "\n")
		if sec.name == "listeners" {
			for _, l := range cfg.Listeners {
				b.WriteString("[[listeners]]\n")
				writeKeys(&b, reflect.ValueOf(l), l.uses)
				b.WriteString("\n")
			}
			b.WriteString(tlsExample)
			continue
		}
		b.WriteString("[" + sec.name + "]\n")
		writeKeys(&b, v.Field(sec.index), func(string) bool { return true })
	}
	return []byte(b.String())
}

type section struct {
	name, comment string
	index         int // field index in Config
}

func sections() []section {
	t := reflect.TypeOf(Config{})
	var out []section
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		out = append(out, section{name, f.Tag.Get("comment"), i})
	}
	return out
}

// uses says whether a key is worth writing for this listener's kind.
func (l Listener) uses(key string) bool {
	switch key {
	case "path":
		return isWebSocket(l.Kind)
	case "tls_cert", "tls_key", "tls_client_ca", "tls_client_auth", "use_cn_as_username":
		return isTLS(l.Kind)
	}
	return true
}

// writeKeys writes the fields of a struct value as "# comment\nkey = value".
func writeKeys(b *strings.Builder, v reflect.Value, keep func(string) bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if !keep(name) {
			continue
		}
		if c := f.Tag.Get("comment"); c != "" {
			b.WriteString("# " + c + "\n")
		}
		fmt.Fprintf(b, "%s = %s\n", name, tomlValue(v.Field(i)))
	}
}

func tomlValue(v reflect.Value) string {
	if d, ok := v.Interface().(Duration); ok {
		return tomlString(d.String())
	}
	switch v.Kind() {
	case reflect.String:
		return tomlString(v.String())
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int64, reflect.Int32:
		return strconv.FormatInt(v.Int(), 10)
	}
	panic("config: no TOML form for " + v.Type().String()) // a new field type needs a case here
}

// tomlString quotes s as a TOML basic string. Go's strconv.Quote is close but
// writes \x.. escapes, which TOML does not have.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
