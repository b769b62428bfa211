package config

import (
	"strings"
	"testing"
)

func TestAuthValidation(t *testing.T) {
	for _, r := range []struct {
		rule   string
		change func(c *Config)
		want   string
	}{
		{"failed logins not negative", func(c *Config) { c.Auth.MaxFailedLoginsPerMinute = -1 }, "auth.max_failed_logins_per_minute = -1: must be at least 0"},
		{"connect rate not negative", func(c *Config) { c.Auth.ConnectRate = -1 }, "auth.connect_rate = -1: must be at least 0"},
		{"publish rate not negative", func(c *Config) { c.Auth.PublishRate = -5 }, "auth.publish_rate = -5: must be at least 0"},
		{"publish bytes rate not negative", func(c *Config) { c.Auth.PublishBytesRate = -5 }, "auth.publish_bytes_rate = -5: must be at least 0"},
		{"scram needs a password file", func(c *Config) { c.Auth.SCRAM = true }, "auth.scram = true needs auth.password_file"},
		{"cn as user name needs client certificates", func(c *Config) { tlsListener(c).UseCNAsUsername = true }, `listener #4 "tls": use_cn_as_username needs tls_client_auth = "optional" or "required"`},
		{"cn as user name only on tls kinds", func(c *Config) { c.Listeners[0].UseCNAsUsername = true }, `listener #1 "mqtt": use_cn_as_username only applies to kind "tls" or "wss"`},
	} {
		c := Default()
		r.change(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), r.want) {
			t.Errorf("%s: %v, want %q", r.rule, err, r.want)
		}
	}
	c := Default()
	l := tlsListener(&c)
	l.TLSClientAuth, l.TLSClientCA, l.UseCNAsUsername = "required", "ca.pem", true
	c.Auth = Auth{PasswordFile: "p", ACLFile: "a", SCRAM: true, PublishRate: 10}
	if err := c.Validate(); err != nil {
		t.Errorf("a secured configuration: %v", err)
	}
}

func TestAuthSectionParses(t *testing.T) {
	cfg, err := Parse([]byte(`
[[listeners]]
name = "mqtts"
kind = "tls"
tls_cert = "c.pem"
tls_key = "k.pem"
tls_client_ca = "ca.pem"
tls_client_auth = "required"
use_cn_as_username = true

[[listeners]]
name = "wss"
kind = "wss"
tls_cert = "c.pem"
tls_key = "k.pem"

[auth]
allow_anonymous = false
password_file = "/etc/actormq/passwd"
acl_file = "/etc/actormq/acl"
publish_rate = 100
`), "config.toml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listeners[0].Address != ":8883" || cfg.Listeners[1].Address != ":8443" {
		t.Errorf("default TLS ports: %q %q, want :8883 and :8443", cfg.Listeners[0].Address, cfg.Listeners[1].Address)
	}
	if !cfg.Listeners[0].UseCNAsUsername || cfg.Auth.AllowAnonymous || cfg.Auth.PasswordFile != "/etc/actormq/passwd" ||
		cfg.Auth.PublishRate != 100 || cfg.Auth.MaxFailedLoginsPerMinute != 10 {
		t.Errorf("parsed %+v %+v", cfg.Listeners[0], cfg.Auth)
	}
	_, err = Parse([]byte("[auth]\nallow_anonymus = false\n"), "config.toml")
	if err == nil || !strings.Contains(err.Error(), `config.toml:2: unknown key "auth.allow_anonymus"`) || !strings.Contains(err.Error(), "allow_anonymous") {
		t.Errorf("typo in [auth]: %v", err)
	}
	if gen := string(Generate()); !strings.Contains(gen, "# use_cn_as_username = false") || !strings.Contains(gen, "\n[auth]\n") {
		t.Error("the generated file does not show the security keys")
	}
}
