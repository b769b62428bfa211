package actors

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/actormq/actormq/codec"
	"github.com/actormq/actormq/topics"
)

// Connection is the actor of one socket. It runs the protocol around the publish path:
// CONNECT and its checks, the hand-over to the session, packets the session must see, and
// the end of the connection with the right reason code. It never blocks: the reader goroutine
// reads, the Link's writer goroutine (running only while there is something to write) writes.
type Connection struct {
	env      *Env
	conn     net.Conn
	listener string
	version  codec.Version // the listener's default until CONNECT says otherwise

	link *Link
	rd   *reader

	state     connState
	clientID  string
	session   *sessionRef
	gen       uint64
	expiry    uint32 // the session expiry in force, for the DISCONNECT rules
	keepAlive time.Duration
	detached  bool
	closed    bool
	since     time.Time
	user      string        // authenticated user name, "" for anonymous (auth.go)
	authEx    *authExchange // an enhanced authentication in progress (auth.go)
	// overdue refuses the client if its CONNECT is not answered within limits.connect_timeout:
	// an attach can be lost with an actor that stops (a registry past its restart budget drops
	// its mailbox), and a client must not wait for it forever.
	overdue *time.Timer

	// console directory (directory.go)
	dirInfo   *connInfo
	endReason string
}

type connState uint8

const (
	stateAwaitConnect connState = iota
	stateAttaching
	stateConnected
	stateClosing
)

// NewConnection returns the producer of a connection actor for an accepted socket.
func NewConnection(env *Env, a *Accepted) actor.Producer {
	return func() actor.Actor {
		return &Connection{
			env:      env,
			conn:     a.Conn,
			listener: a.Listener,
			version:  codec.Version(a.Protocol),
		}
	}
}

// ConnectionStrategy: a connection actor is never restarted (a restart would start a second
// reader on the same socket); a failure ends the connection and the client reconnects.
func ConnectionStrategy() actor.SupervisorStrategy {
	return actor.NewOneForOneStrategy(0, time.Second, func(any) actor.Directive { return actor.StopDirective })
}

// Receive implements actor.Actor.
func (c *Connection) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		c.start(ctx)
	case *codec.Connect:
		c.connect(ctx, m)
	case *attached:
		c.attached(ctx, m)
	case *connectRefused:
		c.refuse(ctx, m.code, m.msg)
	case *attachOverdue:
		if c.state == stateAttaching {
			c.refuse(ctx, codec.ServerUnavailable, "the session was not ready in time; connect again")
		}
	case *codec.Subscribe:
		c.subscribe(ctx, m)
	case *codec.Unsubscribe:
		c.toSession(ctx, m)
	case *codec.Disconnect:
		c.clientDisconnect(ctx, m)
	case *codec.Auth:
		c.authPacket(ctx, m) // auth.go
	case *authDone:
		c.authDone(ctx, m)
	case *violation:
		c.close(ctx, m.code, m.msg, true)
	case *readerEnded:
		c.readerEnded(ctx, m.err)
	case *takenOver:
		c.detached = true // the session has moved on to the new connection
		c.close(ctx, codec.SessionTakenOver, "session taken over by a new connection", false)
	case *Kick:
		c.close(ctx, m.Code, m.Reason, true)
	case *actor.Stopping:
		c.stopping(ctx)
	case *actor.Stopped:
		c.env.Stats.Connections.Add(-1)
	}
}

func (c *Connection) start(ctx actor.Context) {
	cfg := &c.env.Cfg
	c.env.Stats.Connections.Add(1)
	c.since = time.Now()
	c.link = newLink(c.conn, c.env.Stats, cfg.Connections.WriterQueue, cfg.Router.CreditWindow, cfg.Connections.WriteTimeout.Std())
	c.link.Version = c.version
	c.rd = newReader(c.env, ctx.Self(), c.conn, c.link)
	Workers.Go(c.rd.run) // the Link starts its writer when there is something to write

}

