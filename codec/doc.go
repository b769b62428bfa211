// Package codec encodes and decodes the control packets of MQTT 3.1
// (protocol name "MQIsdp", level 3), 3.1.1 ("MQTT", level 4) and 5.0
// ("MQTT", level 5), AUTH included.
//
// # Decoding
//
// Decoding is strict: every rule of the specifications that can be checked
// from the bytes of one packet is checked, and a violation is returned as an
// *Error whose Code is the reason code the connection layer answers with
// (CONNACK or DISCONNECT on 5.0; on 3.x the connection is closed, after a
// CONNACK with return code 1 for UnsupportedProtocolVersion).
//
// Decoded packets are zero-copy: strings (topics, client identifiers,
// property values) are views into the packet body and byte slices (payload,
// password, correlation data, SUBACK/UNSUBACK reason codes) are capped
// sub-slices of it. A Reader allocates a fresh body for every packet and
// never reuses or writes it, so a decoded packet is immutable and may be
// shared between goroutines, which is how the broker passes one PUBLISH to
// many subscribers. Decode aliases the caller's slice instead: the caller
// must not modify it while the packet is in use. Keeping any one field alive
// keeps the whole body alive (the CONNECT body includes the password); copy a
// field with strings.Clone or bytes.Clone to retain it on its own.
//
// A Reader needs two allocations for a PUBLISH (its body and the *Publish);
// each user property list and subscription identifier list adds one. Acks,
// PINGREQ, PINGRESP and short DISCONNECT/AUTH packets need no body
// allocation.
//
// # Encoding
//
// Append writes a whole packet in the wire form of the given version into a
// caller's buffer and allocates nothing when the buffer has room. 3.x forms
// drop what 3.x cannot carry (properties, ack reason codes, subscription
// options other than QoS); the 5.0 acks, DISCONNECT and AUTH use their short
// forms when the spec allows. Append validates structure (lengths, ranges,
// packet identifiers, which properties and reason codes a packet may carry)
// but trusts string contents: strings that came from a decoder are already
// valid, and the broker validates the ones it makes.
//
// # Left to the connection layer
//
// Rules that need connection state are not checked here: that CONNECT comes
// first and only once [MQTT-3.1.0-1] [MQTT-3.1.0-2] (a Reader that has not
// seen a CONNECT rejects anything else), Client Identifier policy, Topic
// Alias against Topic Alias Maximum, a Subscription Identifier in a PUBLISH
// from a client [MQTT-3.3.4-6], Topic Filter syntax (package topics, so that
// a 5.0 SUBACK can refuse one filter with 0x8F), the Payload Format
// Indicator against the payload (0x99), the Authentication Method of an AUTH
// against the one in CONNECT, and the receive and size limits of the peer.
// A Topic Alias of 0 is rejected here, with code TopicAliasInvalid, because
// it is invalid whatever the connection state [MQTT-3.3.2-8].
package codec
