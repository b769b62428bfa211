package codec

import "fmt"

// ReasonCode is an MQTT 5.0 reason code (§2.4), or a 3.x CONNACK return
// code or SUBACK return code. Several names share a value, as in the spec.
type ReasonCode byte

// MQTT 5.0 reason codes.
const (
	Success                             ReasonCode = 0x00
	NormalDisconnection                 ReasonCode = 0x00
	GrantedQoS0                         ReasonCode = 0x00
	GrantedQoS1                         ReasonCode = 0x01
	GrantedQoS2                         ReasonCode = 0x02
	DisconnectWithWill                  ReasonCode = 0x04
	NoMatchingSubscribers               ReasonCode = 0x10
	NoSubscriptionExisted               ReasonCode = 0x11
	ContinueAuthentication              ReasonCode = 0x18
	ReAuthenticate                      ReasonCode = 0x19
	UnspecifiedError                    ReasonCode = 0x80
	MalformedPacket                     ReasonCode = 0x81
	ProtocolError                       ReasonCode = 0x82
	ImplementationSpecificError         ReasonCode = 0x83
	UnsupportedProtocolVersion          ReasonCode = 0x84
	ClientIdentifierNotValid            ReasonCode = 0x85
	BadUserNameOrPassword               ReasonCode = 0x86
	NotAuthorized                       ReasonCode = 0x87
	ServerUnavailable                   ReasonCode = 0x88
	ServerBusy                          ReasonCode = 0x89
	Banned                              ReasonCode = 0x8A
	ServerShuttingDown                  ReasonCode = 0x8B
	BadAuthenticationMethod             ReasonCode = 0x8C
	KeepAliveTimeout                    ReasonCode = 0x8D
	SessionTakenOver                    ReasonCode = 0x8E
	TopicFilterInvalid                  ReasonCode = 0x8F
	TopicNameInvalid                    ReasonCode = 0x90
	PacketIdentifierInUse               ReasonCode = 0x91
	PacketIdentifierNotFound            ReasonCode = 0x92
	ReceiveMaximumExceeded              ReasonCode = 0x93
	TopicAliasInvalid                   ReasonCode = 0x94
	PacketTooLarge                      ReasonCode = 0x95
	MessageRateTooHigh                  ReasonCode = 0x96
	QuotaExceeded                       ReasonCode = 0x97
	AdministrativeAction                ReasonCode = 0x98
	PayloadFormatInvalid                ReasonCode = 0x99
	RetainNotSupported                  ReasonCode = 0x9A
	QoSNotSupported                     ReasonCode = 0x9B
	UseAnotherServer                    ReasonCode = 0x9C
	ServerMoved                         ReasonCode = 0x9D
	SharedSubscriptionsNotSupported     ReasonCode = 0x9E
	ConnectionRateExceeded              ReasonCode = 0x9F
	MaximumConnectTime                  ReasonCode = 0xA0
	SubscriptionIdentifiersNotSupported ReasonCode = 0xA1
	WildcardSubscriptionsNotSupported   ReasonCode = 0xA2
)

// MQTT 3.1 and 3.1.1 CONNACK return codes.
const (
	ConnAccepted                   ReasonCode = 0
	ConnRefusedProtocolVersion     ReasonCode = 1
	ConnRefusedIdentifierRejected  ReasonCode = 2
	ConnRefusedServerUnavailable   ReasonCode = 3
	ConnRefusedBadUsernamePassword ReasonCode = 4
	ConnRefusedNotAuthorized       ReasonCode = 5
)

// SubackFailureV3 is the 3.1.1 SUBACK return code for a refused filter.
const SubackFailureV3 ReasonCode = 0x80

