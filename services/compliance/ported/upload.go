package ported

import (
	"context"
	"errors"
	"fmt"
	"io"

	adminv1 "pushsms.io/proto/gen/pushsms/admin/v1"
)

// LineError is a refused line of an uploaded file.
type LineError struct {
	Line   int
	Detail string
}

// UploadResult is the outcome of Upload: the service's answer, plus the
// lines refused before sending (malformed) and every refusal by line.
type UploadResult struct {
	*adminv1.ImportPortedNumbersResponse
	// Malformed counts the lines refused by the reader; Refused in the
	// response counts those refused by the service.
	Malformed int64
	// Errors are the first refusals of both, by line, in file order.
	Errors []LineError
	// Lines is the number of data lines read.
	Lines int64
}

// Upload streams a portability file (see ParseLine for its format) to the
// service as one import of mode, in batches of batchSize entries. A
// malformed line is counted and skipped, as the service skips an invalid
// entry. The import happens only if the whole file went through: an error
// of r or of the stream leaves the table as it was.
func Upload(ctx context.Context, client adminv1.PortedNumbersServiceClient, r io.Reader, mode adminv1.ImportMode, source string, batchSize int) (*UploadResult, error) {
	if batchSize <= 0 || batchSize > MaxBatch {
		return nil, fmt.Errorf("ported: upload: batch size %d: want 1 to %d", batchSize, MaxBatch)
	}
	ctx, cancel := context.WithCancel(ctx)
	// Cancelling the call is what makes the service roll back when the
	// file cannot be read to its end.
	defer cancel()
	stream, err := client.ImportPortedNumbers(ctx)
	if err != nil {
		return nil, err
	}
	send := func(req *adminv1.ImportPortedNumbersRequest) error {
		if err := stream.Send(req); err != nil {
			if errors.Is(err, io.EOF) {
				// The service ended the call; its status says why.
				_, err = stream.CloseAndRecv()
			}
			return err
		}
		return nil
	}
	if err := send(&adminv1.ImportPortedNumbersRequest{Item: &adminv1.ImportPortedNumbersRequest_Spec{
		Spec: &adminv1.ImportPortedNumbersSpec{Mode: mode, Source: source}}}); err != nil {
		return nil, err
	}
	res := &UploadResult{}
	// lines maps the position of each entry sent to its line, for the
	// service's refusals: 4 bytes an entry.
	var lines []int32
	batch := &adminv1.PortedNumberBatch{}
	flush := func() error {
		if len(batch.Entries) == 0 {
			return nil
		}
		err := send(&adminv1.ImportPortedNumbersRequest{Item: &adminv1.ImportPortedNumbersRequest_Batch{Batch: batch}})
		batch = &adminv1.PortedNumberBatch{Entries: make([]*adminv1.PortedNumber, 0, batchSize)}
		return err
	}
	var local []LineError
	rd := NewReader(r)
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, ErrLine) {
			res.Lines++
			res.Malformed++
			if len(local) < maxErrors {
				local = append(local, LineError{Line: rec.Line, Detail: err.Error()})
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("ported: upload: %w", err)
		}
		res.Lines++
		lines = append(lines, int32(rec.Line))
		batch.Entries = append(batch.Entries, &adminv1.PortedNumber{Msisdn: rec.MSISDN, Operator: rec.Operator})
		if len(batch.Entries) == batchSize {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return nil, err
	}
	res.ImportPortedNumbersResponse = resp
	remote := make([]LineError, 0, len(resp.GetErrors()))
	for _, e := range resp.GetErrors() {
		line := 0
		if p := e.GetPosition(); p >= 0 && p < int64(len(lines)) {
			line = int(lines[p])
		}
		remote = append(remote, LineError{Line: line, Detail: e.GetDetail()})
	}
	res.Errors = mergeByLine(local, remote, maxErrors)
	return res, nil
}

// mergeByLine merges two lists sorted by line, keeping the first n.
func mergeByLine(a, b []LineError, n int) []LineError {
	out := make([]LineError, 0, min(n, len(a)+len(b)))
	for len(out) < n && (len(a) > 0 || len(b) > 0) {
		if len(b) == 0 || (len(a) > 0 && a[0].Line <= b[0].Line) {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return out
}
