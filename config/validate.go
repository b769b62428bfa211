package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ValidationError lists every problem found in a configuration, so that a
// user can fix them all in one edit. Parse also returns it for unknown keys,
// wrong types and syntax errors.
type ValidationError struct {
	// File is the file the configuration came from, "" when it was built in
	// code.
	File string
	// Problems are printable one-line descriptions, each naming the key and,
	// when known, prefixed with "file:line:".
	Problems []string
	// Omitted counts further problems left out of Problems: past 50 the file
	// is most likely not a configuration at all.
	Omitted int
}

func (e *ValidationError) Error() string {
	name := e.File
	if name == "" {
		name = "config"
	}
	if len(e.Problems) == 1 && e.Omitted == 0 {
		if e.File == "" {
			return name + ": " + e.Problems[0]
		}
		return e.Problems[0]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d problems:", name, len(e.Problems)+e.Omitted)
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p)
	}
	if e.Omitted > 0 {
		fmt.Fprintf(&b, "\n  ... and %d more", e.Omitted)
	}
	return b.String()
}

// issue is one validation problem. id names the value the way the position
// index of a parsed file does ("limits.max_qos", "listeners[1].address"), so
// Parse can put a line number in front of it.
type issue struct {
	id   string
	also string // for a relation between two keys: the other one, whose line serves if id has none
	text string
}

// Validate checks every value and every relation between values and reports
// all problems at once as a *ValidationError.
func (c *Config) Validate() error {
	issues := c.validate()
	if len(issues) == 0 {
		return nil
	}
	e := &ValidationError{}
	for _, is := range issues {
		e.Problems = append(e.Problems, is.text)
	}
	return e
}

// The largest sizes that become channel buffers: beyond this one connection
// could make the broker allocate gigabytes up front.
const maxBuffer = 1 << 20

// maxExpiry is the largest session expiry MQTT 5.0 can express, in seconds.
const maxExpiry = Duration(4294967295 * time.Second)

func (c *Config) validate() []issue {
	v := &validator{}
	v.listeners(c.Listeners, c.Console.Listen)

	l := c.Limits
	v.atLeast("limits.max_connections", l.MaxConnections, 1)
	v.atLeast("limits.max_sessions", l.MaxSessions, 1)
	if l.MaxSessions >= 1 && l.MaxConnections >= 1 && l.MaxSessions < l.MaxConnections {
		v.add("limits.max_sessions", "limits.max_sessions = %d: must be at least limits.max_connections (%d), since every connection has a session", l.MaxSessions, l.MaxConnections)
		v.issues[len(v.issues)-1].also = "limits.max_connections"
	}
	v.positive("limits.connect_timeout", l.ConnectTimeout)
	v.between("limits.max_packet_size", l.MaxPacketSize, 64, 268435460)
	v.betweenWhy("limits.max_client_id_length", l.MaxClientIDLength, 23, 65535, "MQTT requires servers to accept client ids of 23 bytes")
	v.between("limits.max_topic_length", l.MaxTopicLength, 1, 65535)
	v.between("limits.max_topic_levels", l.MaxTopicLevels, 1, 65535)
	v.atLeast("limits.max_subscriptions_per_client", l.MaxSubscriptionsPerClient, 1)

	m := c.MQTT
	v.between("mqtt.max_keep_alive", m.MaxKeepAlive, 1, 65535)
	v.between("mqtt.receive_maximum", m.ReceiveMaximum, 1, 65535)
	v.between("mqtt.topic_alias_maximum", m.TopicAliasMaximum, 0, 65535)
	v.between("mqtt.max_inflight", m.MaxInflight, 1, 65535)
	v.between("mqtt.max_qos", m.MaxQoS, 0, 2)

	s := c.Sessions
	if s.MaxSessionExpiry < 0 || s.MaxSessionExpiry > maxExpiry {
		v.add("sessions.max_session_expiry", "sessions.max_session_expiry = %q: must be between \"0s\" and %q (the most MQTT 5.0 can express)", s.MaxSessionExpiry, maxExpiry)
	}
	v.atLeast("sessions.max_queued_messages", s.MaxQueuedMessages, 2)
	v.choice("sessions.queue_drop_policy", s.QueueDropPolicy, dropPolicies)

	v.atLeastWhy("retained.max_messages", c.Retained.MaxMessages, 1, "to turn retained messages off set mqtt.retain_available = false")

	v.choice("store.sync", c.Store.Sync, syncModes)
	if c.Store.Persistence && strings.TrimSpace(c.Store.DataDir) == "" {
		v.add("store.data_dir", "store.data_dir is empty: name a directory for the store, or set store.persistence = false")
	}

	v.between("router.shards", c.Router.Shards, 1, 1024)
	v.between("router.credit_window", c.Router.CreditWindow, 2, maxBuffer)

	v.between("connections.writer_queue", c.Connections.WriterQueue, 2, maxBuffer)
	if c.Connections.WriterQueue >= 2 && c.MQTT.MaxInflight >= 1 && c.Connections.WriterQueue <= c.MQTT.MaxInflight {
		// A reconnecting client gets its whole inflight window at once, behind the CONNACK.
		v.add("connections.writer_queue", "connections.writer_queue = %d: must be larger than mqtt.max_inflight (%d), so a resumed session's inflight messages fit", c.Connections.WriterQueue, c.MQTT.MaxInflight)
		v.issues[len(v.issues)-1].also = "mqtt.max_inflight"
	}
	v.positive("connections.write_timeout", c.Connections.WriteTimeout)

	v.auth(c.Auth)

	if c.Console.Listen != "" {
		if _, _, msg := splitAddress(c.Console.Listen); msg != "" {
			v.add("console.listen", "console.listen = %q: %s (or \"\" to turn the console off)", short(c.Console.Listen), msg)
		}
	}
	v.between("supervision.max_restarts", c.Supervision.MaxRestarts, 1, 1000)
	v.positive("supervision.restart_window", c.Supervision.RestartWindow)
	if c.Console.SysInterval < 0 {
		v.add("console.sys_interval", "console.sys_interval = %q: must be \"0s\" (off) or longer", c.Console.SysInterval)
	}

	v.choice("log.level", c.Log.Level, logLevels)
	v.choice("log.format", c.Log.Format, logFormats)
	return v.issues
}