// reasonNames is indexed by code; an empty entry has no 5.0 name.
var reasonNames = [256]string{
	0x00: "Success",
	0x01: "Granted QoS 1",
	0x02: "Granted QoS 2",
	0x04: "Disconnect with Will Message",
	0x10: "No matching subscribers",
	0x11: "No subscription existed",
	0x18: "Continue authentication",
	0x19: "Re-authenticate",
	0x80: "Unspecified error",
	0x81: "Malformed Packet",
	0x82: "Protocol Error",
	0x83: "Implementation specific error",
	0x84: "Unsupported Protocol Version",
	0x85: "Client Identifier not valid",
	0x86: "Bad User Name or Password",
	0x87: "Not authorized",
	0x88: "Server unavailable",
	0x89: "Server busy",
	0x8A: "Banned",
	0x8B: "Server shutting down",
	0x8C: "Bad authentication method",
	0x8D: "Keep Alive timeout",
	0x8E: "Session taken over",
	0x8F: "Topic Filter invalid",
	0x90: "Topic Name invalid",
	0x91: "Packet Identifier in use",
	0x92: "Packet Identifier not found",
	0x93: "Receive Maximum exceeded",
	0x94: "Topic Alias invalid",
	0x95: "Packet too large",
	0x96: "Message rate too high",
	0x97: "Quota exceeded",
	0x98: "Administrative action",
	0x99: "Payload format invalid",
	0x9A: "Retain not supported",
	0x9B: "QoS not supported",
	0x9C: "Use another server",
	0x9D: "Server moved",
	0x9E: "Shared Subscriptions not supported",
	0x9F: "Connection rate exceeded",
	0xA0: "Maximum connect time",
	0xA1: "Subscription Identifiers not supported",
	0xA2: "Wildcard Subscriptions not supported",
}

var connackV3Names = [...]string{
	"Connection Accepted",
	"Connection Refused, unacceptable protocol version",
	"Connection Refused, identifier rejected",
	"Connection Refused, Server unavailable",
	"Connection Refused, bad user name or password",
	"Connection Refused, not authorized",
}

// String returns the spec's name of rc as a 5.0 reason code; 0x03 and 0x05,
// which only 3.x uses, get their 3.x CONNACK names. Use Text where the packet
// is known.
func (rc ReasonCode) String() string {
	if s := reasonNames[rc]; s != "" {
		return s
	}
	if rc == 3 || rc == 5 {
		return connackV3Names[rc]
	}
	return fmt.Sprintf("ReasonCode(0x%02X)", byte(rc))
}

// Text names rc as it reads in a packet of type t and version v: 0x01 is
// "Granted QoS 1" in a SUBACK but "unacceptable protocol version" in a 3.1.1
// CONNACK, and 0x00 is Success, Normal disconnection or Granted QoS 0.
func (rc ReasonCode) Text(t PacketType, v Version) string {
	switch {
	case t == TypeConnack && v != V5 && int(rc) < len(connackV3Names):
		return connackV3Names[rc]
	case rc == 0 && t == TypeDisconnect:
		return "Normal disconnection"
	case rc == 0 && t == TypeSuback:
		return "Granted QoS 0"
	case rc == SubackFailureV3 && t == TypeSuback && v != V5:
		return "Failure"
	}
	return rc.String()
}

// ConnackCodeV3 maps a 5.0 CONNACK reason code to the closest 3.1/3.1.1
// return code. Codes 0..5 are returned unchanged. 3.x has no code for a
// malformed or otherwise broken CONNECT: the 3.1.1 server closes the
// connection without a CONNACK [MQTT-3.1.4-1]; such codes map to
// ConnRefusedServerUnavailable for callers that answer anyway.
func ConnackCodeV3(rc ReasonCode) ReasonCode {
	switch rc {
	case Success, ConnRefusedProtocolVersion, ConnRefusedIdentifierRejected,
		ConnRefusedServerUnavailable, ConnRefusedBadUsernamePassword, ConnRefusedNotAuthorized:
		return rc
	case UnsupportedProtocolVersion:
		return ConnRefusedProtocolVersion
	case ClientIdentifierNotValid:
		return ConnRefusedIdentifierRejected
	case BadUserNameOrPassword:
		return ConnRefusedBadUsernamePassword
	case NotAuthorized, Banned, BadAuthenticationMethod:
		return ConnRefusedNotAuthorized
	}
	return ConnRefusedServerUnavailable
}

