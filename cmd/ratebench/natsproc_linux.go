package main

import "syscall"

// childAttr puts the server in a process group of its own, so that a
// terminal's Ctrl-C (SIGINT to the bench's group) does not stop it while
// the bench still stops the services that use it; and as a backstop for a
// bench killed with SIGKILL, which cannot stop it, the kernel then asks it
// to stop (loadbench's children do the same).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
