package codec

// Decoding of SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK.

import "strings"

func decodeSubscribe(b []byte, v Version) (Packet, error) {
	c := cursor{b: b}
	id, err := c.packetID()
	if err != nil {
		return nil, err
	}
	p := &Subscribe{PacketID: id}
	if v == V5 {
		if err := c.props(&p.Properties, uint8(TypeSubscribe)); err != nil {
			return nil, err
		}
	}
	// Count first so that the list is one exact allocation.
	start, n := c.i, 0
	for c.left() > 0 {
		if err := c.skipPrefixed(); err != nil {
			return nil, err
		}
		if _, err := c.u8(); err != nil {
			return nil, err
		}
		n++
	}
	if n == 0 {
		return nil, protocolError("SUBSCRIBE without a Topic Filter [MQTT-3.8.3-3] [MQTT-3.8.3-2]")
	}
	c.i = start
	p.Subscriptions = make([]Subscription, n)
	for i := range p.Subscriptions {
		s := &p.Subscriptions[i]
		if s.Filter, err = c.str(); err != nil {
			return nil, err
		}
		opts, _ := c.u8()
		s.QoS = opts & 3
		if v != V5 {
			if opts&^3 != 0 || s.QoS == 3 {
				return nil, malformed("subscription options 0x%02X [MQTT-3.8.3-4]", opts)
			}
			continue
		}
		s.NoLocal = opts&0x04 != 0
		s.RetainAsPublished = opts&0x08 != 0
		s.RetainHandling = opts >> 4 & 3
		switch {
		case opts&0xC0 != 0:
			return nil, malformed("subscription options reserved bits 0x%02X [MQTT-3.8.3-5]", opts)
		case s.QoS == 3:
			return nil, protocolError("subscription Maximum QoS 3")
		case s.RetainHandling == 3:
			return nil, protocolError("Retain Handling 3")
		case s.NoLocal && strings.HasPrefix(s.Filter, sharePrefix):
			return nil, protocolError("No Local on a shared subscription [MQTT-3.8.3-4]")
		}
	}
	return p, nil
}

func decodeSuback(b []byte, v Version) (Packet, error) {
	c := cursor{b: b}
	id, err := c.packetID()
	if err != nil {
		return nil, err
	}
	p := &Suback{PacketID: id}
	if v == V5 {
		if err := c.props(&p.Properties, uint8(TypeSuback)); err != nil {
			return nil, err
		}
	}
	codes := reasonCodes(c.rest())
	if len(codes) == 0 {
		return nil, protocolError("SUBACK without a reason code")
	}
	for _, rc := range codes {
		ok := reasonSets[TypeSuback].has(rc)
		if v != V5 {
			ok = validSubackV3(rc)
		}
		if !ok {
			return nil, protocolError("SUBACK code 0x%02X [MQTT-3.9.3-2]", byte(rc))
		}
	}
	p.ReasonCodes = codes
	return p, nil
}

func decodeUnsubscribe(b []byte, v Version) (Packet, error) {
	c := cursor{b: b}
	id, err := c.packetID()
	if err != nil {
		return nil, err
	}
	p := &Unsubscribe{PacketID: id}
	if v == V5 {
		if err := c.props(&p.Properties, uint8(TypeUnsubscribe)); err != nil {
			return nil, err
		}
	}
	start, n := c.i, 0
	for c.left() > 0 {
		if err := c.skipPrefixed(); err != nil {
			return nil, err
		}
		n++
	}
	if n == 0 {
		return nil, protocolError("UNSUBSCRIBE without a Topic Filter [MQTT-3.10.3-2]")
	}
	c.i = start
	p.Filters = make([]string, n)
	for i := range p.Filters {
		if p.Filters[i], err = c.str(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func decodeUnsuback(b []byte, v Version) (Packet, error) {
	c := cursor{b: b}
	id, err := c.packetID()
	if err != nil {
		return nil, err
	}
	p := &Unsuback{PacketID: id}
	if v != V5 {
		if c.left() != 0 {
			return nil, errTrailing
		}
		return p, nil
	}
	if err := c.props(&p.Properties, uint8(TypeUnsuback)); err != nil {
		return nil, err
	}
	codes := reasonCodes(c.rest())
	if len(codes) == 0 {
		return nil, protocolError("UNSUBACK without a reason code")
	}
	for _, rc := range codes {
		if !reasonSets[TypeUnsuback].has(rc) {
			return nil, protocolError("reason code 0x%02X is not an UNSUBACK reason code", byte(rc))
		}
	}
	p.ReasonCodes = codes
	return p, nil
}
