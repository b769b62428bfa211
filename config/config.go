// Package config reads actormq's single TOML configuration file.
//
// The file is optional in spirit: on first run Load writes one with every key
// at its default, and any key left out of an edited file keeps its default.
// Decoding is strict (an unknown key is an error, with a suggestion when it
// looks like a typo) and every problem is reported at once, naming the file,
// the line and the key, so a user fixes the file in one pass.
//
// The `comment` tags below are the one-line comments of the generated file;
// docs/CONFIG.md is the full reference.
package config

import (
	"fmt"
	"strings"
	"time"
)

// Config is the whole configuration of one broker.
type Config struct {
	Listeners   []Listener  `toml:"listeners" comment:"Listeners: one [[listeners]] table each. Every listener accepts MQTT 3.1, 3.1.1 and 5.0."`
	Limits      Limits      `toml:"limits" comment:"Limits that keep one client, or many, from exhausting the broker."`
	MQTT        MQTT        `toml:"mqtt" comment:"What the broker offers to MQTT clients."`
	Sessions    Sessions    `toml:"sessions" comment:"Sessions: what survives a disconnect."`
	Retained    Retained    `toml:"retained" comment:"Retained messages."`
	Store       Store       `toml:"store" comment:"What survives a restart of the broker, or a crash: sessions, their queued and inflight messages, retained messages."`
	Router      Router      `toml:"router" comment:"The router that matches publishes to subscriptions."`
	Connections Connections `toml:"connections" comment:"Per-socket buffering."`
	Auth        Auth        `toml:"auth" comment:"Who may connect, what they may publish and subscribe to, and how fast (README.md, Security)."`
	Supervision Supervision `toml:"supervision" comment:"What the broker does when one of its actors fails (docs/ARCHITECTURE.md, Failure)."`
	Console     Console     `toml:"console" comment:"The HTTP introspection console (JSON, a web page and /metrics)."`
	Log         Log         `toml:"log" comment:"Logging."`
}

// Listener is one socket the broker accepts MQTT connections on.
type Listener struct {
	Name          string `toml:"name" comment:"unique name, shown in logs and the console"`
	Kind          string `toml:"kind" comment:"tcp, tls, ws (WebSocket) or wss (WebSocket over TLS)"`
	Address       string `toml:"address" comment:"host:port to listen on; \":1883\" means every interface"`
	Protocol      string `toml:"protocol" comment:"3.1, 3.1.1 or 5.0: the version used before CONNECT names one (all three are accepted)"`
	Path          string `toml:"path" comment:"ws/wss only: the HTTP path of the WebSocket endpoint (\"/\" is served too)"`
	TLSCert       string `toml:"tls_cert" comment:"tls/wss only: PEM certificate chain file"`
	TLSKey        string `toml:"tls_key" comment:"tls/wss only: PEM private key file"`
	TLSClientCA   string `toml:"tls_client_ca" comment:"tls/wss only: PEM file of CAs that client certificates are checked against"`
	TLSClientAuth string `toml:"tls_client_auth" comment:"tls/wss only: none, optional or required (optional and required need tls_client_ca)"`
	// UseCNAsUsername makes a verified client certificate the credential: its common name is
	// the user name for the ACL, and no password is asked.
	UseCNAsUsername bool `toml:"use_cn_as_username" comment:"tls/wss only: a client with a verified certificate is the user named by its common name (no password needed)"`
}

// ProtocolLevel is the MQTT protocol level of l.Protocol: 3 for 3.1, 4 for
// 3.1.1 and 5 for 5.0. An unvalidated, unknown value gives 4, the most widely
// spoken version.
func (l Listener) ProtocolLevel() byte {
	switch l.Protocol {
	case "3.1":
		return 3
	case "5.0":
		return 5
	default:
		return 4
	}
}

