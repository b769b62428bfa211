package listeners

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync/atomic"
)

// tlsFiles serves a listener's TLS configuration from an atomically swapped pointer, so that
// Reload changes the certificate (and client CAs) for new handshakes while connections already
// open keep the session they negotiated.
type tlsFiles struct {
	name                string // listener name, for errors
	cert, key, clientCA string
	clientAuth          tls.ClientAuthType
	cur                 atomic.Pointer[tls.Config]
	serve               *tls.Config // what the listener hands tls.Server: asks cur per handshake
}

func newTLSFiles(name, cert, key, clientCA, clientAuth string) (*tlsFiles, error) {
	f := &tlsFiles{name: name, cert: cert, key: key, clientCA: clientCA}
	switch clientAuth {
	case "", "none":
		f.clientAuth = tls.NoClientCert
	case "optional":
		f.clientAuth = tls.VerifyClientCertIfGiven
	case "required":
		f.clientAuth = tls.RequireAndVerifyClientCert
	default:
		return nil, fmt.Errorf("listener %q: tls_client_auth = %q: want none, optional or required", name, clientAuth)
	}
	if err := f.load(); err != nil {
		return nil, err
	}
	f.serve = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return f.cur.Load(), nil
		},
	}
	return f, nil
}

// load reads the files and swaps them in; on error the configuration in use stays.
func (f *tlsFiles) load() error {
	if f.cert == "" || f.key == "" {
		return fmt.Errorf("listener %q: a TLS listener needs tls_cert and tls_key", f.name)
	}
	for _, p := range []struct{ key, path string }{{"tls_cert", f.cert}, {"tls_key", f.key}} {
		if _, err := os.Stat(p.path); err != nil {
			return fmt.Errorf("listener %q: %s %s: %w", f.name, p.key, p.path, err)
		}
	}
	pair, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return fmt.Errorf("listener %q: tls_cert %s / tls_key %s: %w", f.name, f.cert, f.key, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   f.clientAuth,
	}
	if f.clientAuth != tls.NoClientCert {
		if f.clientCA == "" {
			return fmt.Errorf("listener %q: tls_client_auth needs tls_client_ca", f.name)
		}
		pem, err := os.ReadFile(f.clientCA)
		if err != nil {
			return fmt.Errorf("listener %q: tls_client_ca %s: %w", f.name, f.clientCA, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("listener %q: tls_client_ca %s: no PEM certificate in the file", f.name, f.clientCA)
		}
		cfg.ClientCAs = pool
	}
	f.cur.Store(cfg)
	return nil
}

// config is the tls.Config a listener serves with: every handshake asks for the current one.
func (f *tlsFiles) config() *tls.Config { return f.serve }

// ReloadTLS reads a tls or wss listener's certificate, key and client CA files again. New
// connections use them; open ones are not touched. On error the files in use stay in use.
// For other kinds it does nothing.
func (l *Listener) ReloadTLS() error {
	if l.tls == nil {
		return nil
	}
	return l.tls.load()
}
