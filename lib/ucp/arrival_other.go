//go:build !linux

package ucp

import "net"

// kernelStamps: receive stamps are read on Linux only.
type kernelStamps struct{}

func kernelStampsOf(net.Conn) *kernelStamps { return nil }

func (*kernelStamps) read([]byte) (int, int64, error) { panic("ucp: no kernel stamps here") }
