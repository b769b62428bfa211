package codec

import "slices"

// plan is what measuring a packet learns and writing it needs.
type plan struct {
	rem   int // Remaining Length
	props int // length of the packet's property block (5.0)
	will  int // length of the Will Properties block (5.0 CONNECT)
}

// encoder is implemented by every packet type of this package.
type encoder interface {
	Packet
	// plan validates the packet for version v and measures it.
	plan(v Version) (plan, error)
	// header returns the first byte of the fixed header.
	header() byte
	// appendBody writes everything after the Remaining Length.
	appendBody(dst []byte, v Version, pl plan) []byte
}

// Append appends the whole packet p (fixed header included) in the wire form
// of version v to dst and returns the extended slice. It does not allocate
// when dst has enough spare capacity (see Size). On error dst is returned
// unchanged.
func Append(dst []byte, p Packet, v Version) ([]byte, error) {
	e, pl, err := prepare(p, v)
	if err != nil {
		return dst, err
	}
	dst = slices.Grow(dst, 1+varintLen(pl.rem)+pl.rem)
	dst = append(dst, e.header())
	dst = appendVarint(dst, pl.rem)
	return e.appendBody(dst, v, pl), nil
}

// Size returns the exact number of bytes Append writes for p in version v,
// or -1 if Append would fail. Use it to honour a peer's Maximum Packet Size.
func Size(p Packet, v Version) int {
	_, pl, err := prepare(p, v)
	if err != nil {
		return -1
	}
	return 1 + varintLen(pl.rem) + pl.rem
}

func prepare(p Packet, v Version) (encoder, plan, error) {
	if !v.valid() {
		return nil, plan{}, errorf(UnsupportedProtocolVersion, "cannot encode for protocol version %d", byte(v))
	}
	var e encoder
	// A type switch rather than an interface assertion: it is the hot
	// path of every outgoing packet and this is a pointer compare.
	switch q := p.(type) {
	case *Publish:
		e = q
	case *Puback:
		e = q
	case *Pubrec:
		e = q
	case *Pubrel:
		e = q
	case *Pubcomp:
		e = q
	case *Pingreq:
		e = q
	case *Pingresp:
		e = q
	case *Connect:
		e = q
	case *Connack:
		e = q
	case *Subscribe:
		e = q
	case *Suback:
		e = q
	case *Unsubscribe:
		e = q
	case *Unsuback:
		e = q
	case *Disconnect:
		e = q
	case *Auth:
		e = q
	default:
		return nil, plan{}, errorf(ImplementationSpecificError, "cannot encode %T", p)
	}
	pl, err := e.plan(v)
	if err != nil {
		return nil, plan{}, err
	}
	if pl.rem > MaxRemainingLength {
		return nil, plan{}, errorf(PacketTooLarge, "%s of %d bytes exceeds the largest packet", e.Type(), pl.rem)
	}
	return e, pl, nil
}

var errNil = &Error{Code: ImplementationSpecificError, Msg: "cannot encode a nil packet"}

// propBlock measures a property block with its length prefix.
func propBlock(p *Properties, ctx uint8) (n, total int, err error) {
	n, err = p.size(ctx)
	return n, varintLen(n) + n, err
}

// ---- PUBLISH

func (p *Publish) plan(v Version) (plan, error) {
	var pl plan
	if p == nil {
		return pl, errNil
	}
	switch {
	case p.QoS > 2:
		return pl, malformed("PUBLISH QoS %d [MQTT-3.3.1-4]", p.QoS)
	case p.Dup && p.QoS == 0:
		return pl, malformed("DUP set on a QoS 0 PUBLISH [MQTT-3.3.1-2]")
	case p.QoS > 0 && p.PacketID == 0:
		return pl, errZeroID
	case len(p.Topic) > maxField:
		return pl, fieldTooLong("Topic Name", len(p.Topic))
	}
	rem := 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		rem += 2
	}
	if v == V5 {
		if p.Topic == "" && !p.Properties.Has(PropTopicAlias) {
			return pl, protocolError("empty Topic Name without a Topic Alias")
		}
		n, total, err := propBlock(&p.Properties, uint8(TypePublish))
		if err != nil {
			return pl, err
		}
		pl.props = n
		rem += total
	} else if p.Topic == "" {
		return pl, protocolError("empty Topic Name [MQTT-4.7.3-1]")
	}
	pl.rem = rem
	return pl, nil
}

func (p *Publish) header() byte {
	b := byte(TypePublish)<<4 | p.QoS<<1
	if p.Dup {
		b |= 0x08
	}
	if p.Retain {
		b |= 0x01
	}
	return b
}

func (p *Publish) appendBody(dst []byte, v Version, pl plan) []byte {
	dst = appendString(dst, p.Topic)
	if p.QoS > 0 {
		dst = appendU16(dst, p.PacketID)
	}
	if v == V5 {
		dst = p.Properties.appendTo(appendVarint(dst, pl.props))
	}
	return append(dst, p.Payload...)
}

// ---- PUBACK, PUBREC, PUBREL, PUBCOMP

// planAck measures the four acks, which share a layout. In 5.0 the Reason
// Code and Property Length may be left out: a Success without properties is
// 2 bytes, another code without properties 3 [MQTT-3.4.2-1].
func planAck(a *Puback, t PacketType, v Version) (plan, error) {
	var pl plan
	if a == nil {
		return pl, errNil
	}
	if a.PacketID == 0 {
		return pl, errZeroID
	}
	pl.rem = 2
	if v != V5 {
		return pl, nil
	}
	if !reasonSets[t].has(a.ReasonCode) {
		return pl, protocolError("reason code 0x%02X is not a %s reason code", byte(a.ReasonCode), t)
	}
	n, total, err := propBlock(&a.Properties, uint8(t))
	if err != nil {
		return pl, err
	}
	switch {
	case n > 0:
		pl.props = n
		pl.rem = 3 + total
	case a.ReasonCode != Success:
		pl.rem = 3
	}
	return pl, nil
}

