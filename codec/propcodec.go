package codec

import (
	"math/bits"
	"strings"
)

// A property context is where a property block sits: the packet type, or
// ctxWill for the Will Properties of a CONNECT (packet type 0 is reserved,
// so the two never collide).
const ctxWill uint8 = 0

func ctxName(ctx uint8) string {
	if ctx == ctxWill {
		return "Will Properties"
	}
	return PacketType(ctx).String()
}

type propKind uint8

const (
	kindNone   propKind = iota
	kindByte            // Byte
	kindU16             // Two Byte Integer
	kindU32             // Four Byte Integer
	kindVarint          // Variable Byte Integer
	kindString          // UTF-8 Encoded String
	kindBinary          // Binary Data
	kindPair            // UTF-8 String Pair
)

type propInfo struct {
	name    string
	kind    propKind
	allowed uint16 // bit ctx set when the property may appear in ctx
}

// Where each property may appear: Table 2-4 of §2.2.2.2.
const (
	inWill        = 1 << ctxWill
	inConnect     = 1 << TypeConnect
	inConnack     = 1 << TypeConnack
	inPublish     = 1 << TypePublish
	inAcks        = 1<<TypePuback | 1<<TypePubrec | 1<<TypePubrel | 1<<TypePubcomp
	inSubscribe   = 1 << TypeSubscribe
	inSuback      = 1 << TypeSuback
	inUnsubscribe = 1 << TypeUnsubscribe
	inUnsuback    = 1 << TypeUnsuback
	inDisconnect  = 1 << TypeDisconnect
	inAuth        = 1 << TypeAuth
)

var propTable = [...]propInfo{
	PropPayloadFormatIndicator:          {"Payload Format Indicator", kindByte, inPublish | inWill},
	PropMessageExpiryInterval:           {"Message Expiry Interval", kindU32, inPublish | inWill},
	PropContentType:                     {"Content Type", kindString, inPublish | inWill},
	PropResponseTopic:                   {"Response Topic", kindString, inPublish | inWill},
	PropCorrelationData:                 {"Correlation Data", kindBinary, inPublish | inWill},
	PropSubscriptionIdentifier:          {"Subscription Identifier", kindVarint, inPublish | inSubscribe},
	PropSessionExpiryInterval:           {"Session Expiry Interval", kindU32, inConnect | inConnack | inDisconnect},
	PropAssignedClientIdentifier:        {"Assigned Client Identifier", kindString, inConnack},
	PropServerKeepAlive:                 {"Server Keep Alive", kindU16, inConnack},
	PropAuthenticationMethod:            {"Authentication Method", kindString, inConnect | inConnack | inAuth},
	PropAuthenticationData:              {"Authentication Data", kindBinary, inConnect | inConnack | inAuth},
	PropRequestProblemInformation:       {"Request Problem Information", kindByte, inConnect},
	PropWillDelayInterval:               {"Will Delay Interval", kindU32, inWill},
	PropRequestResponseInformation:      {"Request Response Information", kindByte, inConnect},
	PropResponseInformation:             {"Response Information", kindString, inConnack},
	PropServerReference:                 {"Server Reference", kindString, inConnack | inDisconnect},
	PropReasonString:                    {"Reason String", kindString, inConnack | inAcks | inSuback | inUnsuback | inDisconnect | inAuth},
	PropReceiveMaximum:                  {"Receive Maximum", kindU16, inConnect | inConnack},
	PropTopicAliasMaximum:               {"Topic Alias Maximum", kindU16, inConnect | inConnack},
	PropTopicAlias:                      {"Topic Alias", kindU16, inPublish},
	PropMaximumQoS:                      {"Maximum QoS", kindByte, inConnack},
	PropRetainAvailable:                 {"Retain Available", kindByte, inConnack},
	PropUserProperty:                    {"User Property", kindPair, inConnect | inConnack | inPublish | inWill | inAcks | inSubscribe | inSuback | inUnsubscribe | inUnsuback | inDisconnect | inAuth},
	PropMaximumPacketSize:               {"Maximum Packet Size", kindU32, inConnect | inConnack},
	PropWildcardSubscriptionAvailable:   {"Wildcard Subscription Available", kindByte, inConnack},
	PropSubscriptionIdentifierAvailable: {"Subscription Identifier Available", kindByte, inConnack},
	PropSharedSubscriptionAvailable:     {"Shared Subscription Available", kindByte, inConnack},
}