// connect checks a CONNECT and asks the registry for the session [MQTT-3.1.4].
func (c *Connection) connect(ctx actor.Context, p *codec.Connect) {
	cfg := &c.env.Cfg
	c.version = p.Version
	c.link.Version = p.Version
	v5 := p.Version == codec.V5
	ack := &codec.Connack{}
	if !c.connectAllowed(ctx) { // auth.connect_rate (auth.go)
		return
	}

	id := p.ClientID
	assigned := false
	if id == "" {
		// 5.0 assigns an id [MQTT-3.1.3-6]; 3.1.1 only for a clean session [MQTT-3.1.3-7, -8];
		// 3.1 requires one.
		if p.Version == codec.V31 || (p.Version == codec.V311 && !p.CleanStart) {
			c.refuse(ctx, codec.ClientIdentifierNotValid, "empty client id without clean session")
			return
		}
		id, assigned = newClientID(), true
	}
	if len(id) > cfg.Limits.MaxClientIDLength {
		c.refuse(ctx, codec.ClientIdentifierNotValid, "client id longer than limits.max_client_id_length")
		return
	}
	if m, ok := p.Properties.AuthenticationMethod(); ok && !c.offersMethod(m) {
		c.refuse(ctx, codec.BadAuthenticationMethod, "authentication method "+m+" is not offered") // [MQTT-4.12.0-1]
		return
	}
	if w := p.Will; w != nil {
		if err := topics.ValidateName(w.Topic, cfg.Limits.MaxTopicLength, cfg.Limits.MaxTopicLevels); err != nil {
			c.refuse(ctx, codec.TopicNameInvalid, "will topic: "+err.Error())
			return
		}
		if int(w.QoS) > cfg.MQTT.MaxQoS {
			c.refuse(ctx, codec.QoSNotSupported, "will QoS above mqtt.max_qos") // [MQTT-3.2.2-12]
			return
		}
		if w.Retain && !cfg.MQTT.RetainAvailable {
			c.refuse(ctx, codec.RetainNotSupported, "will retain but retain is not available") // [MQTT-3.2.2-13]
			return
		}
	}

	// Keep alive: a 5.0 client is told ours when it asks for more (or none) than we allow
	// [MQTT-3.2.2-21]; a 3.x client cannot be told, so it is refused.
	keepAlive := p.KeepAlive
	if max := uint16(cfg.MQTT.MaxKeepAlive); max < 65535 && (keepAlive == 0 || keepAlive > max) {
		if !v5 {
			c.refuse(ctx, codec.ClientIdentifierNotValid, "keep alive above mqtt.max_keep_alive")
			return
		}
		keepAlive = max
		ack.Properties.SetServerKeepAlive(max)
	}
	c.keepAlive = time.Duration(keepAlive) * time.Second

	// Session expiry: 3.x persistent sessions live for sessions.max_session_expiry; 5.0
	// clients ask, capped by the same limit, and are told when capped.
	maxExpiry := c.maxExpiry()
	var expiry uint32
	if v5 {
		expiry, _ = p.Properties.SessionExpiryInterval()
		if expiry > maxExpiry {
			expiry = maxExpiry
			ack.Properties.SetSessionExpiryInterval(expiry)
		}
	} else if !p.CleanStart {
		expiry = maxExpiry
	}
	c.expiry = expiry

	var receiveMax uint16
	if v5 {
		receiveMax, _ = p.Properties.ReceiveMaximum()
		maxPacket, _ := p.Properties.MaximumPacketSize()
		aliasMax, _ := p.Properties.TopicAliasMaximum()
		c.link.setClientLimits(maxPacket, min(aliasMax, uint16(cfg.MQTT.TopicAliasMaximum)))
		c.connackProperties(ack, assigned, id)
	}

	c.clientID = id
	c.link.ClientID = id
	c.state = stateAttaching
	self, root := ctx.Self(), c.env.System.Root
	c.overdue = time.AfterFunc(c.env.Cfg.Limits.ConnectTimeout.Std(), func() { root.Send(self, &attachOverdue{}) })
	// Passwords, certificates and enhanced authentication are decided before the session is
	// touched (auth.go), so a refused client cannot take a session over.
	c.authenticate(ctx, p, &attachRequest{
		clientID:   id,
		cleanStart: p.CleanStart,
		expiry:     expiry,
		will:       p.Will,
		link:       c.link,
		conn:       ctx.Self(),
		connack:    ack,
		receiveMax: receiveMax,
	})
}

