package ingest

import (
	"context"

	"pushsms.io/lib/fault"
	"pushsms.io/lib/gsm"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// maxPreviewBytes bounds the text analysed by PreviewText: up to the
// 255 parts a concatenated message can have, so that a partner sees the
// real count of a text SendMessage would refuse.
const maxPreviewBytes = gsm.MaxParts * gsm.MaxSeptets * 4

// PreviewText tells how a text would be encoded and split. With
// normalize_typography it counts the way SendMessage does (gsm.French).
func (a *api) PreviewText(ctx context.Context, req *partnerv1.PreviewTextRequest) (*partnerv1.PreviewTextResponse, error) {
	if len(req.GetText()) > maxPreviewBytes {
		return nil, fault.Invalidf("text", "longer than %d bytes", maxPreviewBytes)
	}
	return preview(req.GetText(), req.GetNormalizeTypography()), nil
}

func preview(text string, normalize bool) *partnerv1.PreviewTextResponse {
	p := gsm.Policy{}
	if normalize {
		p = textPolicy
	}
	an := gsm.Analyze(text, p)
	resp := &partnerv1.PreviewTextResponse{
		Encoding:     partnerv1.Encoding(an.Encoding),
		SegmentCount: int32(an.Segments),
		Length:       int32(an.Length),
		Text:         an.Text,
	}
	for _, r := range an.UCS2Chars {
		resp.Ucs2Characters = append(resp.Ucs2Characters, string(r))
	}
	return resp
}