// Limits caps what clients can make the broker hold.
type Limits struct {
	MaxConnections            int      `toml:"max_connections" comment:"open client connections; more are refused"`
	MaxSessions               int      `toml:"max_sessions" comment:"sessions kept, connected or not; a CONNECT that would need one more is refused"`
	ConnectTimeout            Duration `toml:"connect_timeout" comment:"a new connection must send CONNECT within this, and is refused (0x88) if it cannot be answered within it"`
	MaxPacketSize             int      `toml:"max_packet_size" comment:"largest packet accepted, in bytes (64 to 268435460); 5.0 clients are told"`
	MaxClientIDLength         int      `toml:"max_client_id_length" comment:"longest client id, in bytes (23 to 65535)"`
	MaxTopicLength            int      `toml:"max_topic_length" comment:"longest topic name or filter, in bytes (1 to 65535)"`
	MaxTopicLevels            int      `toml:"max_topic_levels" comment:"most '/'-separated levels in a topic name or filter"`
	MaxSubscriptionsPerClient int      `toml:"max_subscriptions_per_client" comment:"most subscriptions one session may hold"`
}

// MQTT holds what the broker advertises to, and enforces on, clients.
type MQTT struct {
	MaxKeepAlive            int  `toml:"max_keep_alive" comment:"longest keep-alive in seconds (1 to 65535); 5.0 clients asking more are told this, 3.x clients are refused"`
	ReceiveMaximum          int  `toml:"receive_maximum" comment:"QoS 1/2 publishes a client may have unacknowledged toward the broker (1 to 65535)"`
	TopicAliasMaximum       int  `toml:"topic_alias_maximum" comment:"topic aliases a 5.0 client may use toward the broker (0 to 65535; 0 disables them)"`
	MaxInflight             int  `toml:"max_inflight" comment:"QoS 1/2 messages in flight to one client, also capped by its Receive Maximum (1 to 65535)"`
	MaxQoS                  int  `toml:"max_qos" comment:"highest QoS granted (0, 1 or 2)"`
	RetainAvailable         bool `toml:"retain_available" comment:"accept retained messages"`
	WildcardSubscriptions   bool `toml:"wildcard_subscriptions" comment:"accept subscriptions with + and #"`
	SubscriptionIdentifiers bool `toml:"subscription_identifiers" comment:"accept 5.0 subscription identifiers"`
	SharedSubscriptions     bool `toml:"shared_subscriptions" comment:"accept $share/group/filter subscriptions"`
}

// Sessions bounds what the broker keeps for a client between connections.
type Sessions struct {
	MaxSessionExpiry  Duration `toml:"max_session_expiry" comment:"longest a disconnected session is kept (5.0 clients asking more are capped; 3.x persistent sessions get this)"`
	MaxQueuedMessages int      `toml:"max_queued_messages" comment:"messages waiting for one session (at least 2)"`
	QueueDropPolicy   string   `toml:"queue_drop_policy" comment:"drop_oldest or drop_newest: which message goes when the queue is full (QoS 0 messages always go first)"`
}

// Retained bounds the retained-message store.
type Retained struct {
	MaxMessages int `toml:"max_messages" comment:"retained messages kept in total (at least 1; use mqtt.retain_available to turn retain off)"`
}

// Store says where and how the broker keeps what must survive a restart.
type Store struct {
	Persistence bool   `toml:"persistence" comment:"keep sessions that outlive their connection, their queued and inflight QoS 1/2 messages and the retained messages on disk; false keeps them in memory only, lost on restart"`
	DataDir     string `toml:"data_dir" comment:"directory of the on-disk store, created on first run; a relative path is relative to this file's directory"`
	Sync        string `toml:"sync" comment:"batch (a QoS 1/2 message is acknowledged once it is on disk; connections share each fsync), always (an fsync per write) or none (no fsync: a crash of the broker loses nothing, a crash of the machine can)"`
}

// Router sizes the topic router.
type Router struct {
	Shards       int `toml:"shards" comment:"router shards, each owning part of the topics (1 to 1024)"`
	CreditWindow int `toml:"credit_window" comment:"publishes one connection may have on their way to the router before it stops reading (2 to 1048576)"`
}

// Connections sizes per-socket buffering.
type Connections struct {
	WriterQueue  int      `toml:"writer_queue" comment:"encoded packets waiting for one socket's writer (2 to 1048576)"`
	WriteTimeout Duration `toml:"write_timeout" comment:"a socket that takes no data for this long is closed as a slow consumer"`
}

