package listeners

import (
	"errors"
	"fmt"
	"net"
	"syscall"
)

// BindError is a listener that could not open its address. Its message is
// meant for the person who edits config.toml: what went wrong and what to
// change, without Go's internals.
type BindError struct {
	Listener string // the listener's name
	Kind     string
	Address  string // as written in the config
	Err      error
}

func (e *BindError) Error() string {
	return fmt.Sprintf("listener %q (%s): cannot listen on %s: %s", e.Listener, e.Kind, e.Address, e.advice())
}

func (e *BindError) Unwrap() error { return e.Err }

func (e *BindError) advice() string {
	change := fmt.Sprintf("change the address of listener %q in config.toml", e.Listener)
	switch {
	case errors.Is(e.Err, syscall.EADDRINUSE):
		return "the port is already in use (is another MQTT broker such as mosquitto running?); stop it or " + change
	case errors.Is(e.Err, syscall.EACCES):
		return "permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE; run with that right or " + change
	case errors.Is(e.Err, syscall.EADDRNOTAVAIL):
		return "that IP address does not belong to this machine; use one of its addresses, or only \":port\" for all of them, or " + change
	default:
		return plainCause(e.Err) + "; " + change + " (host:port, e.g. \":1883\")"
	}
}

// plainCause strips the "listen tcp ...: bind:" prefixes Go puts on socket
// errors: the BindError message already says where and what.
func plainCause(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}
