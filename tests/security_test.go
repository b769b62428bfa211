package tests

// End-to-end tests of security: TLS and mutual TLS listeners (tls, wss), the password file,
// anonymous access, the ACL with %u and %c, failed-login and connect rate limits, the publish
// rate limit, MQTT 5.0 enhanced authentication with SCRAM-SHA-256, and reloading certificates
// and files under open connections. Every refusal is checked to leave a bystander client served.
// Normative statements are cited from MQTT 3.1.1 and 5.0 as [MQTT-x.y.z-n].

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"golang.org/x/crypto/bcrypt"

	"github.com/actormq/actormq/auth"
	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/internal/testcerts"
	"github.com/actormq/actormq/supervisor"
)

// secUsers writes a password file (bcrypt at its lowest cost: the tests check logic, not cost)
// with user:password pairs.
func secUsers(t *testing.T, scram bool, pairs ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "passwd")
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := auth.SetPassword(path, pairs[i], []byte(pairs[i+1]), auth.PasswordOptions{Cost: bcrypt.MinCost, SCRAM: scram}); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func secFile(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func secLogin(user, password string) func(*codec.Connect) {
	return func(p *codec.Connect) {
		p.Username, p.HasUsername = user, true
		if password != "" {
			p.Password, p.HasPassword = []byte(password), true
		}
	}
}

// secDial opens a raw client of version v on the listener for that version.
func secDial(t *testing.T, b *testBroker, v codec.Version, id string) *v5Client {
	t.Helper()
	addr := b.TCP311
	if v == codec.V5 {
		addr = b.TCP5
	}
	return &v5Client{rawClient: dialRaw(t, addr, v), id: id}
}

// secConnect connects and requires success.
func secConnect(t *testing.T, b *testBroker, v codec.Version, id string, mutate ...func(*codec.Connect)) *v5Client {
	t.Helper()
	c := secDial(t, b, v, id)
	if ack := c.Connect(id, mutate...); ack.ReasonCode != codec.Success {
		t.Fatalf("%s (%s): CONNACK %s, want accepted", id, v, ack.ReasonCode)
	}
	return c
}

// secRefused connects and requires a refusal with want: a CONNACK with that code, Session
// Present 0, then the close ([MQTT-3.2.2-4], [MQTT-3.2.2-5] in 3.1.1; [MQTT-3.2.2-6],
// [MQTT-3.2.2-7] in 5.0).
func secRefused(t *testing.T, b *testBroker, v codec.Version, id string, want codec.ReasonCode, mutate ...func(*codec.Connect)) {
	t.Helper()
	c := secDial(t, b, v, id)
	ack := c.Connect(id, mutate...)
	if ack.ReasonCode != want || ack.SessionPresent {
		t.Fatalf("%s (%s): CONNACK %s session present %v, want %s", id, v, ack.ReasonCode, ack.SessionPresent, want)
	}
	c.ExpectClosed(v5Timeout)
}

// secBystander is a client connected before the refusals, whose service must go on.
func secBystander(t *testing.T, b *testBroker, mutate ...func(*codec.Connect)) *v5Bystander {
	t.Helper()
	c := secConnect(t, b, codec.V5, "v5-bystander", mutate...)
	c.sub("v5/bystander", 1)
	return &v5Bystander{c: c}
}

var bothVersions = []codec.Version{codec.V311, codec.V5}

func TestSecurityPasswordsAndAnonymous(t *testing.T) {
	pw := secUsers(t, false, "alice", "wonderland", "bob", "builder")
	b := startBroker(t, func(c *config.Config) {
		c.Auth.AllowAnonymous = false
		c.Auth.PasswordFile = pw
		c.Auth.MaxFailedLoginsPerMinute = 0
	})
	by := secBystander(t, b, secLogin("bob", "builder"))
	for _, v := range bothVersions {
		bad, anon := codec.BadUserNameOrPassword, codec.NotAuthorized
		if v != codec.V5 {
			bad, anon = codec.ConnRefusedBadUsernamePassword, codec.ConnRefusedNotAuthorized
		}
		secRefused(t, b, v, "wrong-pw", bad, secLogin("alice", "queen"))
		secRefused(t, b, v, "unknown-user", bad, secLogin("carol", "wonderland"))
		secRefused(t, b, v, "no-password", bad, secLogin("alice", ""))
		secRefused(t, b, v, "anonymous", anon)
		c := secConnect(t, b, v, "alice-"+v.String(), secLogin("alice", "wonderland"))
		c.sub("a/b", 1)
		c.pub("a/b", 1, "hi")
		c.receiveMsg("a/b", "hi")
		by.check()
	}
	// A refused client cannot take over a session: the bystander is still served.
	secRefused(t, b, codec.V5, "v5-bystander", codec.BadUserNameOrPassword, secLogin("bob", "nope"))
	by.check()
}

// With the 3.1.1 Paho client, as users meet the broker.
func TestSecurityPasswordsPaho(t *testing.T) {
	pw := secUsers(t, false, "alice", "wonderland")
	b := startBroker(t, func(c *config.Config) {
		c.Auth.AllowAnonymous = false
		c.Auth.PasswordFile = pw
	})
	url := "tcp://" + b.TCP311
	if _, err := v3TryConnect(t, url, "p1", func(o *mqtt.ClientOptions) { o.SetUsername("alice").SetPassword("x") }); err == nil || !strings.Contains(strings.ToLower(err.Error()), "password") {
		t.Errorf("wrong password: %v, want a bad user name or password error", err)
	}
	if _, err := v3TryConnect(t, url, "p2"); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authori") {
		t.Errorf("anonymous: %v, want a not authorized error", err)
	}
	c := v3Connect(t, url, "p3", func(o *mqtt.ClientOptions) { o.SetUsername("alice").SetPassword("wonderland") })
	c.sub("x", 1)
	c.pub("x", 1, false, "ok")
	if m := c.next(); m.Payload != "ok" {
		t.Fatalf("got %+v", m)
	}
}

