package listeners

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/actormq/actormq/config"
	"github.com/actormq/actormq/internal/testcerts"
)

type tlsSetup struct {
	ca                  *testcerts.CA
	dir, cert, key, cas string
}

func newTLSSetup(t *testing.T) *tlsSetup {
	t.Helper()
	s := &tlsSetup{ca: testcerts.NewCA(t, "test CA"), dir: t.TempDir()}
	s.cert, s.key = s.ca.Server(t, "server").Write(t, s.dir, "server")
	s.cas = filepath.Join(s.dir, "ca.pem")
	testcerts.WriteFile(t, s.cas, s.ca.PEM)
	return s
}

func (s *tlsSetup) listener(kind, clientAuth string) config.Listener {
	l := config.Listener{Name: "secure", Kind: kind, Address: "127.0.0.1:0", Protocol: "3.1.1",
		TLSCert: s.cert, TLSKey: s.key, TLSClientAuth: clientAuth}
	if clientAuth != "none" {
		l.TLSClientCA = s.cas
	}
	return l
}

// echo answers what it reads on every handed conn, so a client sees a round trip.
func echo(c net.Conn, _ *Listener) {
	go func() {
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
}

func roundTrip(t *testing.T, c net.Conn) error {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if string(b) != "ping" {
		t.Fatalf("echo %q", b)
	}
	return nil
}

func TestTLSListenerServesAndRefusesPlainTCP(t *testing.T) {
	s := newTLSSetup(t)
	l := start(t, s.listener("tls", "none"), echo, Options{})
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: s.ca.Pool(), ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := roundTrip(t, c); err != nil {
		t.Fatal(err)
	}
	if v := c.ConnectionState().Version; v < tls.VersionTLS12 {
		t.Errorf("TLS version %x", v)
	}
	// TLS 1.1 is refused: 1.2 is the minimum.
	if c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: s.ca.Pool(), MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
	// Plain bytes to a TLS port end in a closed connection.
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = raw.Write([]byte("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")) // a CONNECT
	if n, err := raw.Read(make([]byte, 64)); err == nil {
		// The server answers with a TLS alert at most, never with an echo, and closes.
		if _, err := raw.Read(make([]byte, 64)); err == nil {
			t.Errorf("plain TCP: the TLS listener kept the connection open (read %d bytes)", n)
		}
	}
}

func TestTLSClientCertificates(t *testing.T) {
	s := newTLSSetup(t)
	other := testcerts.NewCA(t, "other CA")
	good := s.ca.Client(t, "alice").TLS
	expired := s.ca.ExpiredClient(t, "alice").TLS
	foreign := other.Client(t, "mallory").TLS

	dial := func(l *Listener, certs ...tls.Certificate) error {
		c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: s.ca.Pool(), Certificates: certs})
		if err != nil {
			return err
		}
		defer c.Close()
		// With TLS 1.3 the client learns of a refused certificate on its first read.
		return roundTrip(t, c)
	}
	req := start(t, s.listener("tls", "required"), echo, Options{})
	if err := dial(req, good); err != nil {
		t.Errorf("required, good certificate: %v", err)
	}
	for name, certs := range map[string][]tls.Certificate{"none": nil, "expired": {expired}, "wrong CA": {foreign}} {
		if err := dial(req, certs...); err == nil {
			t.Errorf("required, %s: connection worked", name)
		}
	}
	opt := start(t, s.listener("tls", "optional"), echo, Options{})
	if err := dial(opt); err != nil {
		t.Errorf("optional, no certificate: %v", err)
	}
	if err := dial(opt, good); err != nil {
		t.Errorf("optional, good certificate: %v", err)
	}
	// Go's client sends no certificate the server's CA list does not name; force it, as a
	// careless or hostile client would.
	c, err := tls.Dial("tcp", opt.Addr().String(), &tls.Config{RootCAs: s.ca.Pool(),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &foreign, nil }})
	if err == nil {
		err = roundTrip(t, c)
		c.Close()
	}
	if err == nil {
		t.Error("optional, wrong CA: connection worked")
	}
}

