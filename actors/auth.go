package actors

import (
	"crypto/tls"
	"errors"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/actormq/actormq/auth"
	"github.com/actormq/actormq/codec"
)

// The broker's side of authentication, authorization and rate limits (the auth package holds
// the decisions). The connection asks here before it attaches a session, the reader before it
// routes a publish, the session before it adds a subscription. With Env.Auth nil all of it is
// skipped.

// authDone is the verdict of a password check, made off the actor because bcrypt takes tens of
// milliseconds.
type authDone struct {
	user    string
	verdict auth.Verdict
	req     *attachRequest
}

// connectAllowed applies auth.connect_rate to a CONNECT from this connection's source address.
func (c *Connection) connectAllowed(ctx actor.Context) bool {
	a := c.env.Auth
	if a == nil || a.AllowConnect(auth.SourceOf(c.conn.RemoteAddr())) {
		return true
	}
	c.refuse(ctx, codec.ConnectionRateExceeded, "too many CONNECTs from this address (auth.connect_rate)")
	return false
}

// offersMethod says whether the broker takes part in the enhanced authentication method.
func (c *Connection) offersMethod(name string) bool {
	return c.env.Auth != nil && c.env.Auth.Method(name) != nil
}

// authenticate decides the login of a checked CONNECT and then sends req to the registry.
func (c *Connection) authenticate(ctx actor.Context, p *codec.Connect, req *attachRequest) {
	a := c.env.Auth
	if a == nil {
		ctx.Send(c.env.Registry, req)
		return
	}
	source := auth.SourceOf(c.conn.RemoteAddr())
	if name, ok := p.Properties.AuthenticationMethod(); ok {
		if a.LoginBlocked(source) {
			c.refuse(ctx, codec.ConnectionRateExceeded, "too many failed logins from this address")
			return
		}
		data, _ := p.Properties.AuthenticationData()
		c.authEx = &authExchange{method: name, ex: a.Method(name).Start(), req: req, source: source}
		c.authStep(ctx, data)
		return
	}
	login := auth.Login{Source: source, Username: p.Username, HasUsername: p.HasUsername,
		Password: p.Password, HasPassword: p.HasPassword}
	if c.useCNAsUsername() {
		if cert := auth.PeerCertificate(c.conn); cert != nil && cert.Subject.CommonName != "" {
			login.CertUser = cert.Subject.CommonName
		}
	}
	self, root := ctx.Self(), c.env.System.Root
	go func() {
		user, v := a.Check(login)
		root.Send(self, &authDone{user: user, verdict: v, req: req})
	}()
}

func (c *Connection) authDone(ctx actor.Context, m *authDone) {
	if c.state != stateAttaching {
		return // closed meanwhile
	}
	switch m.verdict {
	case auth.Accepted:
		if w := m.req.will; w != nil && c.env.Auth.HasACL() && !c.env.Auth.CanPublish(m.user, m.req.clientID, w.Topic) {
			// Refused now rather than dropped later: the client learns why, and a will can
			// never be a way around the ACL.
			c.refuse(ctx, codec.NotAuthorized, "not authorized to publish the will topic") // 3.1.1: 0x05
			return
		}
		c.user = m.user
		m.req.user = m.user
		ctx.Send(c.env.Registry, m.req)
	case auth.BadCredentials:
		c.refuse(ctx, codec.BadUserNameOrPassword, "bad user name or password") // 3.1.1: 0x04
	case auth.NotAuthorized:
		c.refuse(ctx, codec.NotAuthorized, "not authorized (auth.allow_anonymous is off)") // 3.1.1: 0x05
	default:
		c.refuse(ctx, codec.ConnectionRateExceeded, "too many failed logins from this address")
	}
}

// authExchange is the enhanced authentication of a connection [MQTT-4.12]: ex is the exchange
// in progress, nil between exchanges once connected (the method stays, for re-authentication).
type authExchange struct {
	method string
	ex     auth.Exchange
	req    *attachRequest // nil when re-authenticating
	source string
}

// authStep feeds the client's data to the method: the exchange goes on with AUTH 0x18
// [MQTT-4.12.0-2], or ends with the CONNACK [MQTT-4.12.0-5] (re-authentication: AUTH 0x00)
// or a refusal.
func (c *Connection) authStep(ctx actor.Context, data []byte) {
	x := c.authEx
	reply, user, err := x.ex.Next(data)
	connected := c.state == stateConnected
	switch {
	case errors.Is(err, auth.ErrContinue):
		c.sendAuth(codec.ContinueAuthentication, x.method, reply)
		if !connected && c.state != stateClosing {
			c.rd.ctl <- nil // let the reader read the client's AUTH
		}
	case err == nil && connected && user != c.user:
		// Re-authentication confirms who the client is; it cannot become someone else.
		c.env.Auth.Failed(x.source)
		c.close(ctx, codec.NotAuthorized, "re-authentication as another user", true) // [MQTT-4.12.1-2]
	case err != nil:
		c.env.Auth.Failed(x.source)
		if connected {
			c.close(ctx, codec.NotAuthorized, x.method+": "+err.Error(), true) // [MQTT-4.12.1-2]
			return
		}
		// A refusal ends the exchange with a failure CONNACK and a close [MQTT-4.12.0-4].
		c.authEx = nil
		c.refuse(ctx, codec.NotAuthorized, x.method+": "+err.Error())
	case connected:
		x.ex = nil
		c.sendAuth(codec.Success, x.method, reply)
	default:
		x.ex = nil
		ack := x.req.connack
		ack.Properties.SetAuthenticationMethod(x.method) // [MQTT-4.12.0-5]
		if len(reply) > 0 {
			ack.Properties.SetAuthenticationData(reply)
		}
		c.authDone(ctx, &authDone{user: user, verdict: auth.Accepted, req: x.req})
		x.req = nil
	}
}

