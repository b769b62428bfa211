package codec

import (
	"io"
	"unsafe"
)

// Decode decodes one packet of version v from the start of b and returns it
// with the number of bytes it took. The packet aliases b (see the package
// comment). A CONNECT decodes whatever v is, since it carries its own
// version. An empty b gives io.EOF; a b that ends inside the packet gives
// io.ErrUnexpectedEOF, so a caller framing a stream can wait for more bytes.
func Decode(b []byte, v Version) (Packet, int, error) {
	if len(b) == 0 {
		return nil, 0, io.EOF
	}
	t, err := checkFixedHeader(b[0], v)
	if err != nil {
		return nil, 0, err
	}
	rem, n, err := parseVarint(b[1:])
	if err != nil {
		return nil, 0, err
	}
	total := 1 + n + int(rem)
	if len(b) < total {
		return nil, 0, io.ErrUnexpectedEOF
	}
	body := b[1+n : total : total]
	if t == TypeConnect {
		c, _, err := decodeConnect(body)
		if err != nil {
			return nil, 0, err
		}
		return c, total, nil
	}
	p, err := decodeBody(t, b[0]&0x0F, body, v)
	if err != nil {
		return nil, 0, err
	}
	return p, total, nil
}

// checkFixedHeader validates the first byte of a packet for version v (0
// before a CONNECT has been seen): the packet type and the flags of Table
// 2-2 [MQTT-2.1.3-1] [MQTT-2.2.2-1].
func checkFixedHeader(b0 byte, v Version) (PacketType, error) {
	t, flags := PacketType(b0>>4), b0&0x0F
	switch {
	case t == 0:
		return 0, malformed("reserved packet type 0")
	case t == TypeConnect:
		if flags != 0 {
			return 0, malformed("CONNECT flags 0x%X, must be 0 [MQTT-2.1.3-1]", flags)
		}
		return t, nil
	case !v.valid():
		return 0, errNoVersion
	case t == TypeAuth && v != V5:
		return 0, malformed("packet type 15 (AUTH) is reserved in %s", v)
	case t == TypePublish:
		qos := flags >> 1 & 3
		if qos == 3 {
			return 0, malformed("PUBLISH QoS 3 [MQTT-3.3.1-4]")
		}
		if qos == 0 && flags&0x08 != 0 {
			return 0, malformed("DUP set on a QoS 0 PUBLISH [MQTT-3.3.1-2]")
		}
	case t == TypePubrel || t == TypeSubscribe || t == TypeUnsubscribe:
		// 3.1 sets DUP when it resends these, so it may also send 0b1010.
		if flags != 0x02 && (v != V31 || flags != 0x0A) {
			return 0, malformed("%s flags 0x%X, must be 0x2 [MQTT-2.1.3-1]", t, flags)
		}
	default:
		if flags != 0 {
			return 0, malformed("%s flags 0x%X, must be 0 [MQTT-2.1.3-1]", t, flags)
		}
	}
	return t, nil
}

// decodeBody decodes the body of a packet other than CONNECT.
func decodeBody(t PacketType, flags byte, b []byte, v Version) (Packet, error) {
	switch t {
	case TypePublish:
		return decodePublish(flags, b, v)
	case TypePuback, TypePubrec, TypePubrel, TypePubcomp:
		return decodeAck(&Puback{}, t, b, v)
	case TypeConnack:
		return decodeConnack(b, v)
	case TypeSubscribe:
		return decodeSubscribe(b, v)
	case TypeSuback:
		return decodeSuback(b, v)
	case TypeUnsubscribe:
		return decodeUnsubscribe(b, v)
	case TypeUnsuback:
		return decodeUnsuback(b, v)
	case TypePingreq, TypePingresp:
		if len(b) != 0 {
			return nil, errTrailing
		}
		if t == TypePingreq {
			return &Pingreq{}, nil // zero-sized: no allocation
		}
		return &Pingresp{}, nil
	case TypeDisconnect:
		d := &Disconnect{}
		if err := decodeShort(b, v, t, &d.ReasonCode, &d.Properties); err != nil {
			return nil, err
		}
		return d, nil
	case TypeAuth:
		a := &Auth{}
		if err := decodeShort(b, v, t, &a.ReasonCode, &a.Properties); err != nil {
			return nil, err
		}
		return a, nil
	}
	return nil, malformed("packet type %d", byte(t)) // unreachable after checkFixedHeader
}

