package codec

import "strconv"

// Version is the protocol level a CONNECT announces; it selects the wire
// form of every other packet on that connection.
type Version byte

// The protocol versions this package speaks.
const (
	V31  Version = 3 // MQTT 3.1, protocol name "MQIsdp"
	V311 Version = 4 // MQTT 3.1.1, protocol name "MQTT"
	V5   Version = 5 // MQTT 5.0, protocol name "MQTT"
)

// String returns "3.1", "3.1.1" or "5.0".
func (v Version) String() string {
	switch v {
	case V31:
		return "3.1"
	case V311:
		return "3.1.1"
	case V5:
		return "5.0"
	}
	return "Version(" + strconv.Itoa(int(v)) + ")"
}

func (v Version) valid() bool { return v >= V31 && v <= V5 }

// protocolName is the name a CONNECT of version v carries.
func (v Version) protocolName() string {
	if v == V31 {
		return "MQIsdp"
	}
	return "MQTT"
}

// Size limits of the wire format.
const (
	// MaxRemainingLength is the largest value a four-byte Remaining Length
	// can hold.
	MaxRemainingLength = 268435455
	// MaxPacketSize is the largest whole packet: one type byte, four
	// length bytes and MaxRemainingLength bytes.
	MaxPacketSize = 1 + 4 + MaxRemainingLength
	// MaxSubscriptionIdentifier is the largest Subscription Identifier.
	MaxSubscriptionIdentifier = MaxRemainingLength
)

// PacketType is the control packet type in the high nibble of the first
// byte.
type PacketType byte

// The control packet types. 0 is reserved; AUTH exists only in 5.0.
const (
	TypeConnect PacketType = iota + 1
	TypeConnack
	TypePublish
	TypePuback
	TypePubrec
	TypePubrel
	TypePubcomp
	TypeSubscribe
	TypeSuback
	TypeUnsubscribe
	TypeUnsuback
	TypePingreq
	TypePingresp
	TypeDisconnect
	TypeAuth
)

var typeNames = [...]string{
	TypeConnect:     "CONNECT",
	TypeConnack:     "CONNACK",
	TypePublish:     "PUBLISH",
	TypePuback:      "PUBACK",
	TypePubrec:      "PUBREC",
	TypePubrel:      "PUBREL",
	TypePubcomp:     "PUBCOMP",
	TypeSubscribe:   "SUBSCRIBE",
	TypeSuback:      "SUBACK",
	TypeUnsubscribe: "UNSUBSCRIBE",
	TypeUnsuback:    "UNSUBACK",
	TypePingreq:     "PINGREQ",
	TypePingresp:    "PINGRESP",
	TypeDisconnect:  "DISCONNECT",
	TypeAuth:        "AUTH",
}

// String returns the spec's name of the packet type, e.g. "CONNECT".
func (t PacketType) String() string {
	if t >= TypeConnect && t <= TypeAuth {
		return typeNames[t]
	}
	return "PacketType(" + strconv.Itoa(int(t)) + ")"
}

// Packet is one MQTT control packet. The packet types of this package
// implement it with pointer receivers, so a Packet always holds a pointer
// (*Publish, *Connect, ...).
type Packet interface {
	Type() PacketType
}

// Connect is the CONNECT packet.
type Connect struct {
	// ProtocolName is "MQTT" or "MQIsdp". When encoding, empty means the
	// name of the version being written.
	ProtocolName string
	// Version is the protocol level. When encoding, 0 means the version
	// being written.
	Version Version
	// CleanStart is Clean Session in 3.1 and 3.1.1.
	CleanStart bool
	KeepAlive  uint16
	Properties Properties // 5.0 only
	ClientID   string
	// Will is nil when the Will Flag is 0.
	Will        *Will
	Username    string
	HasUsername bool
	// Password is Binary Data: 5.0 allows it without a user name, 3.x not.
	Password    []byte
	HasPassword bool
}

// Will is the will message of a CONNECT.
type Will struct {
	Topic      string
	Payload    []byte
	QoS        byte
	Retain     bool
	Properties Properties // 5.0 only
}