// auth checks the [auth] section. Files are not opened here: the broker reports a missing or
// broken file at start, naming it.
func (v *validator) auth(a Auth) {
	v.atLeast("auth.max_failed_logins_per_minute", a.MaxFailedLoginsPerMinute, 0)
	v.atLeast("auth.connect_rate", a.ConnectRate, 0)
	v.atLeast("auth.publish_rate", a.PublishRate, 0)
	v.atLeast("auth.publish_bytes_rate", a.PublishBytesRate, 0)
	if a.SCRAM && a.PasswordFile == "" {
		v.add("auth.scram", "auth.scram = true needs auth.password_file (SCRAM checks its entries)")
	}
}

type validator struct{ issues []issue }

func (v *validator) add(id, format string, args ...any) {
	v.issues = append(v.issues, issue{id: id, text: fmt.Sprintf(format, args...)})
}

func (v *validator) between(key string, n, lo, hi int) { v.betweenWhy(key, n, lo, hi, "") }

func (v *validator) betweenWhy(key string, n, lo, hi int, why string) {
	if n < lo || n > hi {
		v.add(key, "%s = %d: must be between %d and %d%s", key, n, lo, hi, because(why))
	}
}

func (v *validator) atLeast(key string, n, lo int) { v.atLeastWhy(key, n, lo, "") }

func (v *validator) atLeastWhy(key string, n, lo int, why string) {
	if n < lo {
		v.add(key, "%s = %d: must be at least %d%s", key, n, lo, because(why))
	}
}

func (v *validator) positive(key string, d Duration) {
	if d <= 0 {
		v.add(key, "%s = %q: must be longer than zero", key, d)
	}
}

func (v *validator) choice(key, s string, set []string) {
	if !oneOf(s, set) {
		v.add(key, "%s = %q: must be %s", key, short(s), listWords(set))
	}
}

func because(why string) string {
	if why == "" {
		return ""
	}
	return " (" + why + ")"
}

// endpoint is an address something listens on, for finding two that would
// fight over a port.
type endpoint struct {
	who      string // "listener #2 \"mqtt5\"" or "console.listen"
	id       string // the issue id to report a clash under
	address  string
	host     string // normalised: "" for every wildcard form
	port     int
	wildcard bool
}

