package ucp

import (
	"bytes"
	"io"
)

// DefaultMaxFrame bounds a frame (STX … ETX). The largest legal 5x frame
// (1280 hex chars of AMsg, 400 of XSer, 31 short fields) is about 2.3 KB.
const DefaultMaxFrame = 8192

// Reader cuts a byte stream into frames. It survives frames split across
// reads and several frames per read, and skips bytes outside STX … ETX. A
// frame longer than the limit is dropped with ErrFrameTooLong and reading
// may go on; the next STX starts a new frame.
type Reader struct {
	rd    io.Reader
	buf   []byte
	r, w  int
	max   int
	err   error
	empty int
}

// NewReader returns a Reader on rd. maxFrame <= 0 means DefaultMaxFrame.
func NewReader(rd io.Reader, maxFrame int) *Reader {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	if maxFrame < headerLen+4 {
		maxFrame = headerLen + 4
	}
	return &Reader{rd: rd, buf: make([]byte, 2*maxFrame), max: maxFrame}
}

// ReadFrame returns the next frame, STX and ETX included. The slice is only
// valid until the next call. Framing is checked here, content is not: pass
// the frame to Decode. Errors other than ErrFrameTooLong come from the
// underlying reader and are sticky; io.EOF in the middle of a frame becomes
// io.ErrUnexpectedEOF.
func (r *Reader) ReadFrame() ([]byte, error) {
	for {
		// Drop anything before the first STX.
		if i := bytes.IndexByte(r.buf[r.r:r.w], STX); i < 0 {
			r.r, r.w = 0, 0
		} else {
			r.r += i
			// A later STX before ETX means the frame in progress was
			// truncated: restart from the last such STX.
			pending := r.buf[r.r+1 : r.w]
			e := bytes.IndexByte(pending, ETX)
			head := pending
			if e >= 0 {
				head = pending[:e]
			}
			if s := bytes.LastIndexByte(head, STX); s >= 0 {
				r.r += 1 + s
				if e >= 0 {
					e -= 1 + s
				}
			}
			if e >= 0 {
				if e+2 > r.max {
					r.r += e + 2
					return nil, ErrFrameTooLong
				}
				frame := r.buf[r.r : r.r+e+2]
				r.r += e + 2
				return frame, nil
			}
			if r.w-r.r > r.max {
				// No ETX within the limit: discard what we have. The tail
				// of this frame has no STX and will be skipped as junk.
				r.r, r.w = 0, 0
				return nil, ErrFrameTooLong
			}
		}
		if r.err != nil {
			err := r.err
			if err == io.EOF && r.w > r.r {
				err = io.ErrUnexpectedEOF
			}
			r.r, r.w = 0, 0
			return nil, err
		}
		// Make room, then read more.
		if r.r > 0 {
			r.w = copy(r.buf, r.buf[r.r:r.w])
			r.r = 0
		}
		n, err := r.rd.Read(r.buf[r.w:])
		if n < 0 || n > len(r.buf)-r.w {
			n, err = 0, io.ErrShortBuffer
		}
		r.w += n
		switch {
		case err != nil:
			r.err = err
		case n == 0:
			// Same rule as bufio: give up on a reader that keeps
			// returning nothing.
			r.empty++
			if r.empty >= 100 {
				r.err = io.ErrNoProgress
			}
		default:
			r.empty = 0
		}
	}
}
