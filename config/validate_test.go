package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func tlsListener(c *Config) *Listener {
	c.Listeners = append(c.Listeners, Listener{Name: "tls", Kind: "tls", Address: ":8883", Protocol: "3.1.1",
		TLSCert: "c.pem", TLSKey: "k.pem", TLSClientAuth: "none"})
	return &c.Listeners[len(c.Listeners)-1]
}

// Each row breaks exactly one rule of a valid configuration and names the
// message it must produce.
var validationRules = []struct {
	rule   string
	change func(c *Config)
	want   string
}{
	{"at least one listener", func(c *Config) { c.Listeners = nil }, "listeners: at least one [[listeners]] table is needed"},
	{"listener name non-empty", func(c *Config) { c.Listeners[1].Name = "" }, "listener #2: name is empty"},
	{"listener names unique", func(c *Config) { c.Listeners[2].Name = "mqtt" }, `listener #3 "mqtt": name is already used by listener #1`},
	{"listener kind", func(c *Config) { c.Listeners[0].Kind = "udp" }, `listener #1 "mqtt": kind = "udp": must be "tcp", "tls", "ws" or "wss"`},
	{"listener protocol", func(c *Config) { c.Listeners[0].Protocol = "5" }, `protocol = "5": must be "3.1", "3.1.1" or "5.0"`},
	{"address is host:port", func(c *Config) { c.Listeners[0].Address = "1883" }, `address = "1883": must be host:port`},
	{"address port is a number", func(c *Config) { c.Listeners[0].Address = ":mqtt" }, `port "mqtt" must be a number from 1 to 65535`},
	{"address port in range", func(c *Config) { c.Listeners[0].Address = ":65536" }, `port "65536" must be a number from 1 to 65535 (or 0 for any free port)`},
	{"address host valid", func(c *Config) { c.Listeners[0].Address = "bad_host!:1883" }, `host "bad_host!" is not an IP address or a host name`},
	{"addresses distinct", func(c *Config) { c.Listeners[1].Address = ":1883" }, `listener #2 "mqtt5": address ":1883" uses port 1883, already taken by listener #1 "mqtt" (":1883")`},
	{"0.0.0.0 is the wildcard", func(c *Config) { c.Listeners[1].Address = "0.0.0.0:1883" }, `address "0.0.0.0:1883" uses port 1883, already taken`},
	{"[::] is the wildcard", func(c *Config) { c.Listeners[1].Address = "[::]:1883" }, `address "[::]:1883" uses port 1883, already taken`},
	{"a host on a wildcard's port", func(c *Config) { c.Listeners[1].Address = "127.0.0.1:1883" }, `address "127.0.0.1:1883" uses port 1883, already taken`},
	{"same host, same port", func(c *Config) {
		c.Listeners[0].Address = "127.0.0.1:1883"
		c.Listeners[1].Address = "127.0.0.1:1883"
	}, `address "127.0.0.1:1883" uses port 1883, already taken`},
	{"console port clash", func(c *Config) { c.Listeners[2].Address = ":3030" }, `console.listen: address "127.0.0.1:3030" uses port 3030, already taken by listener #3 "ws"`},
	{"tls needs tls_cert", func(c *Config) { tlsListener(c).TLSCert = "" }, `listener #4 "tls": kind "tls" needs tls_cert`},
	{"tls needs tls_key", func(c *Config) { tlsListener(c).TLSKey = "" }, `kind "tls" needs tls_key`},
	{"wss needs tls_cert", func(c *Config) {
		c.Listeners[2].Kind = "wss"
		c.Listeners[2].TLSKey = "k.pem"
	}, `listener #3 "ws": kind "wss" needs tls_cert`},
	{"tls_client_auth value", func(c *Config) { tlsListener(c).TLSClientAuth = "always" }, `tls_client_auth = "always": must be "none", "optional" or "required"`},
	{"required client auth needs a CA", func(c *Config) { tlsListener(c).TLSClientAuth = "required" }, `tls_client_auth = "required" needs tls_client_ca`},
	{"optional client auth needs a CA", func(c *Config) { tlsListener(c).TLSClientAuth = "optional" }, `tls_client_auth = "optional" needs tls_client_ca`},
	{"tls keys only on tls kinds", func(c *Config) { c.Listeners[0].TLSClientAuth = "required" }, `listener #1 "mqtt": tls_client_auth only applies to kind "tls" or "wss", this listener is "tcp"`},
	{"path starts with /", func(c *Config) { c.Listeners[2].Path = "mqtt" }, `listener #3 "ws": path = "mqtt": must start with "/"`},
	{"path only on ws kinds", func(c *Config) { c.Listeners[0].Path = "/mqtt" }, `path only applies to kind "ws" or "wss", this listener is "tcp"`},
	{"max_connections", func(c *Config) { c.Limits.MaxConnections = 0 }, "limits.max_connections = 0: must be at least 1"},
	{"max_sessions", func(c *Config) { c.Limits.MaxSessions = 0 }, "limits.max_sessions = 0: must be at least 1"},
	{"max_sessions >= max_connections", func(c *Config) { c.Limits.MaxSessions = 10 }, "limits.max_sessions = 10: must be at least limits.max_connections (10000)"},
	{"supervision.max_restarts", func(c *Config) { c.Supervision.MaxRestarts = 0 }, "supervision.max_restarts = 0"},
	{"supervision.restart_window", func(c *Config) { c.Supervision.RestartWindow = 0 }, "supervision.restart_window"},
	{"writer_queue > max_inflight", func(c *Config) { c.Connections.WriterQueue = 128 }, "connections.writer_queue = 128: must be larger than mqtt.max_inflight (128)"},
	{"connect_timeout", func(c *Config) { c.Limits.ConnectTimeout = 0 }, `limits.connect_timeout = "0s": must be longer than zero`},
	{"max_packet_size low", func(c *Config) { c.Limits.MaxPacketSize = 63 }, "limits.max_packet_size = 63: must be between 64 and 268435460"},
	{"max_packet_size high", func(c *Config) { c.Limits.MaxPacketSize = 268435461 }, "limits.max_packet_size = 268435461: must be between 64 and 268435460"},
	{"max_client_id_length", func(c *Config) { c.Limits.MaxClientIDLength = 22 }, "limits.max_client_id_length = 22: must be between 23 and 65535 (MQTT requires"},
	{"max_topic_length", func(c *Config) { c.Limits.MaxTopicLength = 65536 }, "limits.max_topic_length = 65536: must be between 1 and 65535"},
	{"max_topic_levels", func(c *Config) { c.Limits.MaxTopicLevels = 0 }, "limits.max_topic_levels = 0: must be between 1 and 65535"},
	{"max_subscriptions_per_client", func(c *Config) { c.Limits.MaxSubscriptionsPerClient = 0 }, "limits.max_subscriptions_per_client = 0: must be at least 1"},
	{"max_keep_alive", func(c *Config) { c.MQTT.MaxKeepAlive = 0 }, "mqtt.max_keep_alive = 0: must be between 1 and 65535"},
	{"receive_maximum", func(c *Config) { c.MQTT.ReceiveMaximum = 65536 }, "mqtt.receive_maximum = 65536: must be between 1 and 65535"},
	{"topic_alias_maximum", func(c *Config) { c.MQTT.TopicAliasMaximum = -1 }, "mqtt.topic_alias_maximum = -1: must be between 0 and 65535"},
	{"max_inflight", func(c *Config) { c.MQTT.MaxInflight = 0 }, "mqtt.max_inflight = 0: must be between 1 and 65535"},
	{"max_qos", func(c *Config) { c.MQTT.MaxQoS = 3 }, "mqtt.max_qos = 3: must be between 0 and 2"},
	{"max_session_expiry negative", func(c *Config) { c.Sessions.MaxSessionExpiry = Duration(-time.Second) }, `sessions.max_session_expiry = "-1s": must be between "0s" and`},
	{"max_session_expiry too long", func(c *Config) { c.Sessions.MaxSessionExpiry = maxExpiry + Duration(time.Second) }, `sessions.max_session_expiry = "1193046h28m16s": must be between "0s" and "1193046h28m15s"`},
	{"max_queued_messages", func(c *Config) { c.Sessions.MaxQueuedMessages = 1 }, "sessions.max_queued_messages = 1: must be at least 2"},
	{"queue_drop_policy", func(c *Config) { c.Sessions.QueueDropPolicy = "drop_all" }, `sessions.queue_drop_policy = "drop_all": must be "drop_oldest" or "drop_newest"`},
	{"retained.max_messages", func(c *Config) { c.Retained.MaxMessages = 0 }, "retained.max_messages = 0: must be at least 1 (to turn retained messages off set mqtt.retain_available = false)"},
	{"router.shards", func(c *Config) { c.Router.Shards = 1025 }, "router.shards = 1025: must be between 1 and 1024"},
	{"router.credit_window", func(c *Config) { c.Router.CreditWindow = 1 }, "router.credit_window = 1: must be between 2 and 1048576"},
	{"connections.writer_queue", func(c *Config) { c.Connections.WriterQueue = 1 }, "connections.writer_queue = 1: must be between 2 and 1048576"},
	{"connections.write_timeout", func(c *Config) { c.Connections.WriteTimeout = Duration(-time.Second) }, `connections.write_timeout = "-1s": must be longer than zero`},
	{"console.listen", func(c *Config) { c.Console.Listen = "localhost" }, `console.listen = "localhost": must be host:port`},
	{"log.level", func(c *Config) { c.Log.Level = "verbose" }, `log.level = "verbose": must be "debug", "info", "warn" or "error"`},
	{"log.format", func(c *Config) { c.Log.Format = "xml" }, `log.format = "xml": must be "console" or "json"`},
}

