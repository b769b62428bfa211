package supervisor

import (
	"errors"

	"go.uber.org/zap"
)

// Reload reads the files the configuration names again: every TLS listener's certificate, key
// and client CAs, the password file and the ACL file. New connections and new checks use them;
// open connections stay. A file that fails keeps its old version in use, and the error names
// it; the other files are still reloaded.
func (b *Broker) Reload() error {
	var errs []error
	for _, l := range b.listeners.all() {
		if err := l.ReloadTLS(); err != nil {
			errs = append(errs, err)
		}
	}
	if a := b.env.Auth; a != nil {
		if err := a.Reload(); err != nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		b.log.Warn("reload: some files were not reloaded; their previous versions stay in use", zap.Error(err))
	} else {
		b.log.Info("reloaded certificates, password file and ACL file")
	}
	return err
}
