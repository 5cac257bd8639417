package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
)

// upload is a file being streamed to the API, read through a progress bar
// on c.err unless quiet.
type upload struct {
	io.Reader
	f   *os.File
	bar *progressbar.ProgressBar
}

// openUpload opens path for a streaming command (campaign submit, suppress
// import, ported import); what describes the bar ("uploading").
func (c *cli) openUpload(path, what string, quiet bool) (*upload, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	u := &upload{Reader: f, f: f}
	if quiet {
		return u, nil
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	u.bar = progressbar.NewOptions64(info.Size(),
		progressbar.OptionSetDescription(what),
		progressbar.OptionSetWriter(c.err),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionThrottle(65*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(c.err) }),
		progressbar.OptionFullWidth(),
		progressbar.OptionSetRenderBlankState(true),
	)
	r := progressbar.NewReader(f, u.bar)
	u.Reader = &r
	return u, nil
}

// finish completes the bar once everything is read.
func (u *upload) finish() {
	if u.bar != nil {
		_ = u.bar.Finish()
	}
}

func (u *upload) Close() error { return u.f.Close() }
