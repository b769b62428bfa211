//go:build !linux

package main

import (
	"bufio"
	"bytes"
	"os"
)

// Outside Linux the password is read as a line, echoed: use -b or a pipe to keep it off
// the screen.
func isTerminal(*os.File) bool { return false }

func readNoEcho(f *os.File) ([]byte, error) {
	line, err := bufio.NewReader(f).ReadBytes('\n')
	return bytes.TrimRight(line, "\r\n"), err
}
