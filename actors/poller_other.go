//go:build !linux

package actors

import "errors"

// Without epoll every reader keeps its goroutine (poller_linux.go): getPoller returns nil, so
// no reader ever parks.
type poller struct{}

func getPoller() *poller                   { return nil }
func (p *poller) register(r *reader) error { return errors.ErrUnsupported }
func (p *poller) arm(r *reader) error      { return errors.ErrUnsupported }
func (p *poller) forget(r *reader)         {}