func TestValidateRules(t *testing.T) {
	for _, r := range validationRules {
		t.Run(r.rule, func(t *testing.T) {
			c := Default()
			r.change(&c)
			err := c.Validate()
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate() = %v, want a *ValidationError", err)
			}
			if len(ve.Problems) != 1 || !strings.Contains(ve.Problems[0], r.want) {
				t.Errorf("problems = %q\nwant one containing %q", ve.Problems, r.want)
			}
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Errorf("Error() = %q, want a \"config: \" prefix", err)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	for name, change := range map[string]func(c *Config){
		"port 0 picks a free port":     func(c *Config) { c.Listeners[0].Address, c.Listeners[1].Address = ":0", ":0" },
		"other hosts on one port":      func(c *Config) { c.Listeners[0].Address, c.Listeners[1].Address = "127.0.0.1:1883", "[::1]:1883" },
		"console off":                  func(c *Config) { c.Console.Listen = "" },
		"console on a free port":       func(c *Config) { c.Console.Listen = "localhost:0" },
		"no session expiry":            func(c *Config) { c.Sessions.MaxSessionExpiry = 0 },
		"no topic aliases, QoS 0 only": func(c *Config) { c.MQTT.TopicAliasMaximum, c.MQTT.MaxQoS = 0, 0 },
		"tls with client certificates": func(c *Config) {
			l := tlsListener(c)
			l.TLSClientAuth, l.TLSClientCA = "required", "ca.pem"
		},
		"wss": func(c *Config) {
			c.Listeners[2].Kind, c.Listeners[2].TLSCert, c.Listeners[2].TLSKey = "wss", "c.pem", "k.pem"
		},
	} {
		c := Default()
		change(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestValidateReportsEverything(t *testing.T) {
	c := Default()
	c.Listeners[0].Kind = "udp"
	c.Limits.MaxPacketSize = 1
	c.MQTT.MaxQoS = 7
	c.Log.Format = "xml"
	err := c.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 4 {
		t.Fatalf("Validate() = %v, want 4 problems", err)
	}
	if !strings.HasPrefix(err.Error(), "config: 4 problems:\n  ") {
		t.Errorf("Error() = %q", err)
	}
}