// The handler gets a conn through which the verified client certificate is reachable.
func TestTLSPeerCertificateReachesHandler(t *testing.T) {
	s := newTLSSetup(t)
	h := newHanded()
	l := start(t, s.listener("tls", "required"), h.handler, Options{})
	// The server side handshakes when the handed conn is first used, so dial concurrently.
	dialed := make(chan error, 1)
	go func() {
		c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: s.ca.Pool(), Certificates: []tls.Certificate{s.ca.Client(t, "dev-7").TLS}})
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
		dialed <- err
	}()
	got := h.next(t)
	tc, ok := got.(*tls.Conn)
	if !ok {
		t.Fatalf("handed %T, want *tls.Conn", got)
	}
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if ch := tc.ConnectionState().VerifiedChains; len(ch) == 0 || ch[0][0].Subject.CommonName != "dev-7" {
		t.Fatalf("verified chains %v", ch)
	}
	if err := <-dialed; err != nil {
		t.Fatal(err)
	}
}

func TestWSSListener(t *testing.T) {
	s := newTLSSetup(t)
	h := newHanded()
	l := start(t, s.listener("wss", "required"), h.handler, Options{})
	d := websocket.Dialer{
		Subprotocols:    []string{"mqtt"},
		TLSClientConfig: &tls.Config{RootCAs: s.ca.Pool(), Certificates: []tls.Certificate{s.ca.Client(t, "web-1").TLS}},
	}
	ws, _, err := d.Dial("wss://"+l.Addr().String()+"/mqtt", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	c := h.next(t)
	u, ok := c.(interface{ Unwrap() net.Conn })
	if !ok {
		t.Fatalf("%T has no Unwrap", c)
	}
	tc, ok := u.Unwrap().(*tls.Conn)
	if !ok {
		t.Fatalf("under the WebSocket: %T, want *tls.Conn", u.Unwrap())
	}
	if ch := tc.ConnectionState().VerifiedChains; len(ch) == 0 || ch[0][0].Subject.CommonName != "web-1" {
		t.Fatalf("verified chains %v", ch)
	}
	if err := ws.WriteMessage(websocket.BinaryMessage, []byte{0xC0, 0}); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 2)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, b); err != nil || !bytes.Equal(b, []byte{0xC0, 0}) {
		t.Fatalf("read %x, %v", b, err)
	}
	// Without a client certificate the handshake fails.
	d.TLSClientConfig.Certificates = nil
	if ws, _, err := d.Dial("wss://"+l.Addr().String()+"/mqtt", nil); err == nil {
		ws.Close()
		t.Error("wss without a client certificate worked")
	}
}

func TestTLSReloadKeepsConnections(t *testing.T) {
	s := newTLSSetup(t)
	l := start(t, s.listener("tls", "none"), echo, Options{})
	cfg := &tls.Config{RootCAs: s.ca.Pool()}
	old, err := tls.Dial("tcp", l.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	first := old.ConnectionState().PeerCertificates[0].SerialNumber

	// A broken file is refused and the old certificate stays.
	testcerts.WriteFile(t, s.cert, []byte("not a certificate"))
	if err := l.ReloadTLS(); err == nil || !strings.Contains(err.Error(), `"secure"`) || !strings.Contains(err.Error(), s.cert) {
		t.Errorf("reload of a broken file: %v, want an error naming the listener and the file", err)
	}
	s.ca.Server(t, "server 2").Write(t, s.dir, "server")
	if err := l.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", l.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.ConnectionState().PeerCertificates[0].SerialNumber.Cmp(first) == 0 {
		t.Error("a new connection still gets the old certificate")
	}
	if err := roundTrip(t, old); err != nil {
		t.Errorf("the connection opened before the reload: %v", err)
	}
}

func TestTLSMissingFilesNameListenerAndPath(t *testing.T) {
	s := newTLSSetup(t)
	missing := filepath.Join(s.dir, "nope.pem")
	for _, mutate := range []func(*config.Listener){
		func(l *config.Listener) { l.TLSCert = missing },
		func(l *config.Listener) { l.TLSKey = missing },
		func(l *config.Listener) { l.TLSClientAuth, l.TLSClientCA = "required", missing },
	} {
		cfg := s.listener("tls", "none")
		mutate(&cfg)
		_, err := Start(cfg, echo, Options{})
		if err == nil || !strings.Contains(err.Error(), `"secure"`) || !strings.Contains(err.Error(), missing) {
			t.Errorf("err = %v, want one naming the listener and %s", err, missing)
		}
	}
	// A key that does not belong to the certificate.
	other := filepath.Join(s.dir, "other.key")
	if err := os.WriteFile(other, s.ca.Server(t, "x").KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := s.listener("tls", "none")
	cfg.TLSKey = other
	if _, err := Start(cfg, echo, Options{}); err == nil || !strings.Contains(err.Error(), "secure") {
		t.Errorf("mismatched key: %v", err)
	}
}