// allowedMask[ctx] has bit id set for every property allowed in ctx, so
// that encoding checks a whole property set with one AND.
var allowedMask = func() (m [16]uint64) {
	for id, info := range propTable {
		for ctx := range m {
			if info.allowed&(1<<ctx) != 0 {
				m[ctx] |= 1 << id
			}
		}
	}
	return m
}()

// multiple reports whether property id may repeat in ctx.
func multiple(id PropertyID, ctx uint8) bool {
	return id == PropUserProperty || (id == PropSubscriptionIdentifier && ctx == uint8(TypePublish))
}

// decode parses a property block (without its length prefix) for ctx. p
// must be empty. Errors follow §2.2.2.2: an identifier unknown or not
// allowed in the packet is a Malformed Packet; a repeated property and a
// value outside its range are Protocol Errors, as each property's section
// says.
func (p *Properties) decode(b []byte, ctx uint8) error {
	var nUser, nSub, firstList int
	c := cursor{b: b}
	for c.left() > 0 {
		start := c.i
		id := PropertyID(c.b[c.i])
		c.i++
		// Identifiers are Variable Byte Integers, but all defined ones are a
		// single byte below 0x80, so anything else is unknown.
		if int(id) >= len(propTable) || propTable[id].kind == kindNone {
			return malformed("unknown property identifier 0x%02X", byte(id))
		}
		if propTable[id].allowed&(1<<ctx) == 0 {
			return malformed("property %s is not allowed in %s", id, ctxName(ctx))
		}
		if p.Has(id) && !multiple(id, ctx) {
			return protocolError("property %s appears more than once", id)
		}
		p.set(id)
		if err := p.decodeValue(&c, id); err != nil {
			return err
		}
		switch id {
		case PropUserProperty:
			if nUser+nSub == 0 {
				firstList = start
			}
			nUser++
		case PropSubscriptionIdentifier:
			if nUser+nSub == 0 {
				firstList = start
			}
			nSub++
		}
	}
	if nUser+nSub > 0 {
		p.collectLists(b[firstList:], nUser, nSub)
	}
	if p.Has(PropAuthenticationData) && !p.Has(PropAuthenticationMethod) {
		return protocolError("Authentication Data without Authentication Method")
	}
	return nil
}

// decodingExt returns the variable-length properties to decode into. decode
// fills an empty Properties, whose ext nothing else shares yet, so one is
// made at the first such property and written in place after that.
func (p *Properties) decodingExt() *propsExt {
	if p.ext == nil {
		p.ext = new(propsExt)
	}
	return p.ext
}

// decodeValue reads and range-checks the value of property id.
func (p *Properties) decodeValue(c *cursor, id PropertyID) error {
	var err error
	switch propTable[id].kind {
	case kindByte:
		var v byte
		if v, err = c.u8(); err != nil {
			return err
		}
		// Every Byte property takes only 0 or 1, Maximum QoS included
		// (§3.2.2.3.4); the spec calls other values a Protocol Error.
		if v > 1 {
			return protocolError("property %s has value %d, not 0 or 1", id, v)
		}
		p.setByte(id, v)
	case kindU16:
		var v uint16
		if v, err = c.u16(); err != nil {
			return err
		}
		switch id {
		case PropServerKeepAlive:
			p.serverKeepAlive = v
		case PropReceiveMaximum:
			if v == 0 {
				return protocolError("Receive Maximum is 0")
			}
			p.receiveMaximum = v
		case PropTopicAliasMaximum:
			p.topicAliasMaximum = v
		case PropTopicAlias:
			if v == 0 {
				return &Error{Code: TopicAliasInvalid, Msg: "Topic Alias is 0 [MQTT-3.3.2-8]"}
			}
			p.topicAlias = v
		}
	case kindU32:
		var v uint32
		if v, err = c.u32(); err != nil {
			return err
		}
		switch id {
		case PropMessageExpiryInterval:
			p.messageExpiry = v
		case PropSessionExpiryInterval:
			p.sessionExpiry = v
		case PropWillDelayInterval:
			p.willDelay = v
		case PropMaximumPacketSize:
			if v == 0 {
				return protocolError("Maximum Packet Size is 0")
			}
			p.maximumPacketSize = v
		}
	case kindVarint: // Subscription Identifier; collected in a second pass
		var v uint32
		if v, err = c.varint(); err != nil {
			return err
		}
		if v == 0 {
			return protocolError("Subscription Identifier is 0")
		}
	case kindString:
		var s string
		if s, err = c.str(); err != nil {
			return err
		}
		if id == PropResponseTopic && strings.ContainsAny(s, "+#") {
			return protocolError("Response Topic contains a wildcard [MQTT-3.3.2-14]")
		}
		*p.decodingExt().str(id) = s
	case kindBinary:
		var v []byte
		if v, err = c.binary(); err != nil {
			return err
		}
		*p.decodingExt().bin(id) = v
	case kindPair: // collected in a second pass
		if _, err = c.str(); err != nil {
			return err
		}
		if _, err = c.str(); err != nil {
			return err
		}
	}
	return nil
}

