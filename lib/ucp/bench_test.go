package ucp_test

import (
	"testing"

	"pushsms.io/lib/ucp"
)

// BenchmarkSubmitEncodeDecode encodes an op 51 into a reused buffer and
// decodes it into a reused Submit, the way a session's hot path does.
func BenchmarkSubmitEncodeDecode(b *testing.B) {
	s := &ucp.Submit{AdC: "0033612345678", OAdC: "PushSMS", OTOA: ucp.OTOAAlphanumeric, NRq: true, NT: ucp.NotifyDelivered | ucp.NotifyNotDelivered}
	s.SetText("Votre code de confirmation est 482913. Il expire dans 10 minutes.")
	buf := make([]byte, 0, 512)
	var got ucp.Submit
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = ucp.AppendFrame(buf[:0], 42, s)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ucp.DecodeInto(buf, &got); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkSubmitEncodeDecodeNumeric is the same with a short-code sender:
// no alphanumeric OAdC string to build on decode.
func BenchmarkSubmitEncodeDecodeNumeric(b *testing.B) {
	s := &ucp.Submit{AdC: "0033612345678", OAdC: "36000", NRq: true, NT: ucp.NotifyDelivered | ucp.NotifyNotDelivered}
	s.SetText("Votre code de confirmation est 482913. Il expire dans 10 minutes.")
	buf := make([]byte, 0, 512)
	var got ucp.Submit
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = ucp.AppendFrame(buf[:0], 42, s)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ucp.DecodeInto(buf, &got); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSubmitEncode(b *testing.B) {
	s := &ucp.Submit{AdC: "0033612345678", OAdC: "36000", NRq: true}
	s.SetText("Votre code de confirmation est 482913. Il expire dans 10 minutes.")
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = ucp.AppendFrame(buf[:0], 42, s)
	}
}

func BenchmarkResultDecode(b *testing.B) {
	frame := wire("00/00039/R/51/A//012234:090996101010/68")
	var r ucp.Result
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ucp.DecodeInto(frame, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReader(b *testing.B) {
	one := wire(c19Frame)
	stream := make([]byte, 0, 100*len(one))
	for range 100 {
		stream = append(stream, one...)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		r := ucp.NewReader(&chunkReader{chunks: [][]byte{stream}}, 0)
		for {
			if _, err := r.ReadFrame(); err != nil {
				break
			}
		}
	}
}
