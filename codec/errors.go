package codec

import "fmt"

// Error is a packet that cannot be decoded or encoded. Code is the reason
// code the connection layer answers with: in a CONNACK or DISCONNECT on 5.0;
// on 3.x it closes the connection, after a CONNACK with return code 1 when
// Code is UnsupportedProtocolVersion. Use errors.As to get at it.
type Error struct {
	Code ReasonCode
	Msg  string
}

func (e *Error) Error() string {
	return "mqtt: " + e.Code.String() + ": " + e.Msg
}

// Is lets errors.Is(err, &Error{Code: c}) match any *Error with code c (and,
// if the target has a Msg, that message).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && (t.Msg == "" || t.Msg == e.Msg)
}

func errorf(code ReasonCode, format string, args ...any) error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

func malformed(format string, args ...any) error {
	return errorf(MalformedPacket, format, args...)
}

func protocolError(format string, args ...any) error {
	return errorf(ProtocolError, format, args...)
}

// Shared errors of the hot paths, so that a failing peer costs no
// formatting. They must never be modified.
var (
	errShort        = &Error{Code: MalformedPacket, Msg: "packet is shorter than its fields"}
	errTrailing     = &Error{Code: MalformedPacket, Msg: "bytes after the last field of the packet"}
	errVarintLong   = &Error{Code: MalformedPacket, Msg: "variable byte integer longer than 4 bytes"}
	errVarintPadded = &Error{Code: MalformedPacket, Msg: "variable byte integer not in its shortest form [MQTT-1.5.5-1]"}
	errBadUTF8      = &Error{Code: MalformedPacket, Msg: "string is not well-formed UTF-8 or contains U+0000 [MQTT-1.5.4-1] [MQTT-1.5.4-2]"}
	errZeroID       = &Error{Code: ProtocolError, Msg: "packet identifier 0 [MQTT-2.2.1-3]"}
	errNoVersion    = &Error{Code: ProtocolError, Msg: "protocol version unknown: the first packet must be CONNECT [MQTT-3.1.0-1]"}
)
