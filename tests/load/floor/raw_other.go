//go:build !linux

package main

import (
	"errors"
	"net"
)

type rawServer struct{}

func listenRaw(string) (*rawServer, error) { return nil, errors.New("-raw needs Linux (epoll)") }

func (*rawServer) Addr() net.Addr { return nil }
func (*rawServer) Close() error   { return nil }
func (*rawServer) serve() error   { return nil }
