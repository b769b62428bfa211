package codec

import (
	"errors"
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{V31.String(), "3.1"},
		{V311.String(), "3.1.1"},
		{V5.String(), "5.0"},
		{Version(9).String(), "Version(9)"},
		{TypeConnect.String(), "CONNECT"},
		{TypeAuth.String(), "AUTH"},
		{PacketType(0).String(), "PacketType(0)"},
		{Success.String(), "Success"},
		{MalformedPacket.String(), "Malformed Packet"},
		{WildcardSubscriptionsNotSupported.String(), "Wildcard Subscriptions not supported"},
		{ReasonCode(0x03).String(), "Connection Refused, Server unavailable"},
		{ReasonCode(0x7E).String(), "ReasonCode(0x7E)"},
		{ConnRefusedProtocolVersion.Text(TypeConnack, V311), "Connection Refused, unacceptable protocol version"},
		{GrantedQoS1.Text(TypeSuback, V5), "Granted QoS 1"},
		{NormalDisconnection.Text(TypeDisconnect, V5), "Normal disconnection"},
		{GrantedQoS0.Text(TypeSuback, V311), "Granted QoS 0"},
		{SubackFailureV3.Text(TypeSuback, V311), "Failure"},
		{UnspecifiedError.Text(TypeSuback, V5), "Unspecified error"},
		{PropSharedSubscriptionAvailable.String(), "Shared Subscription Available"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	// Every 5.0 reason code a packet may carry has a name.
	for typ := range reasonSets {
		for rc := 0; rc < 256; rc++ {
			if reasonSets[typ].has(ReasonCode(rc)) && strings.HasPrefix(ReasonCode(rc).String(), "ReasonCode(") {
				t.Errorf("0x%02X is valid in %s but has no name", rc, PacketType(typ))
			}
		}
	}
}

func TestConnackCodeV3(t *testing.T) {
	for rc, want := range map[ReasonCode]ReasonCode{
		Success:                        ConnAccepted,
		UnsupportedProtocolVersion:     ConnRefusedProtocolVersion,
		ClientIdentifierNotValid:       ConnRefusedIdentifierRejected,
		BadUserNameOrPassword:          ConnRefusedBadUsernamePassword,
		NotAuthorized:                  ConnRefusedNotAuthorized,
		Banned:                         ConnRefusedNotAuthorized,
		BadAuthenticationMethod:        ConnRefusedNotAuthorized,
		ServerUnavailable:              ConnRefusedServerUnavailable,
		ServerBusy:                     ConnRefusedServerUnavailable,
		UseAnotherServer:               ConnRefusedServerUnavailable,
		MalformedPacket:                ConnRefusedServerUnavailable,
		ConnRefusedBadUsernamePassword: ConnRefusedBadUsernamePassword,
	} {
		if got := ConnackCodeV3(rc); got != want {
			t.Errorf("ConnackCodeV3(%s) = %d, want %d", rc, got, want)
		}
	}
}

func TestValidReasonCode(t *testing.T) {
	for _, tc := range []struct {
		t    PacketType
		rc   ReasonCode
		want bool
	}{
		{TypePuback, NoMatchingSubscribers, true},
		{TypePuback, PacketIdentifierNotFound, false},
		{TypePubrel, PacketIdentifierNotFound, true},
		{TypeSuback, GrantedQoS2, true},
		{TypeUnsuback, NoSubscriptionExisted, true},
		{TypeDisconnect, DisconnectWithWill, true},
		{TypeDisconnect, ContinueAuthentication, false},
		{TypeAuth, ReAuthenticate, true},
		{TypeConnack, ConnectionRateExceeded, true},
		{TypeConnack, SessionTakenOver, false},
		{TypePublish, Success, false},
		{PacketType(200), Success, false},
	} {
		if got := ValidReasonCode(tc.t, tc.rc); got != tc.want {
			t.Errorf("ValidReasonCode(%s, %s) = %v", tc.t, tc.rc, got)
		}
	}
}

func TestErrorIs(t *testing.T) {
	_, _, err := Decode(by(0x30, 3, 0, 1, '#'), V5)
	if !errors.Is(err, &Error{Code: TopicNameInvalid}) {
		t.Errorf("errors.Is by code failed for %v", err)
	}
	if errors.Is(err, &Error{Code: MalformedPacket}) {
		t.Errorf("errors.Is matched the wrong code for %v", err)
	}
	if !strings.Contains(err.Error(), "Topic Name invalid") {
		t.Errorf("Error() = %q", err.Error())
	}
}
