// Package auth decides who may connect to the broker, what each client may publish and
// subscribe to, and how fast: the password file (bcrypt), the ACL file, per-source and
// per-client token buckets, and MQTT 5.0 enhanced authentication (SCRAM-SHA-256).
//
// A Service is shared by every connection of a broker. Its files are held behind atomic
// pointers, so Reload swaps them under running connections without a lock on the hot path.
package auth

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync/atomic"
	"time"

	"github.com/actormq/actormq/config"
)

// Service holds the broker's authentication and authorization state.
type Service struct {
	cfg config.Auth

	passwords atomic.Pointer[Passwords]
	acl       atomic.Pointer[ACL]

	failed   *Keyed // failed logins per source address
	connects *Keyed // CONNECTs per source address
}

// New loads the files cfg names. An error names the file.
func New(cfg config.Auth) (*Service, error) {
	s := &Service{cfg: cfg}
	if n := cfg.MaxFailedLoginsPerMinute; n > 0 {
		s.failed = NewKeyed(float64(n)/60, float64(n))
	}
	if n := cfg.ConnectRate; n > 0 {
		s.connects = NewKeyed(float64(n), float64(n))
	}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the password and ACL files again. On error the files in use stay in use; both
// are read before either is swapped, so a half-done reload never mixes old and new.
func (s *Service) Reload() error {
	var (
		pw  *Passwords
		acl *ACL
		err error
	)
	if s.cfg.PasswordFile != "" {
		if pw, err = LoadPasswords(s.cfg.PasswordFile); err != nil {
			return err
		}
	}
	if s.cfg.ACLFile != "" {
		if acl, err = LoadACL(s.cfg.ACLFile); err != nil {
			return err
		}
	}
	s.passwords.Store(pw)
	s.acl.Store(acl)
	return nil
}

// Config is the [auth] section the service was built from.
func (s *Service) Config() config.Auth { return s.cfg }

// HasACL says whether publishes and subscriptions are checked at all; it does not change on
// Reload, so a connection can decide once.
func (s *Service) HasACL() bool { return s.cfg.ACLFile != "" }

// Verdict is the outcome of a login.
type Verdict uint8

// The outcomes of Login; the connection maps them to CONNACK codes of its protocol version.
const (
	Accepted       Verdict = iota
	BadCredentials         // 3.1.1 0x04, 5.0 0x86
	NotAuthorized          // 3.1.1 0x05, 5.0 0x87
	RateLimited            // 3.1.1 0x03, 5.0 0x9F
)

func (v Verdict) String() string {
	switch v {
	case Accepted:
		return "accepted"
	case BadCredentials:
		return "bad user name or password"
	case NotAuthorized:
		return "not authorized"
	default:
		return "too many attempts from this address"
	}
}

// Login is what a CONNECT presents.
type Login struct {
	Source      string // the remote IP address
	Username    string
	HasUsername bool
	Password    []byte
	HasPassword bool
	// CertUser is the common name of a verified client certificate on a listener with
	// use_cn_as_username, "" otherwise.
	CertUser string
}

// AllowConnect takes one CONNECT from source's budget (auth.connect_rate); false: refuse it.
func (s *Service) AllowConnect(source string) bool {
	return s.connects == nil || s.connects.Allow(source, time.Now(), 1)
}

// Check decides a login and returns the user name the client is known by from then on ("" for
// anonymous). It may take a bcrypt comparison (tens of milliseconds): call it off any actor's
// hot path. Failed attempts are counted per source address.
func (s *Service) Check(l Login) (user string, v Verdict) {
	if s.failed != nil && s.failed.Available(l.Source, time.Now()) < 1 {
		return "", RateLimited
	}
	if l.CertUser != "" {
		return l.CertUser, Accepted // the TLS handshake verified the certificate
	}
	pw := s.passwords.Load()
	switch {
	case !l.HasUsername && !l.HasPassword:
		if s.cfg.AllowAnonymous {
			return "", Accepted
		}
		return "", NotAuthorized
	case pw == nil:
		// No password file: a user name proves nothing, so it counts as anonymous.
		if s.cfg.AllowAnonymous {
			return "", Accepted
		}
		return "", NotAuthorized
	case !l.HasUsername:
		s.fail(l.Source)
		return "", BadCredentials
	}
	if !pw.Check(l.Username, l.Password) {
		s.fail(l.Source)
		return "", BadCredentials
	}
	return l.Username, Accepted
}

// Failed counts a failed login from source that did not go through Check (enhanced auth).
func (s *Service) Failed(source string) { s.fail(source) }

// LoginBlocked says whether source has used up its failed logins.
func (s *Service) LoginBlocked(source string) bool {
	return s.failed != nil && s.failed.Available(source, time.Now()) < 1
}

func (s *Service) fail(source string) {
	if s.failed != nil {
		s.failed.Take(source, time.Now(), 1)
	}
}

// CanPublish says whether a client may publish to topic. Without an ACL file, yes.
func (s *Service) CanPublish(user, clientID, topic string) bool {
	a := s.acl.Load()
	return a == nil || a.CanPublish(user, clientID, topic)
}

// CanSubscribe says whether a client may subscribe to filter (without its $share prefix).
func (s *Service) CanSubscribe(user, clientID, filter string) bool {
	a := s.acl.Load()
	return a == nil || a.CanSubscribe(user, clientID, filter)
}

// NewPublishLimit returns the per-client publish limit, nil when there is none.
func (s *Service) NewPublishLimit() *PublishLimit {
	if s.cfg.PublishRate <= 0 && s.cfg.PublishBytesRate <= 0 {
		return nil
	}
	p := &PublishLimit{}
	if r := float64(s.cfg.PublishRate); r > 0 {
		p.msgs = NewBucket(r, r)
	}
	if r := float64(s.cfg.PublishBytesRate); r > 0 {
		p.bytes = NewBucket(r, r)
	}
	return p
}

// PublishLimit is one client's publish budget, used by its reader goroutine alone.
type PublishLimit struct {
	msgs, bytes *Bucket
}

// Take counts one publish of n payload bytes. It returns the time the client is in debt (0:
// within its rate) and whether it is far over: in debt by more than a second of its rate,
// which a client that slows down when told never reaches.
func (p *PublishLimit) Take(now time.Time, n int) (debt time.Duration, far bool) {
	for _, b := range []*Bucket{p.msgs, p.bytes} {
		if b == nil {
			continue
		}
		amount := 1.0
		if b == p.bytes {
			amount = float64(n)
		}
		left := b.Take(now, amount)
		debt = max(debt, b.Wait(left))
		far = far || left < -b.burst
	}
	return debt, far
}

// PeerCertificate is the verified client certificate of a TLS connection, found through the
// wrappers around it (each with an Unwrap() net.Conn method), or nil.
func PeerCertificate(c net.Conn) *x509.Certificate {
	for range 8 {
		if t, ok := c.(interface{ ConnectionState() tls.ConnectionState }); ok {
			st := t.ConnectionState()
			if len(st.VerifiedChains) > 0 && len(st.VerifiedChains[0]) > 0 {
				return st.VerifiedChains[0][0]
			}
			return nil
		}
		u, ok := c.(interface{ Unwrap() net.Conn })
		if !ok {
			return nil
		}
		c = u.Unwrap()
	}
	return nil
}

// SourceOf is the address failed logins and connects are counted by: the IP without the port.
func SourceOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// Needed says whether cfg asks for any check at all. When not, the broker runs without a
// Service and pays nothing for one.
func Needed(cfg config.Config) bool {
	a := cfg.Auth
	if !a.AllowAnonymous || a.PasswordFile != "" || a.ACLFile != "" || a.ConnectRate > 0 ||
		a.PublishRate > 0 || a.PublishBytesRate > 0 || a.SCRAM {
		return true
	}
	for _, l := range cfg.Listeners {
		if l.UseCNAsUsername {
			return true
		}
	}
	return false
}
