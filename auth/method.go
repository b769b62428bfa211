package auth

import "errors"

// Method is an MQTT 5.0 enhanced authentication method [MQTT-4.12]: the client names it in
// CONNECT's Authentication Method, and data goes back and forth in AUTH packets until the
// method decides.
type Method interface {
	Name() string
	// Start begins one client's exchange.
	Start() Exchange
}

// Exchange is one client's authentication in progress. It is used by one goroutine at a time.
type Exchange interface {
	// Next takes the client's Authentication Data. It returns the data to send back and:
	// ErrContinue when the client must answer (AUTH 0x18); another error when the client failed;
	// nil with the authenticated user name when it succeeded (the data goes in the CONNACK).
	Next(data []byte) (reply []byte, user string, err error)
}

// ErrContinue says an exchange needs another round.
var ErrContinue = errors.New("continue authentication")

// ErrAuthFailed is the error of an exchange whose client proved nothing.
var ErrAuthFailed = errors.New("authentication failed")

// Method returns the enhanced authentication method called name, nil when it is not offered.
func (s *Service) Method(name string) Method {
	if name == scramName && s.cfg.SCRAM {
		return scramMethod{s}
	}
	return nil
}