// connackProperties tells a 5.0 client the limits it must keep to [MQTT-3.2.2-3.2.2.3].
func (c *Connection) connackProperties(ack *codec.Connack, assigned bool, id string) {
	m := &c.env.Cfg.MQTT
	p := &ack.Properties
	p.SetReceiveMaximum(uint16(m.ReceiveMaximum))
	if m.MaxQoS < 2 {
		p.SetMaximumQoS(byte(m.MaxQoS))
	}
	p.SetRetainAvailable(m.RetainAvailable)
	p.SetMaximumPacketSize(uint32(c.env.Cfg.Limits.MaxPacketSize))
	p.SetTopicAliasMaximum(uint16(m.TopicAliasMaximum))
	p.SetWildcardSubscriptionAvailable(m.WildcardSubscriptions)
	p.SetSubscriptionIdentifierAvailable(m.SubscriptionIdentifiers)
	p.SetSharedSubscriptionAvailable(m.SharedSubscriptions)
	if assigned {
		p.SetAssignedClientIdentifier(id) // [MQTT-3.2.2-16]
	}
}

func (c *Connection) attached(ctx actor.Context, m *attached) {
	if c.state != stateAttaching {
		return
	}
	stopTimer(&c.overdue)
	c.state = stateConnected
	c.session, c.gen = m.session, m.gen
	if n := c.env.Stats.Connected.Add(1); n > c.env.Stats.MaxConnected.Load() {
		storeMax(&c.env.Stats.MaxConnected, n)
	}
	c.dirConnected(ctx)
	c.logAt(zapcore.InfoLevel, "client connected", zap.String("protocol", c.version.String()),
		zap.Duration("keep_alive", c.keepAlive))
	c.rd.ctl <- &readerStart{
		session:   m.session.pid,
		gen:       m.gen,
		keepAlive: c.keepAlive,
		aliasMax:  c.env.Cfg.MQTT.TopicAliasMaximum,
		user:      c.user,
	}
}

func (c *Connection) subscribe(ctx actor.Context, p *codec.Subscribe) {
	ids := p.Properties.SubscriptionIdentifiers()
	if len(ids) > 0 && !c.env.Cfg.MQTT.SubscriptionIdentifiers {
		c.close(ctx, codec.SubscriptionIdentifiersNotSupported, "subscription identifiers are not available", true)
		return
	}
	for _, s := range p.Subscriptions {
		if _, _, shared, _ := topics.ParseShared(s.Filter); shared && s.NoLocal {
			c.close(ctx, codec.ProtocolError, "no local on a shared subscription", true) // [MQTT-3.8.3-4]
			return
		}
	}
	c.toSession(ctx, p)
}

func (c *Connection) toSession(ctx actor.Context, p codec.Packet) {
	if c.state != stateConnected {
		return
	}
	ctx.Send(c.session.pid, &clientPacket{gen: c.gen, pkt: p})
}

// clientDisconnect: a DISCONNECT from the client. Its will is discarded unless the reason is
// 0x04 [MQTT-3.14.4-3]; a 5.0 client may change its session expiry, but not from 0
// [MQTT-3.14.2-2].
func (c *Connection) clientDisconnect(ctx actor.Context, p *codec.Disconnect) {
	var newExpiry *uint32
	if e, ok := p.Properties.SessionExpiryInterval(); ok && c.version == codec.V5 {
		if c.expiry == 0 && e != 0 {
			c.close(ctx, codec.ProtocolError, "session expiry changed from 0 on DISCONNECT", true)
			return
		}
		e = min(e, c.maxExpiry())
		newExpiry = &e
	}
	sendWill := p.ReasonCode == codec.DisconnectWithWill
	reason := "DISCONNECT"
	if p.ReasonCode != codec.NormalDisconnection {
		reason = "DISCONNECT " + p.ReasonCode.String()
	}
	c.endReason = "client DISCONNECT"
	c.logAt(zapcore.InfoLevel, "client disconnected", zap.String("reason", reason))
	c.detach(ctx, sendWill, newExpiry)
	c.shutdown(ctx)
}

