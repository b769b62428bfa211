package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/actormq/actormq/auth"
)

// passwd is "actormq passwd [-b PASSWORD] [-scram] FILE USER": it creates or updates USER's
// bcrypt entry in the password file FILE. Without -b the password is read from the terminal
// (twice, without echo) or, when stdin is not a terminal, from its first line.
func passwd(args []string, stdin *os.File, stderr io.Writer) int {
	fs := flag.NewFlagSet("actormq passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: actormq passwd [-b PASSWORD] [-scram] FILE USER")
		fs.PrintDefaults()
	}
	batch := fs.String("b", "", "take the password from the command line (it shows in ps and shell history)")
	scram := fs.Bool("scram", false, "also store SCRAM-SHA-256 keys, for auth.scram (MQTT 5.0 enhanced authentication)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return 2
	}
	file, user := fs.Arg(0), fs.Arg(1)
	if err := auth.ValidUser(user); err != nil {
		fmt.Fprintf(stderr, "actormq passwd: %v\n", err)
		return 1
	}
	pw := []byte(*batch)
	if *batch == "" {
		var err error
		if pw, err = readPassword(stdin, stderr); err != nil {
			fmt.Fprintf(stderr, "actormq passwd: %v\n", err)
			return 1
		}
	}
	if err := auth.SetPassword(file, user, pw, auth.PasswordOptions{SCRAM: *scram}); err != nil {
		fmt.Fprintf(stderr, "actormq passwd: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "actormq passwd: set the password of %q in %s (a running broker reads it on SIGHUP)\n", user, file)
	return 0
}

func readPassword(stdin *os.File, stderr io.Writer) ([]byte, error) {
	if !isTerminal(stdin) {
		line, err := bufio.NewReader(stdin).ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			return nil, errors.New("no password on standard input")
		}
		return line, nil
	}
	fmt.Fprint(stderr, "Password: ")
	a, err := readNoEcho(stdin)
	if err != nil {
		return nil, err
	}
	fmt.Fprint(stderr, "Password again: ")
	b, err := readNoEcho(stdin)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(a, b) {
		return nil, errors.New("the passwords differ")
	}
	if len(a) == 0 {
		return nil, errors.New("the password is empty")
	}
	return a, nil
}