func TestSecurityFailedLoginsRateLimited(t *testing.T) {
	pw := secUsers(t, false, "alice", "wonderland")
	b := startBroker(t, func(c *config.Config) {
		c.Auth.PasswordFile = pw
		c.Auth.MaxFailedLoginsPerMinute = 2
	})
	by := secBystander(t, b, secLogin("alice", "wonderland"))
	secRefused(t, b, codec.V5, "guess1", codec.BadUserNameOrPassword, secLogin("alice", "1234"))
	secRefused(t, b, codec.V311, "guess2", codec.ConnRefusedBadUsernamePassword, secLogin("alice", "password"))
	// The minute's failures are used up: even the right password is not checked now.
	secRefused(t, b, codec.V5, "guess3", codec.ConnectionRateExceeded, secLogin("alice", "wonderland"))
	secRefused(t, b, codec.V311, "guess4", codec.ConnRefusedServerUnavailable, secLogin("alice", "wonderland"))
	by.check() // connected clients are not affected
}

func TestSecurityConnectRate(t *testing.T) {
	b := startBroker(t, func(c *config.Config) { c.Auth.ConnectRate = 3 })
	by := secBystander(t, b) // takes one of the three
	accepted, refused := 0, 0
	for i := 0; i < 6 && refused == 0; i++ {
		c := secDial(t, b, codec.V5, fmt.Sprintf("burst-%d", i))
		switch ack := c.Connect(c.id); ack.ReasonCode {
		case codec.Success:
			accepted++
		case codec.ConnectionRateExceeded:
			refused++
			c.ExpectClosed(v5Timeout)
		default:
			t.Fatalf("CONNACK %s", ack.ReasonCode)
		}
	}
	if refused == 0 || accepted > 3 {
		t.Fatalf("accepted %d then refused %d, want at most 3 then 0x9F Connection rate exceeded", accepted, refused)
	}
	by.check()
}

