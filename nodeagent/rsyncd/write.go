package rsyncd

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write validates cfg and writes the secrets file and rsyncd.conf into
// cfg.StateDir (created 0700 when missing), each by writing a temporary
// file, syncing it and renaming it into place. The daemon re-reads
// rsyncd.conf for every connection (rsyncd.conf(5)), so modules can be
// added, changed and removed while it runs; Address and StateDir need a
// restart of the daemon. The secrets file is written first so that a new
// rsyncd.conf never names secrets that are not there yet.
func Write(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("create rsyncd state directory: %w", err)
	}
	// check_secret() (authenticate.c) wants the file owned by root when the
	// daemon runs as root and not accessible by others ("strict modes").
	if cfg.NoAuth {
		// No secrets: a file left by an earlier configuration goes.
		if err := os.Remove(cfg.SecretsFile()); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove %s: %w", cfg.SecretsFile(), err)
		}
	} else {
		secrets := cfg.user() + ":" + cfg.password() + "\n"
		if err := writeFileAtomic(cfg.SecretsFile(), []byte(secrets), 0o600); err != nil {
			return err
		}
	}
	if err := writeFileAtomic(cfg.ConfigFile(), []byte(cfg.render()), 0o644); err != nil {
		return err
	}
	return nil
}

// writeFileAtomic replaces path with data: a temporary file in the same
// directory, chmod, fsync, rename, fsync of the directory.
func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// CreateTemp makes the file 0600; Chmod sets the final mode whatever the
	// umask.
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write %s: sync directory: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("write %s: sync directory: %w", path, err)
	}
	return nil
}