func (c *Connection) sendAuth(code codec.ReasonCode, method string, data []byte) {
	a := &codec.Auth{ReasonCode: code}
	a.Properties.SetAuthenticationMethod(method) // the same method [MQTT-4.12.0-5]
	if len(data) > 0 {
		a.Properties.SetAuthenticationData(data)
	}
	_ = c.link.Send(a)
}

// authPacket is an AUTH from the client: the next step of the exchange before CONNACK, or a
// re-authentication after it [MQTT-4.12.1].
func (c *Connection) authPacket(ctx actor.Context, p *codec.Auth) {
	x := c.authEx
	if x == nil {
		// Without a method in CONNECT the client must not send AUTH [MQTT-4.12.0-7].
		c.close(ctx, codec.ProtocolError, "AUTH without an authentication method in CONNECT", true)
		return
	}
	if m, _ := p.Properties.AuthenticationMethod(); m != x.method {
		c.close(ctx, codec.ProtocolError, "AUTH with another authentication method", true) // [MQTT-4.12.0-5], [MQTT-4.12.1-1]
		return
	}
	switch {
	case c.state == stateConnected && x.ex == nil && p.ReasonCode == codec.ReAuthenticate:
		x.ex = c.env.Auth.Method(x.method).Start()
	case x.ex != nil && p.ReasonCode == codec.ContinueAuthentication: // [MQTT-4.12.0-3]
	default:
		c.close(ctx, codec.ProtocolError, "AUTH with reason code "+p.ReasonCode.String()+" out of place", true)
		return
	}
	data, _ := p.Properties.AuthenticationData()
	c.authStep(ctx, data)
}

// logHandshakeFailure says why a TLS client never got to CONNECT (a certificate from
// another CA, an expired one, plain TCP on a TLS port): otherwise it would vanish from the logs.
func (c *Connection) logHandshakeFailure(err error) {
	var alert tls.AlertError
	var header tls.RecordHeaderError
	var cert *tls.CertificateVerificationError
	if c.state == stateAwaitConnect && (errors.As(err, &alert) || errors.As(err, &header) || errors.As(err, &cert) ||
		strings.HasPrefix(err.Error(), "tls: ")) {
		c.logAt(zapcore.InfoLevel, "TLS handshake failed", zap.Error(err))
	}
}

// useCNAsUsername: the listener this connection came in on takes a certificate's common name
// as the user name.
func (c *Connection) useCNAsUsername() bool {
	for _, lc := range c.env.Cfg.Listeners {
		if lc.Name == c.listener {
			return lc.UseCNAsUsername
		}
	}
	return false
}

// ---- the reader's side: the publish path ----

// publishGuard applies the ACL and the publish rate to an inbound PUBLISH. drop: do not route
// (already acknowledged where the protocol wants it); a non-nil violation ends the connection.
func (r *reader) publishGuard(p *codec.Publish) (drop bool, v *violation) {
	if r.env.Auth.HasACL() && !r.env.Auth.CanPublish(r.user, r.link.ClientID, p.Topic) {
		r.env.Log.Debug("publish denied by the ACL", zap.String("client", r.link.ClientID), zap.String("user", r.user), zap.String("topic", p.Topic))
		return true, r.drop(p, codec.NotAuthorized, "not authorized to publish to this topic")
	}
	if r.limit == nil {
		return false, nil
	}
	debt, far := r.limit.Take(time.Now(), len(p.Payload))
	if debt == 0 {
		return false, nil
	}
	if r.version == codec.V5 {
		if far {
			return true, &violation{code: codec.MessageRateTooHigh, msg: "publishing far above auth.publish_rate / publish_bytes_rate"}
		}
		return true, r.drop(p, codec.QuotaExceeded, "publish rate above auth.publish_rate / publish_bytes_rate")
	}
	// 3.1.1 has no code to say "slow down": stop reading for the time the client owes, so TCP
	// slows it, as the credit window does for a slow router.
	t := time.NewTimer(min(debt, time.Second))
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.ctl:
	}
	return false, nil
}

// drop refuses a publish without ending the connection: 5.0 says why on PUBACK/PUBREC; 3.1.1
// has no such code, so the message is dropped and acknowledged as usual, which keeps the
// client's flow going (what other brokers do).
func (r *reader) drop(p *codec.Publish, code codec.ReasonCode, msg string) *violation {
	if r.version == codec.V5 {
		return r.refuse(p, code, msg)
	}
	switch p.QoS {
	case 1:
		_ = r.link.sendAck(codec.TypePuback, p.PacketID, codec.Success)
		decUnacked(r.link)
	case 2:
		// The PUBREL that follows is answered by the session, which frees the slot.
		_ = r.link.sendAck(codec.TypePubrec, p.PacketID, codec.Success)
	}
	return nil
}
