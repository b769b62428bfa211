package codec

// Decoding of CONNECT and CONNACK.

// decodeConnect decodes a CONNECT body. It returns the version the packet
// announces as soon as that is known, even with an error, so that the
// connection layer can answer in the right form.
func decodeConnect(b []byte) (*Connect, Version, error) {
	c := cursor{b: b}
	name, err := c.prefixed()
	if err != nil {
		return nil, 0, err
	}
	level, err := c.u8()
	if err != nil {
		return nil, 0, err
	}
	var v Version
	switch {
	case level == byte(V311) && string(name) == "MQTT":
		v = V311
	case level == byte(V5) && string(name) == "MQTT":
		v = V5
	case level == byte(V31) && string(name) == "MQIsdp":
		v = V31
	default:
		return nil, 0, errorf(UnsupportedProtocolVersion, "protocol %q level %d [MQTT-3.1.2-1] [MQTT-3.1.2-2]", name, level)
	}
	flags, err := c.u8()
	if err != nil {
		return nil, v, err
	}
	keepAlive, err := c.u16()
	if err != nil {
		return nil, v, err
	}
	willFlag, willQoS, willRetain := flags&0x04 != 0, flags>>3&3, flags&0x20 != 0
	hasUser, hasPass := flags&0x80 != 0, flags&0x40 != 0
	switch {
	case flags&0x01 != 0:
		return nil, v, malformed("CONNECT reserved flag set [MQTT-3.1.2-3]")
	case !willFlag && (willQoS != 0 || willRetain):
		return nil, v, malformed("Will QoS or Will Retain without Will Flag [MQTT-3.1.2-11] [MQTT-3.1.2-13]")
	case willQoS == 3:
		return nil, v, malformed("Will QoS 3 [MQTT-3.1.2-12]")
	case hasPass && !hasUser && v != V5:
		return nil, v, malformed("Password Flag without User Name Flag [MQTT-3.1.2-22]")
	}
	p := &Connect{
		ProtocolName: v.protocolName(),
		Version:      v,
		CleanStart:   flags&0x02 != 0,
		KeepAlive:    keepAlive,
	}
	if v == V5 {
		if err := c.props(&p.Properties, uint8(TypeConnect)); err != nil {
			return nil, v, err
		}
	}
	if p.ClientID, err = c.str(); err != nil {
		return nil, v, err
	}
	if willFlag {
		w := &Will{QoS: willQoS, Retain: willRetain}
		if v == V5 {
			if err := c.props(&w.Properties, ctxWill); err != nil {
				return nil, v, err
			}
		}
		topic, err := c.prefixed()
		if err != nil {
			return nil, v, err
		}
		if err := checkTopicName(topic); err != nil {
			return nil, v, err
		}
		if len(topic) == 0 {
			return nil, v, errorf(TopicNameInvalid, "empty Will Topic [MQTT-4.7.3-1]")
		}
		w.Topic = view(topic)
		if w.Payload, err = c.binary(); err != nil {
			return nil, v, err
		}
		p.Will = w
	}
	// 3.1 clients may set the User Name and Password flags and then leave
	// the fields out; like Mosquitto, treat a missing field as absent.
	if hasUser && !(v == V31 && c.left() == 0) {
		if p.Username, err = c.str(); err != nil {
			return nil, v, err
		}
		p.HasUsername = true
	}
	if hasPass && !(v == V31 && c.left() == 0) {
		if p.Password, err = c.binary(); err != nil {
			return nil, v, err
		}
		p.HasPassword = true
	}
	if c.left() != 0 {
		return nil, v, errTrailing
	}
	return p, v, nil
}

func decodeConnack(b []byte, v Version) (Packet, error) {
	c := cursor{b: b}
	flags, err := c.u8()
	if err != nil {
		return nil, err
	}
	rc, err := c.u8()
	if err != nil {
		return nil, err
	}
	p := &Connack{ReasonCode: ReasonCode(rc)}
	switch v {
	case V5:
		if flags&^1 != 0 {
			return nil, malformed("CONNACK reserved flags 0x%X [MQTT-3.2.2-1]", flags)
		}
		if !reasonSets[TypeConnack].has(p.ReasonCode) {
			return nil, protocolError("reason code 0x%02X is not a CONNACK reason code", rc)
		}
		if err := c.props(&p.Properties, uint8(TypeConnack)); err != nil {
			return nil, err
		}
	case V311:
		if flags&^1 != 0 {
			return nil, malformed("CONNACK reserved flags 0x%X", flags)
		}
	}
	// In 3.1 the first byte is reserved and has no meaning: ignore it.
	p.SessionPresent = flags&1 != 0 && v != V31
	if v != V5 && rc > byte(ConnRefusedNotAuthorized) {
		return nil, protocolError("CONNACK return code %d", rc)
	}
	if p.SessionPresent && rc != 0 {
		return nil, protocolError("Session Present with a non-zero return code [MQTT-3.2.2-4] [MQTT-3.2.2-6]")
	}
	if c.left() != 0 {
		return nil, errTrailing
	}
	return p, nil
}
