package codec

// Encoding of CONNECT and CONNACK.

func (c *Connect) plan(v Version) (plan, error) {
	var pl plan
	if c == nil {
		return pl, errNil
	}
	if c.Version != 0 && c.Version != v {
		return pl, errorf(UnsupportedProtocolVersion, "CONNECT of version %s written as %s", c.Version, v)
	}
	name := v.protocolName()
	if c.ProtocolName != "" && c.ProtocolName != name {
		return pl, errorf(UnsupportedProtocolVersion, "protocol name %q is not that of version %s", c.ProtocolName, v)
	}
	rem := 2 + len(name) + 1 + 1 + 2 // name, level, flags, keep alive
	if v == V5 {
		n, total, err := propBlock(&c.Properties, uint8(TypeConnect))
		if err != nil {
			return pl, err
		}
		pl.props = n
		rem += total
	}
	if len(c.ClientID) > maxField {
		return pl, fieldTooLong("Client Identifier", len(c.ClientID))
	}
	rem += 2 + len(c.ClientID)
	if w := c.Will; w != nil {
		if w.QoS > 2 {
			return pl, malformed("Will QoS %d [MQTT-3.1.2-12]", w.QoS)
		}
		if w.Topic == "" {
			return pl, errorf(TopicNameInvalid, "empty Will Topic [MQTT-4.7.3-1]")
		}
		if len(w.Topic) > maxField {
			return pl, fieldTooLong("Will Topic", len(w.Topic))
		}
		if len(w.Payload) > maxField {
			return pl, fieldTooLong("Will Payload", len(w.Payload))
		}
		rem += 4 + len(w.Topic) + len(w.Payload)
		if v == V5 {
			n, total, err := propBlock(&w.Properties, ctxWill)
			if err != nil {
				return pl, err
			}
			pl.will = n
			rem += total
		}
	}
	if !c.HasUsername && c.Username != "" {
		return pl, malformed("Username set but HasUsername is false")
	}
	if !c.HasPassword && len(c.Password) > 0 {
		return pl, malformed("Password set but HasPassword is false")
	}
	if c.HasPassword && !c.HasUsername && v != V5 {
		return pl, malformed("password without user name [MQTT-3.1.2-22]")
	}
	if c.HasUsername {
		if len(c.Username) > maxField {
			return pl, fieldTooLong("User Name", len(c.Username))
		}
		rem += 2 + len(c.Username)
	}
	if c.HasPassword {
		if len(c.Password) > maxField {
			return pl, fieldTooLong("Password", len(c.Password))
		}
		rem += 2 + len(c.Password)
	}
	pl.rem = rem
	return pl, nil
}

func (c *Connect) header() byte { return byte(TypeConnect) << 4 }

func (c *Connect) appendBody(dst []byte, v Version, pl plan) []byte {
	dst = appendString(dst, v.protocolName())
	var flags byte
	if c.CleanStart {
		flags |= 0x02
	}
	if w := c.Will; w != nil {
		flags |= 0x04 | w.QoS<<3
		if w.Retain {
			flags |= 0x20
		}
	}
	if c.HasPassword {
		flags |= 0x40
	}
	if c.HasUsername {
		flags |= 0x80
	}
	dst = append(dst, byte(v), flags)
	dst = appendU16(dst, c.KeepAlive)
	if v == V5 {
		dst = c.Properties.appendTo(appendVarint(dst, pl.props))
	}
	dst = appendString(dst, c.ClientID)
	if w := c.Will; w != nil {
		if v == V5 {
			dst = w.Properties.appendTo(appendVarint(dst, pl.will))
		}
		dst = appendString(dst, w.Topic)
		dst = appendBinary(dst, w.Payload)
	}
	if c.HasUsername {
		dst = appendString(dst, c.Username)
	}
	if c.HasPassword {
		dst = appendBinary(dst, c.Password)
	}
	return dst
}

// ---- CONNACK

// connackCode returns the return code written for rc in version v.
func connackCode(rc ReasonCode, v Version) (ReasonCode, error) {
	if v == V5 {
		if !reasonSets[TypeConnack].has(rc) {
			return 0, protocolError("reason code 0x%02X is not a CONNACK reason code", byte(rc))
		}
		return rc, nil
	}
	// 1..5 are 3.x return codes; >= 0x80 are 5.0 failures to map.
	if rc <= ConnRefusedNotAuthorized || rc >= UnspecifiedError {
		return ConnackCodeV3(rc), nil
	}
	return 0, protocolError("reason code 0x%02X has no 3.x CONNACK form", byte(rc))
}

func (c *Connack) plan(v Version) (plan, error) {
	var pl plan
	if c == nil {
		return pl, errNil
	}
	rc, err := connackCode(c.ReasonCode, v)
	if err != nil {
		return pl, err
	}
	if c.SessionPresent && rc != 0 {
		return pl, protocolError("Session Present with a refusal [MQTT-3.2.2-6]")
	}
	pl.rem = 2
	if v == V5 {
		n, total, err := propBlock(&c.Properties, uint8(TypeConnack))
		if err != nil {
			return pl, err
		}
		pl.props = n
		pl.rem += total
	}
	return pl, nil
}

func (c *Connack) header() byte { return byte(TypeConnack) << 4 }

func (c *Connack) appendBody(dst []byte, v Version, pl plan) []byte {
	rc, _ := connackCode(c.ReasonCode, v)
	// 3.1 has no Connect Acknowledge Flags: the byte is reserved.
	dst = append(dst, boolByte(c.SessionPresent && v != V31), byte(rc))
	if v == V5 {
		dst = c.Properties.appendTo(appendVarint(dst, pl.props))
	}
	return dst
}
