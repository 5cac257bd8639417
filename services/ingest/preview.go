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
// normalize_typography it counts the way SendMessage does (gsm.French);
// with append_stop_mention, it counts the text with the short code's STOP
// mention appended, as SendMessage sends it.
func (a *api) PreviewText(ctx context.Context, req *partnerv1.PreviewTextRequest) (*partnerv1.PreviewTextResponse, error) {
	var errs []error
	if len(req.GetText()) > maxPreviewBytes {
		errs = append(errs, fault.Invalidf("text", "longer than %d bytes", maxPreviewBytes))
	}
	if req.GetAppendStopMention() && !shortCodePattern.MatchString(req.GetShortCode()) {
		errs = append(errs, fault.Invalidf("short_code", "must be 5 digits: the STOP mention names it"))
	}
	if err := fault.Join(errs...); err != nil {
		return nil, err
	}
	text := withStopMention(req.GetText(), req.GetShortCode(), req.GetAppendStopMention())
	return preview(text, req.GetNormalizeTypography()), nil
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
