//go:build !linux

package main

import "syscall"

// childAttr puts the server in a process group of its own, so that a
// terminal's Ctrl-C does not stop it under the bench. There is no
// Pdeathsig outside Linux: a bench killed with SIGKILL leaves it running.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