// Console configures the HTTP introspection console.
// Supervision sets the restart budget of the actors that restart on failure: sessions, router
// shards and listeners. Past the budget a supervisor stops the actor; shards, listeners and
// stored sessions are then started again from their kept state, other sessions are forgotten.
type Supervision struct {
	MaxRestarts   int      `toml:"max_restarts" comment:"failures a session, router shard or listener may have within restart_window before it is stopped (then it is started again with its state; a session that ends with its connection is forgotten)"`
	RestartWindow Duration `toml:"restart_window" comment:"the time window max_restarts counts failures in"`
}

type Console struct {
	Listen string `toml:"listen" comment:"host:port of the console; \"\" turns it off"`
	Chaos  bool   `toml:"chaos" comment:"enable the endpoints that kill actors and disconnect clients"`
	Token  string `toml:"token" comment:"when set, write endpoints need the header Authorization: Bearer <token>"`
	// SysInterval paces the $SYS topics, which belong to the console: off with it.
	SysInterval Duration `toml:"sys_interval" comment:"how often the $SYS/broker/... topics are published (retained) while the console is on; \"0s\" turns them off"`
}

// Auth configures authentication, authorization and rate limits. The defaults accept every
// client, as a fresh broker on a developer's machine should; README.md (Security) tells how to
// lock it down.
type Auth struct {
	AllowAnonymous           bool   `toml:"allow_anonymous" comment:"accept clients without a user name (or with one when password_file is empty)"`
	PasswordFile             string `toml:"password_file" comment:"user:bcrypt-hash lines, made with \"actormq passwd FILE USER\"; \"\" checks no password"`
	ACLFile                  string `toml:"acl_file" comment:"who may publish and subscribe to what (README.md, Security); \"\" allows everything"`
	MaxFailedLoginsPerMinute int    `toml:"max_failed_logins_per_minute" comment:"failed logins per source address per minute before further attempts are refused (0: no limit)"`
	ConnectRate              int    `toml:"connect_rate" comment:"CONNECTs per second per source address, with a burst of as many (0: no limit)"`
	PublishRate              int    `toml:"publish_rate" comment:"PUBLISH packets per second per client (0: no limit)"`
	PublishBytesRate         int    `toml:"publish_bytes_rate" comment:"PUBLISH payload bytes per second per client (0: no limit)"`
	SCRAM                    bool   `toml:"scram" comment:"offer MQTT 5.0 enhanced authentication SCRAM-SHA-256 (needs password_file entries made with passwd -scram)"`
}

// Log configures the logger.
type Log struct {
	Level  string `toml:"level" comment:"debug, info, warn or error (the LOG_LEVEL environment variable overrides it)"`
	Format string `toml:"format" comment:"console (readable) or json"`
}

// The closed sets of values some keys take, in the order they are listed in
// messages.
var (
	listenerKinds  = []string{"tcp", "tls", "ws", "wss"}
	protocols      = []string{"3.1", "3.1.1", "5.0"}
	clientAuths    = []string{"none", "optional", "required"}
	dropPolicies   = []string{"drop_oldest", "drop_newest"}
	syncModes      = []string{"batch", "always", "none"}
	logLevels      = []string{"debug", "info", "warn", "error"}
	logFormats     = []string{"console", "json"}
	defaultWSPath  = "/mqtt"
	defaultProto   = "3.1.1"
	defaultKind    = "tcp"
	defaultCliAuth = "none"
)