func (c *Connection) readerEnded(ctx actor.Context, err error) {
	var ce *codec.Error
	var ne net.Error
	switch {
	case errors.As(err, &ce) && ce.Code == codec.UnsupportedProtocolVersion && c.state == stateAwaitConnect:
		c.refuse(ctx, codec.UnsupportedProtocolVersion, ce.Msg) // [MQTT-3.1.2-2]
	case errors.As(err, &ce):
		c.close(ctx, ce.Code, ce.Msg, true)
	case errors.As(err, &ne) && ne.Timeout():
		if c.state == stateAwaitConnect {
			c.logAt(zapcore.InfoLevel, "no CONNECT within limits.connect_timeout; closing")
			c.shutdown(ctx)
			return
		}
		c.close(ctx, codec.KeepAliveTimeout, "keep alive timeout", true) // [MQTT-3.1.2-24]
	default:
		if c.state != stateClosing {
			reason := "connection lost"
			if errors.Is(err, io.EOF) {
				reason = "closed by the client without DISCONNECT"
			}
			c.endReason = "connection lost"
			if slow := c.link.SlowConsumer(); slow != "" {
				// The writer gave up on the socket (link.go): say why, or it reads as a lost
				// connection.
				c.endReason = "slow consumer"
				c.logAt(zapcore.WarnLevel, "closed a slow consumer", zap.String("detail", slow))
			} else if c.state == stateConnected {
				if errors.Is(err, io.EOF) {
					c.logAt(zapcore.InfoLevel, "client disconnected", zap.String("reason", reason))
				} else { // the transport's error says what broke (a WebSocket text frame, a reset)
					c.logAt(zapcore.InfoLevel, "client disconnected", zap.String("reason", reason), zap.Error(err))
				}
			} else if c.state == stateAwaitConnect && !errors.Is(err, io.EOF) && !tlsHandshakeError(err) {
				// A truncated first packet, a WebSocket frame MQTT does not take: bad input worth a
				// line. A socket closed before its first byte (a port probe, a health check) is
				// not, and a failed TLS handshake has its own (logHandshakeFailure).
				c.logAt(zapcore.InfoLevel, "connection ended before CONNECT", zap.Error(err))
			}
			c.logHandshakeFailure(err) // TLS (auth.go)
		}
		c.detach(ctx, true, nil)
		c.shutdown(ctx)
	}
}

// tlsHandshakeError reports the errors logHandshakeFailure (auth.go) logs.
func tlsHandshakeError(err error) bool {
	var alert tls.AlertError
	var header tls.RecordHeaderError
	var cert *tls.CertificateVerificationError
	return errors.As(err, &alert) || errors.As(err, &header) || errors.As(err, &cert) ||
		strings.HasPrefix(err.Error(), "tls: ")
}

// refuse answers a CONNECT with a failure CONNACK and closes [MQTT-3.2.2-6].
func (c *Connection) refuse(ctx actor.Context, code codec.ReasonCode, msg string) {
	if c.state == stateClosing {
		return
	}
	c.logAt(zapcore.InfoLevel, "connection refused", zap.String("reason", code.String()), zap.String("detail", msg))
	ack := &codec.Connack{ReasonCode: code}
	if c.version != codec.V5 {
		ack.ReasonCode = codec.ConnackCodeV3(code)
	} else if msg != "" {
		ack.Properties.SetReasonString(msg)
	}
	c.link.Finish(ack) // nothing may follow a failing CONNACK
	c.shutdown(ctx)    // stopping ends the reader, which waits for the verdict
}

