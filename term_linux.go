package main

import (
	"bufio"
	"bytes"
	"os"
	"syscall"
	"unsafe"
)

// isTerminal and readNoEcho use the termios ioctls directly: golang.org/x/term is not a
// dependency of the module, and a password prompt needs nothing more.
func isTerminal(f *os.File) bool {
	var t syscall.Termios
	return ioctl(f, syscall.TCGETS, &t) == nil
}

func readNoEcho(f *os.File) ([]byte, error) {
	var old syscall.Termios
	if err := ioctl(f, syscall.TCGETS, &old); err != nil {
		return nil, err
	}
	quiet := old
	quiet.Lflag &^= syscall.ECHO
	quiet.Lflag |= syscall.ICANON | syscall.ISIG
	if err := ioctl(f, syscall.TCSETS, &quiet); err != nil {
		return nil, err
	}
	defer func() {
		_ = ioctl(f, syscall.TCSETS, &old)
		os.Stderr.WriteString("\n") // the Enter the user typed was not echoed
	}()
	// Byte by byte, so nothing past the line is consumed (the second prompt reads it).
	var line []byte
	r := bufio.NewReaderSize(f, 16)
	for {
		c, err := r.ReadByte()
		if err != nil || c == '\n' {
			return bytes.TrimRight(line, "\r"), nil
		}
		line = append(line, c)
	}
}

func ioctl(f *os.File, req uintptr, t *syscall.Termios) error {
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), req, uintptr(unsafe.Pointer(t))); e != 0 {
		return e
	}
	return nil
}
