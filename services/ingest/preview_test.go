package ingest_test

import (
	"slices"
	"strings"
	"testing"

	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

func TestPreviewText(t *testing.T) {
	e := start(t)
	tests := []struct {
		name      string
		text      string
		normalize bool
		encoding  partnerv1.Encoding
		segments  int32
		length    int32
		ucs2      []string
		sent      string
	}{
		{"gsm7", "Votre code est 482913", false, partnerv1.Encoding_ENCODING_GSM7, 1, 21, nil, "Votre code est 482913"},
		{"escape counts twice", "Prix: 10€", false, partnerv1.Encoding_ENCODING_GSM7, 1, 10, nil, "Prix: 10€"},
		{"curly quote forces ucs2", "L’été", false, partnerv1.Encoding_ENCODING_UCS2, 1, 5, []string{"’"}, "L’été"},
		{"normalised", "L’été…", true, partnerv1.Encoding_ENCODING_GSM7, 1, 8, nil, "L'été..."},
		{"ucs2 anyway", "Bientôt ✨", true, partnerv1.Encoding_ENCODING_UCS2, 1, 9, []string{"ô", "✨"}, "Bientôt ✨"},
		{"three parts", strings.Repeat("a", 307), false, partnerv1.Encoding_ENCODING_GSM7, 3, 307, nil, strings.Repeat("a", 307)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := e.client.PreviewText(as(e.keyA), &partnerv1.PreviewTextRequest{Text: tt.text, NormalizeTypography: tt.normalize})
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetEncoding() != tt.encoding || resp.GetSegmentCount() != tt.segments || resp.GetLength() != tt.length ||
				!slices.Equal(resp.GetUcs2Characters(), tt.ucs2) || resp.GetText() != tt.sent {
				t.Errorf("got %v, want %v %d segments length %d ucs2 %q text %q", resp, tt.encoding, tt.segments, tt.length, tt.ucs2, tt.sent)
			}
		})
	}
}