// reasonSet is a 256-bit set of reason codes.
type reasonSet [4]uint64

func (s *reasonSet) has(rc ReasonCode) bool { return s[rc>>6]&(1<<(rc&63)) != 0 }

func makeReasonSet(codes ...ReasonCode) (s reasonSet) {
	for _, rc := range codes {
		s[rc>>6] |= 1 << (rc & 63)
	}
	return s
}

// reasonSets holds, per packet type, the 5.0 reason codes that packet may
// carry (§3.2.2.2, §3.4.2.1 ... §3.15.2.1).
var reasonSets = func() (m [16]reasonSet) {
	pub := []ReasonCode{Success, NoMatchingSubscribers, UnspecifiedError, ImplementationSpecificError,
		NotAuthorized, TopicNameInvalid, PacketIdentifierInUse, QuotaExceeded, PayloadFormatInvalid}
	rel := []ReasonCode{Success, PacketIdentifierNotFound}
	m[TypeConnack] = makeReasonSet(Success, UnspecifiedError, MalformedPacket, ProtocolError,
		ImplementationSpecificError, UnsupportedProtocolVersion, ClientIdentifierNotValid,
		BadUserNameOrPassword, NotAuthorized, ServerUnavailable, ServerBusy, Banned,
		BadAuthenticationMethod, TopicNameInvalid, PacketTooLarge, QuotaExceeded, PayloadFormatInvalid,
		RetainNotSupported, QoSNotSupported, UseAnotherServer, ServerMoved, ConnectionRateExceeded)
	m[TypePuback] = makeReasonSet(pub...)
	m[TypePubrec] = makeReasonSet(pub...)
	m[TypePubrel] = makeReasonSet(rel...)
	m[TypePubcomp] = makeReasonSet(rel...)
	m[TypeSuback] = makeReasonSet(GrantedQoS0, GrantedQoS1, GrantedQoS2, UnspecifiedError,
		ImplementationSpecificError, NotAuthorized, TopicFilterInvalid, PacketIdentifierInUse,
		QuotaExceeded, SharedSubscriptionsNotSupported, SubscriptionIdentifiersNotSupported,
		WildcardSubscriptionsNotSupported)
	m[TypeUnsuback] = makeReasonSet(Success, NoSubscriptionExisted, UnspecifiedError,
		ImplementationSpecificError, NotAuthorized, TopicFilterInvalid, PacketIdentifierInUse)
	m[TypeDisconnect] = makeReasonSet(NormalDisconnection, DisconnectWithWill, UnspecifiedError,
		MalformedPacket, ProtocolError, ImplementationSpecificError, NotAuthorized, ServerBusy,
		ServerShuttingDown, KeepAliveTimeout, SessionTakenOver, TopicFilterInvalid, TopicNameInvalid,
		ReceiveMaximumExceeded, TopicAliasInvalid, PacketTooLarge, MessageRateTooHigh, QuotaExceeded,
		AdministrativeAction, PayloadFormatInvalid, RetainNotSupported, QoSNotSupported,
		UseAnotherServer, ServerMoved, SharedSubscriptionsNotSupported, ConnectionRateExceeded,
		MaximumConnectTime, SubscriptionIdentifiersNotSupported, WildcardSubscriptionsNotSupported)
	m[TypeAuth] = makeReasonSet(Success, ContinueAuthentication, ReAuthenticate)
	return m
}()

// ValidReasonCode reports whether a 5.0 packet of type t may carry rc.
func ValidReasonCode(t PacketType, rc ReasonCode) bool {
	return t < 16 && reasonSets[t].has(rc)
}

// validSubackV3 reports whether rc is a 3.x SUBACK return code
// [MQTT-3.9.3-2].
func validSubackV3(rc ReasonCode) bool { return rc <= GrantedQoS2 || rc == SubackFailureV3 }