// Default is the configuration used for every key the file leaves out.
func Default() Config {
	return Config{
		Listeners: []Listener{
			{Name: "mqtt", Kind: "tcp", Address: ":1883", Protocol: "3.1.1", TLSClientAuth: "none"},
			{Name: "mqtt5", Kind: "tcp", Address: ":1884", Protocol: "5.0", TLSClientAuth: "none"},
			{Name: "ws", Kind: "ws", Address: ":8080", Protocol: "5.0", Path: "/mqtt", TLSClientAuth: "none"},
		},
		Limits: Limits{
			MaxConnections:            10000,
			MaxSessions:               100000,
			ConnectTimeout:            Duration(10 * time.Second),
			MaxPacketSize:             1048576,
			MaxClientIDLength:         256,
			MaxTopicLength:            65535,
			MaxTopicLevels:            128,
			MaxSubscriptionsPerClient: 1000,
		},
		MQTT: MQTT{
			MaxKeepAlive:            65535,
			ReceiveMaximum:          1024,
			TopicAliasMaximum:       64,
			MaxInflight:             128,
			MaxQoS:                  2,
			RetainAvailable:         true,
			WildcardSubscriptions:   true,
			SubscriptionIdentifiers: true,
			SharedSubscriptions:     true,
		},
		Sessions: Sessions{
			MaxSessionExpiry:  Duration(24 * time.Hour),
			MaxQueuedMessages: 1000,
			QueueDropPolicy:   "drop_oldest",
		},
		Retained:    Retained{MaxMessages: 100000},
		Store:       Store{Persistence: true, DataDir: "data", Sync: "batch"},
		Router:      Router{Shards: 4, CreditWindow: 256},
		Connections: Connections{WriterQueue: 1024, WriteTimeout: Duration(10 * time.Second)},
		Auth:        Auth{AllowAnonymous: true, MaxFailedLoginsPerMinute: 10},
		Supervision: Supervision{MaxRestarts: 10, RestartWindow: Duration(10 * time.Second)},
		Console:     Console{Listen: "127.0.0.1:3030", SysInterval: Duration(10 * time.Second)},
		Log:         Log{Level: "info", Format: "console"},
	}
}

// fillListenerDefaults gives listeners read from a file the defaults of the
// keys they leave out. Only keys that matter for the listener's kind get one,
// so Default() and a parsed Generate() stay identical.
func (c *Config) fillListenerDefaults() {
	for i := range c.Listeners {
		l := &c.Listeners[i]
		if l.Kind == "" {
			l.Kind = defaultKind
		}
		if l.Protocol == "" {
			l.Protocol = defaultProto
		}
		if l.Path == "" && isWebSocket(l.Kind) {
			l.Path = defaultWSPath
		}
		if l.TLSClientAuth == "" {
			l.TLSClientAuth = defaultCliAuth
		}
		// The ports IANA registered for MQTT over TLS, and the usual one for secure WebSockets.
		if l.Address == "" && l.Kind == "tls" {
			l.Address = ":8883"
		} else if l.Address == "" && l.Kind == "wss" {
			l.Address = ":8443"
		}
	}
}

func isWebSocket(kind string) bool { return kind == "ws" || kind == "wss" }
func isTLS(kind string) bool       { return kind == "tls" || kind == "wss" }

// ApplyEnv applies the environment's overrides: LOG_LEVEL replaces
// log.level. getenv is usually os.Getenv; tests pass their own. The value is
// case-insensitive because shells users tend to write LOG_LEVEL=DEBUG. On
// error c is left unchanged.
func (c *Config) ApplyEnv(getenv func(string) string) error {
	if getenv == nil {
		return nil
	}
	if raw := strings.TrimSpace(getenv("LOG_LEVEL")); raw != "" {
		level := strings.ToLower(raw)
		if !oneOf(level, logLevels) {
			return fmt.Errorf("config: environment variable LOG_LEVEL=%q: must be %s", short(raw), listWords(logLevels))
		}
		c.Log.Level = level
	}
	return nil
}

// Duration is a time.Duration written in TOML as a string with a unit, like
// "10s", "1m30s" or "24h".
type Duration time.Duration

// Std is d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String is d the way a person writes it: "24h" rather than "24h0m0s".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// MarshalText writes d as String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a Go duration string such as "10s" or "1m30s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// parseDuration wraps time.ParseDuration with a message that tells the user
// what to write instead of quoting Go's parser.
func parseDuration(s string) (time.Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (write a number with a unit, like \"500ms\", \"10s\", \"1m30s\" or \"24h\")", short(s))
	}
	return v, nil
}
