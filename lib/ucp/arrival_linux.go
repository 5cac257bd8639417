package ucp

import (
	"io"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kernelStamps reads a socket with recvmsg, the kernel giving the receive
// time of the last segment each read took (SO_TIMESTAMPNS, TCP since Linux
// 4.13). That bounds every byte of the read: segments merged in the
// receive queue keep the later stamp, and a read reports the latest of the
// segments it consumed. The kernel turns stamping on for the host when the
// first socket asks, from a work queue: the first segments after that may
// come unstamped, and their reads count from their return.
type kernelStamps struct {
	rc   syscall.RawConn
	oob  []byte
	addr net.Addr // for errors, as the net package writes them
}

// stampedRead turns receive stamps on for conn and returns its stamped
// read; nil if it is not a socket or they cannot be.
func stampedRead(conn net.Conn) func([]byte) (int, int64, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return nil
	}
	k := &kernelStamps{rc: rc, oob: make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))*2), addr: conn.RemoteAddr()}
	return k.read
}

// read reads into p through the runtime's poller (deadlines and Close
// apply) and returns the receive stamp, 0 if the kernel gave none.
func (k *kernelStamps) read(p []byte) (int, int64, error) {
	if len(p) == 0 {
		return 0, 0, nil
	}
	var (
		n, oobn int
		rerr    error
	)
	err := k.rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), p, k.oob, 0)
		return rerr != unix.EAGAIN && rerr != unix.EINTR
	})
	switch {
	case err != nil:
		return 0, 0, err
	case rerr != nil:
		err := &net.OpError{Op: "read", Addr: k.addr, Err: rerr}
		if k.addr != nil {
			err.Net = k.addr.Network()
		}
		return 0, 0, err
	case n == 0:
		return 0, 0, io.EOF
	}
	return n, stampOf(k.oob[:oobn]), nil
}

// stampOf finds the SCM_TIMESTAMPNS message in oob.
func stampOf(oob []byte) int64 {
	for len(oob) > 0 {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return 0
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && len(data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			return (*unix.Timespec)(unsafe.Pointer(&data[0])).Nano()
		}
		oob = rest
	}
	return 0
}
