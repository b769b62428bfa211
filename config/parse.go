package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Load reads the configuration at path. When no file is there it first
// writes Generate() to it (mode 0644; the directory must exist) and reports
// created = true. An existing file is never overwritten.
func Load(path string) (cfg Config, created bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		data = Generate()
		created, err = create(path, data)
		if err == nil && !created {
			// Someone else wrote it between our read and our create: theirs wins.
			data, err = os.ReadFile(path)
		}
	}
	if err != nil {
		return Config{}, false, fmt.Errorf("config: %w", err)
	}
	cfg, err = Parse(data, path)
	if err == nil && cfg.Store.DataDir != "" && !filepath.IsAbs(cfg.Store.DataDir) {
		// Beside the file, wherever the broker was started from.
		cfg.Store.DataDir = filepath.Join(filepath.Dir(path), cfg.Store.DataDir)
	}
	return cfg, created, err
}

// create writes data to a new file at path. O_EXCL makes "never overwrite"
// hold even against a concurrent writer; created is false if the file
// appeared meanwhile.
func create(path string, data []byte) (created bool, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cannot write the default configuration: %w", err)
	}
	if _, err = f.Write(data); err != nil {
		f.Close()
		os.Remove(path) // a half-written file would be read as the user's on the next start
		return false, fmt.Errorf("cannot write the default configuration to %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		os.Remove(path)
		return false, fmt.Errorf("cannot write the default configuration to %s: %w", path, err)
	}
	return true, nil
}

// Parse decodes a configuration file over Default(), so keys it leaves out
// keep their defaults, and validates the result. filename only labels
// messages. Every problem the file has is reported at once in a
// *ValidationError whose lines read "file:line: what is wrong".
//
// A file that lists [[listeners]] replaces the default listeners; listeners
// get defaults for kind, protocol, path and tls_client_auth.
func Parse(data []byte, filename string) (cfg Config, err error) {
	defer func() {
		// go-toml is not supposed to panic, but a configuration mistake must
		// never print a Go stack trace at the user.
		if r := recover(); r != nil {
			cfg, err = Config{}, &ValidationError{File: filename, Problems: []string{
				fmt.Sprintf("%s: cannot read this file (internal error: %v)", filename, r),
			}}
		}
	}()
	data = bytes.TrimPrefix(data, []byte("\uFEFF")) // editors on Windows like to add a BOM

	// The pre-check finds syntax errors, unknown keys and wrong types, all at
	// once and in plain words; go-toml stops at the first and names Go types.
	chk := check(data)
	if len(chk.problems) > 0 {
		return Config{}, chk.errorFor(filename)
	}

	cfg = Default()
	if chk.sawListeners {
		// File listeners replace the defaults, never merge into them. go-toml
		// v2.4.3 already starts the slice afresh; this keeps the documented
		// rule from depending on that.
		cfg.Listeners = nil
	}
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		// The pre-check lets through what only a decoder sees, such as a key
		// defined twice.
		return Config{}, decodeError(err, filename)
	}
	cfg.fillListenerDefaults()

	if issues := cfg.validate(); len(issues) > 0 {
		chk.problems = chk.problems[:0]
		for _, is := range issues {
			line := chk.lineOf(is.id)
			if line == 0 && is.also != "" {
				line = chk.lineOf(is.also)
			}
			chk.add(line, 0, "%s", is.text)
		}
		return Config{}, chk.errorFor(filename)
	}
	return cfg, nil
}

// at renders a position prefix: "file:line:col: ", "file:line: " or "file: ".
func at(file string, line, col int) string {
	switch {
	case line > 0 && col > 0:
		return fmt.Sprintf("%s:%d:%d: ", file, line, col)
	case line > 0:
		return fmt.Sprintf("%s:%d: ", file, line)
	default:
		return file + ": "
	}
}

// decodeError turns go-toml's errors into the same shape as the pre-check's.
func decodeError(err error, filename string) error {
	e := &ValidationError{File: filename}
	var missing *toml.StrictMissingError
	var de *toml.DecodeError
	switch {
	case errors.As(err, &missing):
		for _, m := range missing.Errors {
			line, _ := m.Position()
			e.Problems = append(e.Problems, fmt.Sprintf("%sunknown key %q", at(filename, line, 0), strings.Join(m.Key(), ".")))
		}
	case errors.As(err, &de):
		line, col := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		if k := de.Key(); len(k) > 0 && !strings.Contains(msg, k[len(k)-1]) {
			msg = fmt.Sprintf("key %q: %s", strings.Join(k, "."), msg)
		}
		e.Problems = append(e.Problems, at(filename, line, col)+msg)
	default:
		e.Problems = append(e.Problems, at(filename, 0, 0)+strings.TrimPrefix(err.Error(), "toml: "))
	}
	return e
}