const secACL = `
# every client: its own device tree, and public news to read
allow readwrite devices/%c/#
allow read public/#
allow readwrite v5/bystander

user alice
allow readwrite users/%u/#
allow write public/#
deny write public/locked

user watcher
allow read #
allow read $SYS/#
`

func TestSecurityACL(t *testing.T) {
	pw := secUsers(t, false, "alice", "a", "mallory", "m", "watcher", "w")
	b := startBroker(t, func(c *config.Config) {
		c.Auth.PasswordFile = pw
		c.Auth.ACLFile = secFile(t, "acl", secACL)
	})
	by := secBystander(t, b)
	watcher := secConnect(t, b, codec.V5, "watcher", secLogin("watcher", "w"))
	for _, f := range []string{"users/#", "devices/#", "public/#"} { // not the bystander's topic
		watcher.sub(f, 1)
	}
	if ack := watcher.subscribe(nil, codec.Subscription{Filter: "$SYS/#"}); ack.ReasonCodes[0] != 0 {
		t.Errorf("watcher: $SYS/# by configuration: %s", ack.ReasonCodes[0])
	}
	for _, v := range bothVersions {
		denied, subDenied := codec.NotAuthorized, codec.NotAuthorized
		if v != codec.V5 {
			denied, subDenied = codec.Success, codec.SubackFailureV3 // 3.1.1 drops, acknowledged as usual
		}
		id := "dev-" + v.String()
		// A will is a publish too: one the ACL would deny refuses the CONNECT.
		notAuth := codec.NotAuthorized
		if v != codec.V5 {
			notAuth = codec.ConnRefusedNotAuthorized
		}
		secRefused(t, b, v, id, notAuth, secLogin("alice", "a"), func(p *codec.Connect) {
			p.Will = &codec.Will{Topic: "users/mallory/x", Payload: []byte("gotcha")}
		})
		alice := secConnect(t, b, v, id, secLogin("alice", "a"), func(p *codec.Connect) {
			p.Will = &codec.Will{Topic: "users/alice/status", Payload: []byte("gone")}
		})

		// Allowed: %u and %c expand to alice and her client id.
		for _, topic := range []string{"users/alice/x", "devices/" + id + "/t", "public/news"} {
			if rc := alice.publish(&codec.Publish{Topic: topic, QoS: 1, Payload: []byte(v.String())}); rc != codec.Success {
				t.Errorf("%s: publish %s: %s", v, topic, rc)
			}
			watcher.receiveMsg(topic, v.String())
		}
		// Denied: another user's and another client's trees, and a deny rule that wins.
		for _, topic := range []string{"users/mallory/x", "devices/other/t", "public/locked"} {
			for _, qos := range []byte{0, 1, 2} {
				want := denied
				if qos == 0 {
					want = codec.Success // nothing to answer with: dropped
				}
				if rc := alice.publish(&codec.Publish{Topic: topic, QoS: qos, Payload: []byte("leak")}); rc != want {
					t.Errorf("%s: publish %s QoS %d: %s, want %s", v, topic, qos, rc, want)
				}
			}
		}
		watcher.quiet(v5Quiet)

		// SUBSCRIBE: a code per filter, denied ones 0x80 (3.1.1) / 0x87 (5.0) [MQTT-3.9.3-2].
		ack := alice.subscribe(nil,
			codec.Subscription{Filter: "users/alice/#", QoS: 1},
			codec.Subscription{Filter: "users/+/x", QoS: 1},
			codec.Subscription{Filter: "public/#", QoS: 0},
			codec.Subscription{Filter: "#", QoS: 0},
			codec.Subscription{Filter: "$SYS/#", QoS: 0},
			codec.Subscription{Filter: "$share/g/devices/" + id + "/#", QoS: 1},
			codec.Subscription{Filter: "$share/g/devices/+/#", QoS: 1},
		)
		want := []codec.ReasonCode{1, subDenied, 0, subDenied, subDenied, 1, subDenied}
		if fmt.Sprint(ack.ReasonCodes) != fmt.Sprint(want) {
			t.Errorf("%s: SUBACK %v, want %v", v, ack.ReasonCodes, want)
		}
		// An anonymous client only has the rules for everyone.
		anon := secConnect(t, b, v, "anon-"+v.String())
		if ack := anon.subscribe(nil, codec.Subscription{Filter: "users/alice/#"}); ack.ReasonCodes[0] != subDenied {
			t.Errorf("%s anonymous: users/alice/#: %s", v, ack.ReasonCodes[0])
		}
		if rc := anon.publish(&codec.Publish{Topic: "devices/anon-" + v.String() + "/t", QoS: 1, Payload: []byte("own")}); rc != codec.Success {
			t.Errorf("%s anonymous: own device tree: %s", v, rc)
		}
		watcher.receiveMsg("devices/anon-"+v.String()+"/t", "own")
		// Still connected and served after every denial.
		alice.publish(&codec.Publish{Topic: "users/alice/x", QoS: 1, Payload: []byte("after")})
		alice.receiveMsg("users/alice/x", "after")
		watcher.receiveMsg("users/alice/x", "after")
		by.check()
	}

	// A session made by one user is not handed to another: mallory connecting with alice's
	// client id gets a fresh session, without alice's subscriptions.
	a := secConnect(t, b, codec.V5, "shared-id", secLogin("alice", "a"), v5Expiry(60))
	a.sub("users/alice/#", 1)
	a.drop()
	m := secDial(t, b, codec.V5, "shared-id")
	if ack := m.Connect("shared-id", secLogin("mallory", "m"), v5Resume, v5Expiry(0)); ack.ReasonCode != codec.Success || ack.SessionPresent {
		t.Fatalf("mallory on alice's client id: %s session present %v, want a fresh session", ack.ReasonCode, ack.SessionPresent)
	}
	alice := secConnect(t, b, codec.V5, "alice-2", secLogin("alice", "a"))
	alice.pub("users/alice/y", 1, "private")
	m.quiet(v5Quiet)
	watcher.receiveMsg("users/alice/y", "private")
}