func appendAck(dst []byte, a *Puback, pl plan) []byte {
	dst = appendU16(dst, a.PacketID)
	if pl.rem > 2 {
		dst = append(dst, byte(a.ReasonCode))
	}
	if pl.rem > 3 {
		dst = a.Properties.appendTo(appendVarint(dst, pl.props))
	}
	return dst
}

// AppendAck appends a PUBACK, PUBREC, PUBREL or PUBCOMP (t) without properties: what a
// broker sends for nearly every QoS 1 and 2 message, encoded the same as Append would, without
// a packet to build.
func AppendAck(dst []byte, t PacketType, id uint16, code ReasonCode, v Version) ([]byte, error) {
	if !v.valid() {
		return dst, errorf(UnsupportedProtocolVersion, "cannot encode for protocol version %d", byte(v))
	}
	if !isAck(t) {
		return dst, errorf(ImplementationSpecificError, "%s is not an acknowledgement", t)
	}
	a := Puback{PacketID: id, ReasonCode: code}
	pl, err := planAck(&a, t, v)
	if err != nil {
		return dst, err
	}
	header := byte(t) << 4
	if t == TypePubrel {
		header |= 0x02
	}
	dst = append(dst, header)
	dst = appendVarint(dst, pl.rem)
	return appendAck(dst, &a, pl), nil
}

func (a *Puback) plan(v Version) (plan, error) { return planAck(a, TypePuback, v) }
func (a *Puback) header() byte                 { return byte(TypePuback) << 4 }
func (a *Puback) appendBody(dst []byte, _ Version, pl plan) []byte {
	return appendAck(dst, a, pl)
}

func (a *Pubrec) plan(v Version) (plan, error) { return planAck((*Puback)(a), TypePubrec, v) }
func (a *Pubrec) header() byte                 { return byte(TypePubrec) << 4 }
func (a *Pubrec) appendBody(dst []byte, _ Version, pl plan) []byte {
	return appendAck(dst, (*Puback)(a), pl)
}

func (a *Pubrel) plan(v Version) (plan, error) { return planAck((*Puback)(a), TypePubrel, v) }
func (a *Pubrel) header() byte                 { return byte(TypePubrel)<<4 | 0x02 }
func (a *Pubrel) appendBody(dst []byte, _ Version, pl plan) []byte {
	return appendAck(dst, (*Puback)(a), pl)
}

func (a *Pubcomp) plan(v Version) (plan, error) { return planAck((*Puback)(a), TypePubcomp, v) }
func (a *Pubcomp) header() byte                 { return byte(TypePubcomp) << 4 }
func (a *Pubcomp) appendBody(dst []byte, _ Version, pl plan) []byte {
	return appendAck(dst, (*Puback)(a), pl)
}

// ---- PINGREQ, PINGRESP, DISCONNECT, AUTH

func (*Pingreq) plan(Version) (plan, error)                      { return plan{}, nil }
func (*Pingreq) header() byte                                    { return byte(TypePingreq) << 4 }
func (*Pingreq) appendBody(dst []byte, _ Version, _ plan) []byte { return dst }

func (*Pingresp) plan(Version) (plan, error)                      { return plan{}, nil }
func (*Pingresp) header() byte                                    { return byte(TypePingresp) << 4 }
func (*Pingresp) appendBody(dst []byte, _ Version, _ plan) []byte { return dst }

// planShort measures DISCONNECT and AUTH, whose Reason Code and Property
// Length may both be left out (Remaining Length 0) or only the Property
// Length (Remaining Length 1).
func planShort(rc ReasonCode, p *Properties, t PacketType) (plan, error) {
	var pl plan
	if !reasonSets[t].has(rc) {
		return pl, protocolError("reason code 0x%02X is not a %s reason code", byte(rc), t)
	}
	n, total, err := propBlock(p, uint8(t))
	if err != nil {
		return pl, err
	}
	switch {
	case n > 0:
		pl.props = n
		pl.rem = 1 + total
	case rc != Success:
		pl.rem = 1
	}
	return pl, nil
}

func appendShort(dst []byte, rc ReasonCode, p *Properties, pl plan) []byte {
	if pl.rem > 0 {
		dst = append(dst, byte(rc))
	}
	if pl.rem > 1 {
		dst = p.appendTo(appendVarint(dst, pl.props))
	}
	return dst
}

func (d *Disconnect) plan(v Version) (plan, error) {
	if d == nil {
		return plan{}, errNil
	}
	if v != V5 {
		return plan{}, nil // 3.x DISCONNECT has no content
	}
	return planShort(d.ReasonCode, &d.Properties, TypeDisconnect)
}

func (d *Disconnect) header() byte { return byte(TypeDisconnect) << 4 }

func (d *Disconnect) appendBody(dst []byte, _ Version, pl plan) []byte {
	return appendShort(dst, d.ReasonCode, &d.Properties, pl)
}

func (a *Auth) plan(v Version) (plan, error) {
	if a == nil {
		return plan{}, errNil
	}
	if v != V5 {
		return plan{}, errorf(ProtocolError, "AUTH does not exist in %s", v)
	}
	return planShort(a.ReasonCode, &a.Properties, TypeAuth)
}

func (a *Auth) header() byte { return byte(TypeAuth) << 4 }

func (a *Auth) appendBody(dst []byte, _ Version, pl plan) []byte {
	return appendShort(dst, a.ReasonCode, &a.Properties, pl)
}
