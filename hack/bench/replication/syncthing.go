//go:build linux

package main

import "errors"

// syncthing is not set up yet.
func syncthing() (*rig, error) {
	return nil, errors.New("not set up yet")
}