func (v *validator) listeners(ls []Listener, console string) {
	if len(ls) == 0 {
		v.add("listeners", "listeners: at least one [[listeners]] table is needed, or the broker accepts no clients")
	}
	var eps []endpoint
	firstByName := map[string]int{}
	for i, l := range ls {
		id := fmt.Sprintf("listeners[%d]", i)
		who := fmt.Sprintf("listener #%d", i+1)
		if l.Name != "" {
			who += fmt.Sprintf(" %q", short(l.Name))
		}
		key := func(k string) string { return id + "." + k }

		if l.Name == "" {
			v.add(key("name"), "%s: name is empty; give every listener a unique name", who)
		} else if j, dup := firstByName[l.Name]; dup {
			v.add(key("name"), "%s: name is already used by listener #%d", who, j+1)
		} else {
			firstByName[l.Name] = i
		}
		if !oneOf(l.Kind, listenerKinds) {
			v.add(key("kind"), "%s: kind = %q: must be %s", who, short(l.Kind), listWords(listenerKinds))
		}
		if !oneOf(l.Protocol, protocols) {
			v.add(key("protocol"), "%s: protocol = %q: must be %s", who, short(l.Protocol), listWords(protocols))
		}
		if host, port, msg := splitAddress(l.Address); msg != "" {
			v.add(key("address"), "%s: address = %q: %s", who, short(l.Address), msg)
		} else {
			eps = append(eps, newEndpoint(who, key("address"), l.Address, host, port))
		}

		// Settings that the listener's kind ignores are reported rather than
		// dropped: a tcp listener with tls_client_auth = "required" would
		// otherwise look secured while it is not.
		if isWebSocket(l.Kind) {
			if !strings.HasPrefix(l.Path, "/") {
				v.add(key("path"), "%s: path = %q: must start with \"/\"", who, short(l.Path))
			}
		} else if l.Path != "" && oneOf(l.Kind, listenerKinds) {
			v.add(key("path"), "%s: path only applies to kind \"ws\" or \"wss\", this listener is %q", who, short(l.Kind))
		}
		if !oneOf(l.TLSClientAuth, clientAuths) {
			v.add(key("tls_client_auth"), "%s: tls_client_auth = %q: must be %s", who, short(l.TLSClientAuth), listWords(clientAuths))
		}
		if isTLS(l.Kind) {
			if l.TLSCert == "" {
				v.add(key("tls_cert"), "%s: kind %q needs tls_cert (a PEM certificate file)", who, l.Kind)
			}
			if l.TLSKey == "" {
				v.add(key("tls_key"), "%s: kind %q needs tls_key (a PEM private key file)", who, l.Kind)
			}
			if (l.TLSClientAuth == "optional" || l.TLSClientAuth == "required") && l.TLSClientCA == "" {
				v.add(key("tls_client_ca"), "%s: tls_client_auth = %q needs tls_client_ca (the CAs client certificates are checked against)", who, l.TLSClientAuth)
			}
			if l.UseCNAsUsername && l.TLSClientAuth == "none" {
				// Without a verified certificate there is no common name to trust.
				v.add(key("use_cn_as_username"), "%s: use_cn_as_username needs tls_client_auth = \"optional\" or \"required\"", who)
			}
		} else if oneOf(l.Kind, listenerKinds) {
			var set []string
			for _, f := range []struct{ k, v string }{{"tls_cert", l.TLSCert}, {"tls_key", l.TLSKey}, {"tls_client_ca", l.TLSClientCA}} {
				if f.v != "" {
					set = append(set, f.k)
				}
			}
			if l.TLSClientAuth != "" && l.TLSClientAuth != "none" {
				set = append(set, "tls_client_auth")
			}
			if l.UseCNAsUsername {
				set = append(set, "use_cn_as_username")
			}
			if len(set) > 0 {
				verb := "applies"
				if len(set) > 1 {
					verb = "apply"
				}
				v.add(key(set[0]), "%s: %s only %s to kind \"tls\" or \"wss\", this listener is %q", who, strings.Join(set, ", "), verb, l.Kind)
			}
		}
	}
	if console != "" {
		if host, port, msg := splitAddress(console); msg == "" {
			eps = append(eps, newEndpoint("console.listen", "console.listen", console, host, port))
		}
	}
	v.clashes(eps)
}

// newEndpoint records where something listens, with its host normalised so
// that equal addresses compare equal.
func newEndpoint(who, id, address, host string, port int) endpoint {
	e := endpoint{who: who, id: id, address: address, port: port}
	e.host = strings.ToLower(host)
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		e.host = ip.String()
		e.wildcard = ip.IsUnspecified()
	}
	if host == "" {
		e.wildcard = true
	}
	if e.wildcard {
		e.host = ""
	}
	return e
}

// clashes reports two endpoints on one port when they would fail to bind
// together: the same host, or a wildcard host (":p", "0.0.0.0:p", "[::]:p")
// next to anything. Port 0 asks the kernel for a free port, so it never
// clashes.
func (v *validator) clashes(eps []endpoint) {
	for i, a := range eps {
		if a.port == 0 {
			continue
		}
		for _, b := range eps[:i] {
			if a.port != b.port || !(a.wildcard || b.wildcard || a.host == b.host) {
				continue
			}
			v.add(a.id, "%s: address %q uses port %d, already taken by %s (%q)", a.who, a.address, a.port, b.who, b.address)
			break
		}
	}
}

// splitAddress checks a listening address. It returns a message describing
// what is wrong, or "" with the host and port.
func splitAddress(s string) (host string, port int, msg string) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, "must be host:port, like \":1883\", \"127.0.0.1:1883\" or \"[::1]:1883\""
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Sprintf("port %q must be a number from 1 to 65535 (or 0 for any free port)", short(p))
	}
	if host != "" && !validHost(host) {
		return "", 0, fmt.Sprintf("host %q is not an IP address or a host name", short(host))
	}
	return host, port, ""
}

func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

func oneOf(s string, set []string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

// listWords renders a set as `"a", "b" or "c"`.
func listWords(set []string) string {
	q := make([]string, len(set))
	for i, s := range set {
		q[i] = strconv.Quote(s)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}