// The 3.1.1 Paho client sees a denied publish acknowledged and a denied subscription failed.
func TestSecurityACLPaho(t *testing.T) {
	pw := secUsers(t, false, "alice", "a")
	b := startBroker(t, func(c *config.Config) {
		c.Auth.PasswordFile = pw
		c.Auth.ACLFile = secFile(t, "acl", secACL)
	})
	url := "tcp://" + b.TCP311
	c := v3Connect(t, url, "paho-alice", func(o *mqtt.ClientOptions) { o.SetUsername("alice").SetPassword("a") })
	if got := c.sub("users/alice/#", 1); got != 1 {
		t.Fatalf("granted %d", got)
	}
	tok := c.Subscribe("users/bob/#", 1, nil)
	tok.WaitTimeout(v3Wait)
	if got := tok.(*mqtt.SubscribeToken).Result()["users/bob/#"]; got != 0x80 {
		t.Errorf("users/bob/#: SUBACK %#x, want 0x80", got)
	}
	c.pub("users/bob/x", 1, false, "dropped") // acknowledged, so the client's flow goes on
	c.pub("users/alice/x", 1, false, "kept")
	if m := c.next(); m.Topic != "users/alice/x" {
		t.Fatalf("got %+v", m)
	}
	c.none(v3Quiet)
}