// close ends a connection from the server side: a 5.0 client gets a DISCONNECT with the
// reason [MQTT-4.13.2-1]; the will goes out unless the client asked otherwise.
func (c *Connection) close(ctx actor.Context, code codec.ReasonCode, msg string, sendWill bool) {
	if c.state == stateClosing {
		return
	}
	switch c.state {
	case stateAwaitConnect:
		// Nothing to answer before a valid CONNECT: close [MQTT-3.1.0-1, MQTT-3.1.4-1].
		c.logAt(zapcore.WarnLevel, "closing connection before CONNECT", zap.String("reason", code.String()), zap.String("detail", msg))
		c.shutdown(ctx)
		return
	case stateAttaching:
		c.refuse(ctx, code, msg)
		return
	}
	level := zapcore.InfoLevel
	if code == codec.ProtocolError || code == codec.MalformedPacket {
		level = zapcore.WarnLevel
	}
	c.logAt(level, "closing connection", zap.String("reason", code.String()), zap.String("detail", msg))
	c.endReason = code.String()
	if c.version == codec.V5 {
		d := &codec.Disconnect{ReasonCode: code}
		if msg != "" {
			d.Properties.SetReasonString(msg)
		}
		c.link.Finish(d) // nothing may follow our DISCONNECT [MQTT-3.14.4-1]
	}
	c.detach(ctx, sendWill, nil)
	c.shutdown(ctx)
}

func (c *Connection) detach(ctx actor.Context, sendWill bool, newExpiry *uint32) {
	if c.detached || c.session == nil {
		return
	}
	c.detached = true
	ctx.Send(c.session.pid, &detach{gen: c.gen, sendWill: sendWill, newExpiry: newExpiry})
}

// shutdown flushes what is queued, closes the socket and stops the actor.
func (c *Connection) shutdown(ctx actor.Context) {
	if c.state == stateClosing {
		return
	}
	if c.state == stateConnected {
		c.env.Stats.Connected.Add(-1)
		c.dirDisconnected()
	}
	stopTimer(&c.overdue)
	c.state = stateClosing
	c.link.CloseAfterFlush()
	ctx.Stop(ctx.Self())
}

func (c *Connection) stopping(ctx actor.Context) {
	// Stopped from outside (chaos, broker shutdown) without going through close.
	stopTimer(&c.overdue)
	if c.state != stateClosing {
		c.detach(ctx, true, nil)
		if c.state == stateConnected {
			c.env.Stats.Connected.Add(-1)
			c.dirDisconnected()
		}
		c.state = stateClosing
		c.link.CloseAfterFlush()
	}
	close(c.rd.ctl) // ends the reader's handshake and whatever it waits for
	c.rd.stop()     // a parked reader has no goroutine to see ctl
	// The writer flushes and closes the socket, which ends the reader; if the client does not
	// take the data, write_timeout bounds the wait.
	c.link.abortAfter(max(c.env.Cfg.Connections.WriteTimeout.Std(), time.Second))
}

// maxExpiry is sessions.max_session_expiry in whole seconds, rounded up so that a sub-second
// setting does not become "ends at disconnect", and below 0xFFFFFFFF, which means "never".
func (c *Connection) maxExpiry() uint32 {
	d := c.env.Cfg.Sessions.MaxSessionExpiry.Std()
	return uint32(min((d+time.Second-1)/time.Second, 0xFFFFFFFE))
}

func newClientID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "actormq-" + hex.EncodeToString(b[:])
}

// storeMax raises m to n unless another goroutine raised it further.
func storeMax(m *atomic.Int64, n int64) {
	for {
		cur := m.Load()
		if n <= cur || m.CompareAndSwap(cur, n) {
			return
		}
	}
}

// logAt writes one line about this connection, which the connection's identity (remote address,
// listener, client id and user once known) leads. Nothing is kept per connection for it: a
// logger made with With would cost an idle connection about 300 bytes.
func (c *Connection) logAt(level zapcore.Level, msg string, fields ...zap.Field) {
	ce := c.env.connLog.Check(level, msg)
	if ce == nil {
		return
	}
	id := make([]zap.Field, 0, 4+len(fields))
	id = append(id, zap.Stringer("remote", c.conn.RemoteAddr()), zap.String("listener", c.listener))
	if c.clientID != "" {
		id = append(id, zap.String("client", c.clientID))
	}
	if c.user != "" {
		id = append(id, zap.String("user", c.user))
	}
	ce.Write(append(id, fields...)...)
}