func (p *Properties) setByte(id PropertyID, v byte) {
	switch id {
	case PropPayloadFormatIndicator:
		p.payloadFormat = v
	case PropMaximumQoS:
		p.maximumQoS = v
	case PropRequestProblemInformation:
		p.requestProblem = v == 1
	case PropRequestResponseInformation:
		p.requestResponse = v == 1
	case PropRetainAvailable:
		p.retainAvailable = v == 1
	case PropWildcardSubscriptionAvailable:
		p.wildcardAvailable = v == 1
	case PropSubscriptionIdentifierAvailable:
		p.subIDAvailable = v == 1
	case PropSharedSubscriptionAvailable:
		p.sharedAvailable = v == 1
	}
}

// collectLists fills the User Property and Subscription Identifier lists
// from an already validated block, so that each list is one allocation of
// exactly the right size.
func (p *Properties) collectLists(b []byte, nUser, nSub int) {
	var e *propsExt
	if nUser > 0 {
		e = p.decodingExt()
		e.user = make([]UserProperty, 0, nUser)
	}
	if nSub > 0 {
		p.subIDs = make([]uint32, 0, nSub)
	}
	c := cursor{b: b}
	for c.left() > 0 {
		id := PropertyID(c.b[c.i])
		c.i++
		switch propTable[id].kind {
		case kindByte:
			c.i++
		case kindU16:
			c.i += 2
		case kindU32:
			c.i += 4
		case kindVarint:
			v, _ := c.varint()
			p.subIDs = append(p.subIDs, v)
		case kindString, kindBinary:
			_ = c.skipPrefixed()
		case kindPair:
			k, _ := c.prefixed()
			v, _ := c.prefixed()
			e.user = append(e.user, UserProperty{Key: view(k), Value: view(v)})
		}
	}
}