func TestSecurityPublishRateV5(t *testing.T) {
	b := startBroker(t, func(c *config.Config) { c.Auth.PublishRate = 5 })
	by := secBystander(t, b)
	c := secConnect(t, b, codec.V5, "flood")
	quota := 0
	for i := 1; i <= 40; i++ {
		c.Send(&codec.Publish{Topic: "flood/x", QoS: 1, PacketID: uint16(i), Payload: []byte("x")})
		p := c.Read()
		if d, ok := p.(*codec.Disconnect); ok {
			if d.ReasonCode != codec.MessageRateTooHigh {
				t.Fatalf("DISCONNECT %s, want 0x96 Message rate too high", d.ReasonCode)
			}
			if quota == 0 {
				t.Error("disconnected without first being told 0x97 Quota exceeded")
			}
			c.ExpectClosed(v5Timeout)
			by.check()
			return
		}
		ack, ok := p.(*codec.Puback)
		if !ok {
			t.Fatalf("got %T", p)
		}
		switch {
		case i <= 5 && ack.ReasonCode >= 0x80:
			t.Fatalf("publish %d within the burst: %s", i, ack.ReasonCode)
		case ack.ReasonCode == codec.QuotaExceeded:
			quota++
		}
	}
	t.Fatal("40 publishes at once with publish_rate = 5 were never cut off")
}

// 3.1.1 has no code for "slow down": the broker reads the client more slowly instead, and
// nothing is lost.
func TestSecurityPublishRateV311(t *testing.T) {
	b := startBroker(t, func(c *config.Config) { c.Auth.PublishRate = 20 })
	sub := secConnect(t, b, codec.V311, "sub")
	sub.sub("slow/#", 0)
	pub := secConnect(t, b, codec.V311, "pub")
	start := time.Now()
	const n = 40 // a burst of 20, then 20 at 20/s: about a second
	for i := 0; i < n; i++ {
		pub.Send(&codec.Publish{Topic: "slow/x", Payload: []byte{byte(i)}})
	}
	for i := 0; i < n; i++ {
		if p := sub.expectPublish(); p.Payload[0] != byte(i) {
			t.Fatalf("message %d out of order: %d", i, p.Payload[0])
		}
	}
	if d := time.Since(start); d < 700*time.Millisecond {
		t.Errorf("%d messages at publish_rate = 20 took %v, want about a second", n, d)
	}
}

// ---- TLS ----

type secPKI struct {
	ca, other                *testcerts.CA
	dir, cert, key, caFile   string
	dev1, dev2, expired, bad tls.Certificate
}

func newSecPKI(t *testing.T) *secPKI {
	p := &secPKI{ca: testcerts.NewCA(t, "actormq test CA"), other: testcerts.NewCA(t, "someone else"), dir: t.TempDir()}
	p.cert, p.key = p.ca.Server(t, "broker").Write(t, p.dir, "server")
	p.caFile = filepath.Join(p.dir, "ca.pem")
	testcerts.WriteFile(t, p.caFile, p.ca.PEM)
	p.dev1, p.dev2 = p.ca.Client(t, "dev-1").TLS, p.ca.Client(t, "dev-2").TLS
	p.expired, p.bad = p.ca.ExpiredClient(t, "dev-1").TLS, p.other.Client(t, "dev-1").TLS
	return p
}

func (p *secPKI) client(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: p.ca.Pool(), Certificates: certs, ServerName: "127.0.0.1"}
}

// forceCert sends c whatever CAs the server names, as a careless or hostile client would.
func forceCert(cfg *tls.Config, c tls.Certificate) *tls.Config {
	cfg.Certificates = nil
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
	return cfg
}