// checkTopicName checks the text of a Topic Name: UTF-8 per §1.5.4
// [MQTT-3.3.2-1] and no wildcard [MQTT-3.3.2-2].
func checkTopicName(b []byte) error {
	ok, wildcard := scanTopicName(b)
	if !ok {
		return errBadUTF8
	}
	if wildcard {
		return errorf(TopicNameInvalid, "Topic Name %q contains a wildcard [MQTT-3.3.2-2]", b)
	}
	return nil
}

func decodePublish(flags byte, b []byte, v Version) (Packet, error) {
	c := cursor{b: b}
	topic, err := c.prefixed()
	if err != nil {
		return nil, err
	}
	if err := checkTopicName(topic); err != nil {
		return nil, err
	}
	p := &Publish{
		Dup:    flags&0x08 != 0,
		QoS:    flags >> 1 & 3,
		Retain: flags&0x01 != 0,
		Topic:  view(topic),
	}
	if p.QoS > 0 {
		if p.PacketID, err = c.u16(); err != nil {
			return nil, err
		}
		if p.PacketID == 0 {
			return nil, errZeroID
		}
	}
	if v == V5 {
		if err := c.props(&p.Properties, uint8(TypePublish)); err != nil {
			return nil, err
		}
	}
	if len(topic) == 0 && !p.Properties.Has(PropTopicAlias) {
		// 5.0 allows an empty name only with an alias; 3.x never
		// [MQTT-4.7.3-1].
		return nil, protocolError("empty Topic Name without a Topic Alias")
	}
	p.Payload = c.rest()
	return p, nil
}

// decodeAck decodes PUBACK, PUBREC, PUBREL or PUBCOMP (t) into a, which must be zero, and
// returns it as that type. In 5.0 a Remaining Length of 2 means Success without properties
// and 3 a reason code without properties [MQTT-3.4.2-1].
func decodeAck(a *Puback, t PacketType, b []byte, v Version) (Packet, error) {
	c := cursor{b: b}
	id, err := c.packetID()
	if err != nil {
		return nil, err
	}
	a.PacketID = id
	if v == V5 && c.left() > 0 {
		rc, _ := c.u8()
		a.ReasonCode = ReasonCode(rc)
		if !reasonSets[t].has(a.ReasonCode) {
			return nil, protocolError("reason code 0x%02X is not a %s reason code", rc, t)
		}
		if c.left() > 0 {
			if err := c.props(&a.Properties, uint8(t)); err != nil {
				return nil, err
			}
		}
	}
	if c.left() != 0 {
		return nil, errTrailing
	}
	// The four acks have identical layouts, so the conversions are free.
	switch t {
	case TypePubrec:
		return (*Pubrec)(a), nil
	case TypePubrel:
		return (*Pubrel)(a), nil
	case TypePubcomp:
		return (*Pubcomp)(a), nil
	}
	return a, nil
}

// AckOf returns a PUBACK, PUBREC, PUBREL or PUBCOMP as the Puback layout they share (packet
// id, reason code, properties), and nil for any other packet.
func AckOf(p Packet) *Puback {
	switch q := p.(type) {
	case *Puback:
		return q
	case *Pubrec:
		return (*Puback)(q)
	case *Pubrel:
		return (*Puback)(q)
	case *Pubcomp:
		return (*Puback)(q)
	}
	return nil
}

// decodeShort decodes DISCONNECT and AUTH: in 5.0 the Reason Code and the
// Property Length may be left out; in 3.x DISCONNECT is empty.
func decodeShort(b []byte, v Version, t PacketType, rc *ReasonCode, props *Properties) error {
	if v != V5 {
		if len(b) != 0 {
			return errTrailing
		}
		return nil
	}
	if len(b) == 0 {
		return nil
	}
	*rc = ReasonCode(b[0])
	if !reasonSets[t].has(*rc) {
		return protocolError("reason code 0x%02X is not a %s reason code", b[0], t)
	}
	if len(b) == 1 {
		return nil
	}
	c := cursor{b: b, i: 1}
	if err := c.props(props, uint8(t)); err != nil {
		return err
	}
	if c.left() != 0 {
		return errTrailing
	}
	return nil
}

// packetID reads a packet identifier that must not be 0.
func (c *cursor) packetID() (uint16, error) {
	id, err := c.u16()
	if err == nil && id == 0 {
		err = errZeroID
	}
	return id, err
}

// reasonCodes views a byte slice as reason codes, which are bytes.
func reasonCodes(b []byte) []ReasonCode {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*ReasonCode)(unsafe.SliceData(b)), len(b))
}
