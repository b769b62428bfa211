package codec

// Encoding of SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK.

import "strings"

func (s *Subscribe) plan(v Version) (plan, error) {
	var pl plan
	if s == nil {
		return pl, errNil
	}
	if s.PacketID == 0 {
		return pl, errZeroID
	}
	if len(s.Subscriptions) == 0 {
		return pl, protocolError("SUBSCRIBE without a Topic Filter [MQTT-3.8.3-2]")
	}
	rem := 2
	if v == V5 {
		n, total, err := propBlock(&s.Properties, uint8(TypeSubscribe))
		if err != nil {
			return pl, err
		}
		pl.props = n
		rem += total
	}
	for i := range s.Subscriptions {
		sub := &s.Subscriptions[i]
		if len(sub.Filter) > maxField {
			return pl, fieldTooLong("Topic Filter", len(sub.Filter))
		}
		if sub.QoS > 2 {
			return pl, malformed("subscription QoS %d", sub.QoS)
		}
		if v == V5 {
			if sub.RetainHandling > 2 {
				return pl, protocolError("Retain Handling %d", sub.RetainHandling)
			}
			if sub.NoLocal && strings.HasPrefix(sub.Filter, sharePrefix) {
				return pl, protocolError("No Local on a shared subscription [MQTT-3.8.3-4]")
			}
		}
		rem += 3 + len(sub.Filter)
	}
	pl.rem = rem
	return pl, nil
}

func (s *Subscribe) header() byte { return byte(TypeSubscribe)<<4 | 0x02 }

func (s *Subscribe) appendBody(dst []byte, v Version, pl plan) []byte {
	dst = appendU16(dst, s.PacketID)
	if v == V5 {
		dst = s.Properties.appendTo(appendVarint(dst, pl.props))
	}
	for i := range s.Subscriptions {
		sub := &s.Subscriptions[i]
		opts := sub.QoS
		if v == V5 {
			opts |= boolByte(sub.NoLocal)<<2 | boolByte(sub.RetainAsPublished)<<3 | sub.RetainHandling<<4
		}
		dst = append(appendString(dst, sub.Filter), opts)
	}
	return dst
}

// subackCodeV3 returns the 3.x form of a SUBACK code: the granted QoS, or
// 0x80 for any failure.
func subackCodeV3(rc ReasonCode) (ReasonCode, bool) {
	switch {
	case rc <= GrantedQoS2:
		return rc, true
	case rc >= UnspecifiedError:
		return SubackFailureV3, true
	}
	return 0, false
}

func (s *Suback) plan(v Version) (plan, error) {
	var pl plan
	if s == nil {
		return pl, errNil
	}
	if s.PacketID == 0 {
		return pl, errZeroID
	}
	if len(s.ReasonCodes) == 0 {
		return pl, protocolError("SUBACK without a reason code [MQTT-3.8.4-6]")
	}
	for _, rc := range s.ReasonCodes {
		ok := reasonSets[TypeSuback].has(rc)
		if v != V5 {
			_, ok = subackCodeV3(rc)
		}
		if !ok {
			return pl, protocolError("reason code 0x%02X is not a SUBACK code in %s", byte(rc), v)
		}
	}
	pl.rem = 2 + len(s.ReasonCodes)
	if v == V5 {
		n, total, err := propBlock(&s.Properties, uint8(TypeSuback))
		if err != nil {
			return pl, err
		}
		pl.props = n
		pl.rem += total
	}
	return pl, nil
}

func (s *Suback) header() byte { return byte(TypeSuback) << 4 }

func (s *Suback) appendBody(dst []byte, v Version, pl plan) []byte {
	dst = appendU16(dst, s.PacketID)
	if v == V5 {
		dst = s.Properties.appendTo(appendVarint(dst, pl.props))
		for _, rc := range s.ReasonCodes {
			dst = append(dst, byte(rc))
		}
		return dst
	}
	for _, rc := range s.ReasonCodes {
		rc, _ = subackCodeV3(rc)
		dst = append(dst, byte(rc))
	}
	return dst
}

func (u *Unsubscribe) plan(v Version) (plan, error) {
	var pl plan
	if u == nil {
		return pl, errNil
	}
	if u.PacketID == 0 {
		return pl, errZeroID
	}
	if len(u.Filters) == 0 {
		return pl, protocolError("UNSUBSCRIBE without a Topic Filter [MQTT-3.10.3-2]")
	}
	rem := 2
	if v == V5 {
		n, total, err := propBlock(&u.Properties, uint8(TypeUnsubscribe))
		if err != nil {
			return pl, err
		}
		pl.props = n
		rem += total
	}
	for _, f := range u.Filters {
		if len(f) > maxField {
			return pl, fieldTooLong("Topic Filter", len(f))
		}
		rem += 2 + len(f)
	}
	pl.rem = rem
	return pl, nil
}

func (u *Unsubscribe) header() byte { return byte(TypeUnsubscribe)<<4 | 0x02 }

func (u *Unsubscribe) appendBody(dst []byte, v Version, pl plan) []byte {
	dst = appendU16(dst, u.PacketID)
	if v == V5 {
		dst = u.Properties.appendTo(appendVarint(dst, pl.props))
	}
	for _, f := range u.Filters {
		dst = appendString(dst, f)
	}
	return dst
}

func (u *Unsuback) plan(v Version) (plan, error) {
	var pl plan
	if u == nil {
		return pl, errNil
	}
	if u.PacketID == 0 {
		return pl, errZeroID
	}
	pl.rem = 2
	if v != V5 {
		return pl, nil
	}
	if len(u.ReasonCodes) == 0 {
		return pl, protocolError("UNSUBACK without a reason code")
	}
	for _, rc := range u.ReasonCodes {
		if !reasonSets[TypeUnsuback].has(rc) {
			return pl, protocolError("reason code 0x%02X is not an UNSUBACK reason code", byte(rc))
		}
	}
	n, total, err := propBlock(&u.Properties, uint8(TypeUnsuback))
	if err != nil {
		return pl, err
	}
	pl.props = n
	pl.rem += total + len(u.ReasonCodes)
	return pl, nil
}

func (u *Unsuback) header() byte { return byte(TypeUnsuback) << 4 }

func (u *Unsuback) appendBody(dst []byte, v Version, pl plan) []byte {
	dst = appendU16(dst, u.PacketID)
	if v == V5 {
		dst = u.Properties.appendTo(appendVarint(dst, pl.props))
		for _, rc := range u.ReasonCodes {
			dst = append(dst, byte(rc))
		}
	}
	return dst
}

// sharePrefix starts a shared subscription filter [MQTT-4.8.2-1].
const sharePrefix = "$share/"