func TestSecurityTLSAndMutualTLS(t *testing.T) {
	pki := newSecPKI(t)
	acl := secFile(t, "acl", "user *\nallow readwrite open/#\nallow readwrite dev/%u/#\nallow readwrite v5/bystander\n")
	b := startBroker(t, func(c *config.Config) {
		c.Auth.ACLFile = acl
		c.Listeners = append(c.Listeners,
			config.Listener{Name: "mqtts", Kind: "tls", Address: "127.0.0.1:0", Protocol: "3.1.1",
				TLSCert: pki.cert, TLSKey: pki.key, TLSClientCA: pki.caFile, TLSClientAuth: "required", UseCNAsUsername: true},
			config.Listener{Name: "wss", Kind: "wss", Address: "127.0.0.1:0", Protocol: "5.0", Path: "/mqtt",
				TLSCert: pki.cert, TLSKey: pki.key, TLSClientAuth: "none"})
	})
	tlsAddr, wssAddr := b.Addr("mqtts").String(), b.Addr("wss").String()
	by := secBystander(t, b)

	// mTLS with Paho: the certificate's common name is the user name, so dev/%u/# is dev-1's.
	dev1 := v3Connect(t, "ssl://"+tlsAddr, "tls-dev1", func(o *mqtt.ClientOptions) { o.SetTLSConfig(pki.client(pki.dev1)) })
	if got := dev1.sub("dev/dev-1/#", 1); got != 1 {
		t.Fatalf("dev-1 subscribing to its own tree: %#x", got)
	}
	dev1.pub("dev/dev-1/temp", 1, false, "21.5")
	if m := dev1.next(); m.Payload != "21.5" {
		t.Fatalf("got %+v", m)
	}
	dev2 := v3Connect(t, "ssl://"+tlsAddr, "tls-dev2", func(o *mqtt.ClientOptions) { o.SetTLSConfig(pki.client(pki.dev2)) })
	tok := dev2.Subscribe("dev/dev-1/#", 1, nil)
	tok.WaitTimeout(v3Wait)
	if got := tok.(*mqtt.SubscribeToken).Result()["dev/dev-1/#"]; got != 0x80 {
		t.Errorf("dev-2 subscribing to dev-1's tree: %#x, want 0x80", got)
	}

	// Refused in the handshake: no certificate, an expired one, one from another CA.
	for name, cfg := range map[string]*tls.Config{
		"no certificate": pki.client(),
		"expired":        forceCert(pki.client(), pki.expired),
		"wrong CA":       forceCert(pki.client(), pki.bad),
	} {
		if _, err := v3TryConnect(t, "ssl://"+tlsAddr, "tls-"+strings.ReplaceAll(name, " ", "-"), func(o *mqtt.ClientOptions) { o.SetTLSConfig(cfg) }); err == nil {
			t.Errorf("%s: connected", name)
		}
	}
	// A client that does not trust the server's CA gives up itself.
	if _, err := v3TryConnect(t, "ssl://"+tlsAddr, "tls-untrusting", func(o *mqtt.ClientOptions) {
		o.SetTLSConfig(&tls.Config{RootCAs: pki.other.Pool(), Certificates: []tls.Certificate{pki.dev1}})
	}); err == nil {
		t.Error("a client trusting another CA connected")
	}
	// Plain MQTT to the TLS port: no CONNACK, the connection is closed.
	raw := dialRaw(t, tlsAddr, codec.V311)
	raw.Send(&codec.Connect{ProtocolName: "MQTT", Version: codec.V311, CleanStart: true, KeepAlive: 30, ClientID: "plain"})
	if p := raw.ExpectClosed(v5Timeout); p != nil {
		t.Errorf("plain TCP to a TLS port got %T", p)
	}

	// WSS with Paho, server certificate only.
	ws := v3Connect(t, "wss://"+wssAddr+"/mqtt", "wss-1", func(o *mqtt.ClientOptions) {
		o.SetTLSConfig(&tls.Config{RootCAs: pki.ca.Pool()})
	})
	ws.sub("open/#", 1)
	dev1.pub("open/hello", 1, false, "from tls")
	if m := ws.next(); m.Payload != "from tls" {
		t.Fatalf("wss got %+v", m)
	}

	// Reload: a new server certificate for new connections, open ones untouched.
	oldSerial := secServerSerial(t, tlsAddr, pki.client(pki.dev2))
	pki.ca.Server(t, "broker renewed").Write(t, pki.dir, "server")
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	if s := secServerSerial(t, tlsAddr, pki.client(pki.dev2)); s == oldSerial {
		t.Error("a new connection after Reload still gets the old certificate")
	}
	if s := secServerSerial(t, wssAddr, &tls.Config{RootCAs: pki.ca.Pool()}); s == oldSerial {
		t.Error("wss: a new connection after Reload still gets the old certificate")
	}
	dev1.pub("dev/dev-1/temp", 1, false, "22.0")
	if m := dev1.next(); m.Payload != "22.0" {
		t.Fatalf("after reload got %+v", m)
	}
	// A broken file is reported, naming it, and the old one stays in use.
	testcerts.WriteFile(t, pki.cert, []byte("garbage"))
	if err := b.Reload(); err == nil || !strings.Contains(err.Error(), pki.cert) || !strings.Contains(err.Error(), "mqtts") {
		t.Errorf("reload with a broken certificate: %v", err)
	}
	v3Connect(t, "ssl://"+tlsAddr, "tls-after-bad-reload", func(o *mqtt.ClientOptions) { o.SetTLSConfig(pki.client(pki.dev2)) })
	by.check()
}