// size validates p for ctx and returns the length of its encoding, without
// the Property Length prefix.
func (p *Properties) size(ctx uint8) (int, error) {
	if p.present == 0 {
		return 0, nil
	}
	if bad := p.present &^ allowedMask[ctx]; bad != 0 {
		id := PropertyID(bits.TrailingZeros64(bad))
		return 0, malformed("property %s is not allowed in %s", id, ctxName(ctx))
	}
	n := 0
	for m := p.present; m != 0; m &= m - 1 {
		id := PropertyID(bits.TrailingZeros64(m))
		switch propTable[id].kind {
		case kindByte:
			if id == PropPayloadFormatIndicator && p.payloadFormat > 1 {
				return 0, protocolError("Payload Format Indicator %d is not 0 or 1", p.payloadFormat)
			}
			if id == PropMaximumQoS && p.maximumQoS > 1 {
				return 0, protocolError("Maximum QoS %d is not 0 or 1", p.maximumQoS)
			}
			n += 2
		case kindU16:
			if id == PropReceiveMaximum && p.receiveMaximum == 0 {
				return 0, protocolError("Receive Maximum is 0")
			}
			if id == PropTopicAlias && p.topicAlias == 0 {
				return 0, &Error{Code: TopicAliasInvalid, Msg: "Topic Alias is 0 [MQTT-3.3.2-8]"}
			}
			n += 3
		case kindU32:
			if id == PropMaximumPacketSize && p.maximumPacketSize == 0 {
				return 0, protocolError("Maximum Packet Size is 0")
			}
			n += 5
		case kindVarint:
			if len(p.subIDs) > 1 && !multiple(id, ctx) {
				return 0, protocolError("%s carries %d Subscription Identifiers, at most 1 allowed", ctxName(ctx), len(p.subIDs))
			}
			for _, v := range p.subIDs {
				if v == 0 || v > MaxSubscriptionIdentifier {
					return 0, protocolError("Subscription Identifier %d is out of range 1..%d", v, MaxSubscriptionIdentifier)
				}
				n += 1 + varintLen(int(v))
			}
		case kindString:
			s := p.stringValue(id)
			if len(s) > maxField {
				return 0, fieldTooLong(id.String(), len(s))
			}
			n += 3 + len(s)
		case kindBinary:
			b := *p.x().bin(id)
			if len(b) > maxField {
				return 0, fieldTooLong(id.String(), len(b))
			}
			n += 3 + len(b)
		case kindPair:
			for _, u := range p.x().user {
				if len(u.Key) > maxField || len(u.Value) > maxField {
					return 0, fieldTooLong("User Property", max(len(u.Key), len(u.Value)))
				}
				n += 5 + len(u.Key) + len(u.Value)
			}
		}
	}
	if p.Has(PropAuthenticationData) && !p.Has(PropAuthenticationMethod) {
		return 0, protocolError("Authentication Data without Authentication Method")
	}
	if n > MaxRemainingLength {
		return 0, &Error{Code: PacketTooLarge, Msg: "properties exceed the largest packet"}
	}
	return n, nil
}

func (p *Properties) stringValue(id PropertyID) string { return *p.x().str(id) }

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// appendTo writes the properties, validated by size, in identifier order.
func (p *Properties) appendTo(dst []byte) []byte {
	for m := p.present; m != 0; m &= m - 1 {
		id := PropertyID(bits.TrailingZeros64(m))
		switch id {
		case PropPayloadFormatIndicator:
			dst = append(dst, byte(id), p.payloadFormat)
		case PropMaximumQoS:
			dst = append(dst, byte(id), p.maximumQoS)
		case PropRequestProblemInformation:
			dst = append(dst, byte(id), boolByte(p.requestProblem))
		case PropRequestResponseInformation:
			dst = append(dst, byte(id), boolByte(p.requestResponse))
		case PropRetainAvailable:
			dst = append(dst, byte(id), boolByte(p.retainAvailable))
		case PropWildcardSubscriptionAvailable:
			dst = append(dst, byte(id), boolByte(p.wildcardAvailable))
		case PropSubscriptionIdentifierAvailable:
			dst = append(dst, byte(id), boolByte(p.subIDAvailable))
		case PropSharedSubscriptionAvailable:
			dst = append(dst, byte(id), boolByte(p.sharedAvailable))
		case PropServerKeepAlive:
			dst = appendU16(append(dst, byte(id)), p.serverKeepAlive)
		case PropReceiveMaximum:
			dst = appendU16(append(dst, byte(id)), p.receiveMaximum)
		case PropTopicAliasMaximum:
			dst = appendU16(append(dst, byte(id)), p.topicAliasMaximum)
		case PropTopicAlias:
			dst = appendU16(append(dst, byte(id)), p.topicAlias)
		case PropMessageExpiryInterval:
			dst = appendU32(append(dst, byte(id)), p.messageExpiry)
		case PropSessionExpiryInterval:
			dst = appendU32(append(dst, byte(id)), p.sessionExpiry)
		case PropWillDelayInterval:
			dst = appendU32(append(dst, byte(id)), p.willDelay)
		case PropMaximumPacketSize:
			dst = appendU32(append(dst, byte(id)), p.maximumPacketSize)
		case PropSubscriptionIdentifier:
			for _, v := range p.subIDs {
				dst = appendVarint(append(dst, byte(id)), int(v))
			}
		case PropCorrelationData, PropAuthenticationData:
			dst = appendBinary(append(dst, byte(id)), *p.x().bin(id))
		case PropUserProperty:
			for _, u := range p.x().user {
				dst = appendString(appendString(append(dst, byte(id)), u.Key), u.Value)
			}
		default:
			dst = appendString(append(dst, byte(id)), p.stringValue(id))
		}
	}
	return dst
}