// Connack is the CONNACK packet. In 3.x ReasonCode holds the return code
// 0..5; Append maps a 5.0 failure code to the closest 3.x code with
// ConnackCodeV3. 3.1 has no Session Present flag.
type Connack struct {
	SessionPresent bool
	ReasonCode     ReasonCode
	Properties     Properties
}

// Publish is the PUBLISH packet. PacketID is used only when QoS > 0.
//
// A decoded Publish is shared read-only between deliveries. To change it for
// one subscriber, copy the struct (q := *p) and change the copy: the
// Properties setters never write into slices the copies share.
type Publish struct {
	Dup        bool
	QoS        byte
	Retain     bool
	Topic      string
	PacketID   uint16
	Properties Properties
	Payload    []byte
}

// Puback is the PUBACK packet. In 3.x only PacketID goes on the wire.
type Puback struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// Pubrec is the PUBREC packet. In 3.x only PacketID goes on the wire.
type Pubrec struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// Pubrel is the PUBREL packet. In 3.x only PacketID goes on the wire.
type Pubrel struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// Pubcomp is the PUBCOMP packet. In 3.x only PacketID goes on the wire.
type Pubcomp struct {
	PacketID   uint16
	ReasonCode ReasonCode
	Properties Properties
}

// Subscribe is the SUBSCRIBE packet.
type Subscribe struct {
	PacketID      uint16
	Properties    Properties
	Subscriptions []Subscription
}

// Subscription is one Topic Filter of a SUBSCRIBE and its options. NoLocal,
// RetainAsPublished and RetainHandling exist only in 5.0.
type Subscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
}

// Suback is the SUBACK packet. In 3.x the codes are the granted QoS (0..2)
// or 0x80; Append writes any 5.0 failure code (>= 0x80) as 0x80 there.
type Suback struct {
	PacketID    uint16
	Properties  Properties
	ReasonCodes []ReasonCode
}

// Unsubscribe is the UNSUBSCRIBE packet.
type Unsubscribe struct {
	PacketID   uint16
	Properties Properties
	Filters    []string
}

// Unsuback is the UNSUBACK packet. ReasonCodes is empty in 3.x.
type Unsuback struct {
	PacketID    uint16
	Properties  Properties
	ReasonCodes []ReasonCode
}

// Pingreq is the PINGREQ packet.
type Pingreq struct{}

// Pingresp is the PINGRESP packet.
type Pingresp struct{}

// Disconnect is the DISCONNECT packet. In 3.x it has no content.
type Disconnect struct {
	ReasonCode ReasonCode
	Properties Properties
}

// Auth is the AUTH packet (5.0 only).
type Auth struct {
	ReasonCode ReasonCode
	Properties Properties
}

// Type returns TypeConnect.
func (*Connect) Type() PacketType { return TypeConnect }

// Type returns TypeConnack.
func (*Connack) Type() PacketType { return TypeConnack }

// Type returns TypePublish.
func (*Publish) Type() PacketType { return TypePublish }

// Type returns TypePuback.
func (*Puback) Type() PacketType { return TypePuback }

// Type returns TypePubrec.
func (*Pubrec) Type() PacketType { return TypePubrec }

// Type returns TypePubrel.
func (*Pubrel) Type() PacketType { return TypePubrel }

// Type returns TypePubcomp.
func (*Pubcomp) Type() PacketType { return TypePubcomp }

// Type returns TypeSubscribe.
func (*Subscribe) Type() PacketType { return TypeSubscribe }

// Type returns TypeSuback.
func (*Suback) Type() PacketType { return TypeSuback }

// Type returns TypeUnsubscribe.
func (*Unsubscribe) Type() PacketType { return TypeUnsubscribe }

// Type returns TypeUnsuback.
func (*Unsuback) Type() PacketType { return TypeUnsuback }

// Type returns TypePingreq.
func (*Pingreq) Type() PacketType { return TypePingreq }

// Type returns TypePingresp.
func (*Pingresp) Type() PacketType { return TypePingresp }

// Type returns TypeDisconnect.
func (*Disconnect) Type() PacketType { return TypeDisconnect }

// Type returns TypeAuth.
func (*Auth) Type() PacketType { return TypeAuth }