func secServerSerial(t *testing.T, addr string, cfg *tls.Config) string {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: v5Timeout}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// A missing certificate stops the start with a message naming the listener and the file.
func TestSecurityTLSMissingCertificate(t *testing.T) {
	cfg := config.Default()
	for i := range cfg.Listeners {
		cfg.Listeners[i].Address = "127.0.0.1:0"
	}
	cfg.Console.Listen = ""
	cfg.Store.DataDir = t.TempDir() // not the default data/ beside the test
	missing := filepath.Join(t.TempDir(), "nope.crt")
	cfg.Listeners = append(cfg.Listeners, config.Listener{Name: "mqtts", Kind: "tls", Address: "127.0.0.1:0",
		Protocol: "3.1.1", TLSCert: missing, TLSKey: missing, TLSClientAuth: "none"})
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := supervisor.Start(cfg, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)))
	if err == nil {
		_ = b.Stop(t.Context())
		t.Fatal("started without a certificate")
	}
	if !strings.Contains(err.Error(), `"mqtts"`) || !strings.Contains(err.Error(), missing) {
		t.Errorf("error %q does not name the listener and the file", err)
	}
}

// ---- enhanced authentication ----

func TestSecurityAuthSCRAM(t *testing.T) {
	pw := secUsers(t, true, "alice", "pencil")
	b := startBroker(t, func(c *config.Config) {
		c.Auth.AllowAnonymous = false
		c.Auth.PasswordFile = pw
		c.Auth.SCRAM = true
	})
	by := secBystander(t, b, secLogin("alice", "pencil"))
	scram := func(id, password string) (*v5Client, *codec.Connack) {
		c := secDial(t, b, codec.V5, id)
		sc := &auth.SCRAMClient{User: "alice", Password: password}
		c.Send(&codec.Connect{ProtocolName: "MQTT", Version: codec.V5, CleanStart: true, KeepAlive: 30, ClientID: id,
			Properties: v5Props(func(p *codec.Properties) {
				p.SetAuthenticationMethod("SCRAM-SHA-256")
				p.SetAuthenticationData(sc.First())
			})})
		// The broker asks for more with AUTH 0x18 and the same method [MQTT-4.12.0-2] [MQTT-4.12.0-5].
		a, ok := c.Read().(*codec.Auth)
		if !ok || a.ReasonCode != codec.ContinueAuthentication {
			t.Fatalf("%s: want AUTH 0x18, got %+v", id, a)
		}
		if m, _ := a.Properties.AuthenticationMethod(); m != "SCRAM-SHA-256" {
			t.Fatalf("AUTH method %q [MQTT-4.12.0-5]", m)
		}
		first, _ := a.Properties.AuthenticationData()
		final, err := sc.Final(first)
		if err != nil {
			t.Fatal(err)
		}
		c.Send(&codec.Auth{ReasonCode: codec.ContinueAuthentication, Properties: v5Props(func(p *codec.Properties) { // [MQTT-4.12.0-3]
			p.SetAuthenticationMethod("SCRAM-SHA-256")
			p.SetAuthenticationData(final)
		})})
		ack, ok := c.Read().(*codec.Connack)
		if !ok {
			t.Fatalf("%s: want CONNACK", id)
		}
		if ack.ReasonCode == codec.Success {
			if m, _ := ack.Properties.AuthenticationMethod(); m != "SCRAM-SHA-256" {
				t.Errorf("CONNACK method %q [MQTT-4.12.0-5]", m)
			}
			data, _ := ack.Properties.AuthenticationData()
			if err := sc.Verify(data); err != nil {
				t.Errorf("server signature: %v", err)
			}
		}
		return c, ack
	}
	c, ack := scram("scram-ok", "pencil")
	if ack.ReasonCode != codec.Success {
		t.Fatalf("SCRAM with the right password: %s", ack.ReasonCode)
	}
	c.sub("s/x", 1)
	c.pub("s/x", 1, "authenticated")
	c.receiveMsg("s/x", "authenticated")

	// Re-authentication on the open connection [MQTT-4.12.1-1]: AUTH 0x19, then the same
	// exchange, ended by AUTH 0x00.
	reauth := func(c *v5Client, password string) codec.Packet {
		sc := &auth.SCRAMClient{User: "alice", Password: password}
		c.Send(&codec.Auth{ReasonCode: codec.ReAuthenticate, Properties: v5Props(func(p *codec.Properties) {
			p.SetAuthenticationMethod("SCRAM-SHA-256")
			p.SetAuthenticationData(sc.First())
		})})
		a := v5Await[*codec.Auth](c, "AUTH 0x18", nil)
		first, _ := a.Properties.AuthenticationData()
		final, err := sc.Final(first)
		if err != nil {
			t.Fatal(err)
		}
		c.Send(&codec.Auth{ReasonCode: codec.ContinueAuthentication, Properties: v5Props(func(p *codec.Properties) {
			p.SetAuthenticationMethod("SCRAM-SHA-256")
			p.SetAuthenticationData(final)
		})})
		p := c.Read()
		if a, ok := p.(*codec.Auth); ok && a.ReasonCode == codec.Success {
			data, _ := a.Properties.AuthenticationData()
			if err := sc.Verify(data); err != nil {
				t.Errorf("re-authentication: server signature: %v", err)
			}
		}
		return p
	}
	if p := reauth(c, "pencil"); p.(*codec.Auth).ReasonCode != codec.Success {
		t.Fatalf("re-authentication: %+v", p)
	}
	c.pub("s/x", 1, "still here")
	c.receiveMsg("s/x", "still here")
	c2, _ := scram("scram-reauth-bad", "pencil")
	if d, ok := reauth(c2, "crayon").(*codec.Disconnect); !ok || d.ReasonCode < 0x80 {
		t.Fatalf("re-authentication with a wrong password: %+v, want DISCONNECT [MQTT-4.12.1-2]", d)
	}
	c2.ExpectClosed(v5Timeout)

	bad, ack := scram("scram-bad", "crayon")
	if ack.ReasonCode < 0x80 {
		t.Fatalf("SCRAM with a wrong password: %s", ack.ReasonCode)
	}
	bad.ExpectClosed(v5Timeout) // [MQTT-4.12.0-4]

	// A method the broker does not offer [MQTT-4.12.0-1].
	secRefused(t, b, codec.V5, "kerberos", codec.BadAuthenticationMethod, func(p *codec.Connect) {
		p.Properties.SetAuthenticationMethod("GS2-KRB5")
	})
	// Without a method, no AUTH from the broker [MQTT-4.12.0-6]; AUTH from the client is a
	// protocol error [MQTT-4.12.0-7].
	plain := secConnect(t, b, codec.V5, "plain", secLogin("alice", "pencil"))
	plain.Send(&codec.Auth{ReasonCode: codec.ContinueAuthentication})
	plain.expectDisconnect(codec.ProtocolError)
	by.check()
}
