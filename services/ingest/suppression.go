package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/fault"
	"pushsms.io/lib/numplan"
	"pushsms.io/lib/optout"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

const (
	// maxNoteLen bounds an import's note: a label, kept with every entry.
	maxNoteLen = 256
	// importChunk is how many numbers one optout.AddMany writes: a batch
	// of any size is written in chunks, so memory stays bounded.
	importChunk = 1000
)

// suppressionAPI is the SuppressionService: partners' own opt-out lists
// and the status of a number. Opt-outs live in the OPTOUTS bucket
// (lib/optout), which every compliance replica watches: an import is
// honoured within a second, with no event of its own.
type suppressionAPI struct {
	partnerv1.UnimplementedSuppressionServiceServer
	s *Service
}

// ImportSuppressions takes the spec, then batches of numbers. Each number
// that parses as a French mobile (or M2M) number is recorded for the
// spec's brand, or for every message of the partner when the spec has no
// brand; the others are counted refused, the first 100 with their 0-based
// position in the stream. Recording is idempotent: on an error the
// partner sends the whole list again.
func (a *suppressionAPI) ImportSuppressions(stream partnerv1.SuppressionService_ImportSuppressionsServer) error {
	s := a.s
	ctx := stream.Context()
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return err
	}
	spec, err := firstSpec[*partnerv1.ImportSuppressionsRequest, partnerv1.ImportSuppressionsSpec](stream.Recv, "import")
	if err != nil {
		return err
	}
	entry, err := importEntry(tenant, spec, s.now().UTC())
	if err != nil {
		return err
	}
	imp := &suppressionImport{store: s.optouts, entry: entry}
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		batch := req.GetBatch()
		if batch == nil {
			return fault.Invalidf("spec", "only the first item of the stream may be a spec")
		}
		if err := imp.add(ctx, batch.GetMsisdns()); err != nil {
			s.Log.WarnContext(ctx, "suppression import interrupted", "tenant", tenant, "imported", imp.resp.Imported, "err", err)
			return err
		}
	}
	s.Log.InfoContext(ctx, "suppressions imported", "tenant", tenant, "scope", entry.Scope,
		"imported", imp.resp.Imported, "refused", imp.resp.Refused)
	return stream.SendAndClose(&imp.resp)
}

// importEntry is the entry every number of an import gets.
func importEntry(tenant string, spec *partnerv1.ImportSuppressionsSpec, now time.Time) (optout.Entry, error) {
	brand := strings.TrimSpace(spec.GetBrand())
	var errs []error
	if len(brand) > maxBrandLen {
		errs = append(errs, fault.Invalidf("spec.brand", "longer than %d bytes", maxBrandLen))
	}
	if len(spec.GetNote()) > maxNoteLen {
		errs = append(errs, fault.Invalidf("spec.note", "longer than %d bytes", maxNoteLen))
	}
	if err := fault.Join(errs...); err != nil {
		return optout.Entry{}, err
	}
	e := optout.Entry{Scope: optout.ScopePartner, Tenant: tenant, Source: optout.SourcePartnerImport, At: now, Note: spec.GetNote()}
	if brand != "" {
		e.Scope, e.Brand = optout.ScopeBrand, brand
	}
	return e, nil
}

// suppressionImport is one ImportSuppressions in progress.
type suppressionImport struct {
	store *optout.Store
	entry optout.Entry
	// position is the 0-based index of the next number in the stream.
	position int64
	resp     partnerv1.ImportSuppressionsResponse
}

func (imp *suppressionImport) add(ctx context.Context, msisdns []string) error {
	for len(msisdns) > 0 {
		n := min(len(msisdns), importChunk)
		items := make([]optout.Item, 0, n)
		for _, raw := range msisdns[:n] {
			pos := imp.position
			imp.position++
			num, reason := suppressible(raw)
			if reason != partnerv1.Reason_REASON_UNSPECIFIED {
				imp.resp.Refused++
				if len(imp.resp.Errors) < maxRecipientErrors {
					imp.resp.Errors = append(imp.resp.Errors, &partnerv1.RecipientError{Position: pos, Reason: reason, Detail: reasonDetail(reason)})
				}
				continue
			}
			items = append(items, optout.Item{Number: num, Entry: imp.entry})
		}
		if len(items) > 0 {
			if _, err := imp.store.AddMany(ctx, items); err != nil {
				return fmt.Errorf("import suppressions: %w", err)
			}
		}
		// Already suppressed in this scope counts as imported: the number
		// is suppressed, which is what the partner asked.
		imp.resp.Imported += int64(len(items))
		msisdns = msisdns[n:]
	}
	return nil
}

// suppressible parses a number of an import: a French mobile, or an M2M
// number (a machine's owner may opt out too).
func suppressible(raw string) (numplan.Number, partnerv1.Reason) {
	n, err := numplan.Parse(raw)
	if err == nil {
		err = n.CheckMobile(true)
	}
	switch {
	case err == nil:
		return n, partnerv1.Reason_REASON_UNSPECIFIED
	case errors.Is(err, numplan.ErrNotMobile):
		return n, partnerv1.Reason_REASON_NOT_MOBILE
	case errors.Is(err, numplan.ErrNotFrench):
		return n, partnerv1.Reason_REASON_NOT_FRENCH
	case errors.Is(err, numplan.ErrOverseas):
		return n, partnerv1.Reason_REASON_OVERSEAS
	case errors.Is(err, numplan.ErrRoutingPrefix):
		return n, partnerv1.Reason_REASON_ROUTING_PREFIX
	}
	return n, partnerv1.Reason_REASON_INVALID_NUMBER
}

// reasonDetail says a refusal in words, without the number.
func reasonDetail(r partnerv1.Reason) string {
	switch r {
	case partnerv1.Reason_REASON_NOT_MOBILE:
		return "not a mobile number"
	case partnerv1.Reason_REASON_NOT_FRENCH:
		return "not a French number"
	case partnerv1.Reason_REASON_OVERSEAS:
		return "an overseas number"
	case partnerv1.Reason_REASON_ROUTING_PREFIX:
		return "a portability routing prefix"
	}
	return "not a phone number"
}

// GetRecipientStatus lists the number's opt-outs the partner may see —
// subscribers' STOPs, and its own imports, never another partner's — and
// tells whether a message of the brand (from the short code) would be
// refused as opted out. blocked considers every opt-out, also one another
// partner imported for the same brand (an issuer's opt-out binds whoever
// sends for it): it then says true with no suppression listed, since the
// proof is that partner's.
func (a *suppressionAPI) GetRecipientStatus(ctx context.Context, req *partnerv1.GetRecipientStatusRequest) (*partnerv1.GetRecipientStatusResponse, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return nil, err
	}
	var errs []error
	n, perr := numplan.Parse(req.GetMsisdn())
	if perr != nil {
		errs = append(errs, fault.Invalidf("msisdn", "not a phone number"))
	}
	brand := strings.TrimSpace(req.GetBrand())
	if len(brand) > maxBrandLen {
		errs = append(errs, fault.Invalidf("brand", "longer than %d bytes", maxBrandLen))
	}
	sc := req.GetShortCode()
	if sc != "" && !shortCodePattern.MatchString(sc) {
		errs = append(errs, fault.Invalidf("short_code", "must be 5 digits"))
	}
	if err := fault.Join(errs...); err != nil {
		return nil, err
	}
	entries, err := a.s.optouts.List(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("recipient status: %w", err)
	}
	resp := &partnerv1.GetRecipientStatusResponse{RecipientMasked: n.Masked()}
	for _, e := range entries {
		if e.Blocks(tenant, brand, sc) {
			resp.Blocked = true
		}
		if visible(e, tenant) {
			resp.Suppressions = append(resp.Suppressions, suppressionProto(e))
		}
	}
	return resp, nil
}

// visible tells whether tenant may see e: a subscriber's STOP is a fact
// every sender must know; an import is its partner's own business.
func visible(e optout.Entry, tenant string) bool {
	switch e.Source {
	case optout.SourceMOStop:
		return true
	case optout.SourcePartnerImport:
		return e.Tenant == tenant
	}
	return false
}

func suppressionProto(e optout.Entry) *partnerv1.Suppression {
	out := &partnerv1.Suppression{
		Brand:     e.Brand,
		ShortCode: e.ShortCode,
		At:        timestamppb.New(e.At),
		MoId:      e.MOID,
		Text:      e.Text,
		Note:      e.Note,
	}
	switch e.Scope {
	case optout.ScopeBrand:
		out.Scope = partnerv1.SuppressionScope_SUPPRESSION_SCOPE_BRAND
	case optout.ScopeShortCode:
		out.Scope = partnerv1.SuppressionScope_SUPPRESSION_SCOPE_SHORT_CODE
	case optout.ScopePartner:
		out.Scope = partnerv1.SuppressionScope_SUPPRESSION_SCOPE_PARTNER
	}
	switch e.Source {
	case optout.SourceMOStop:
		out.Source = partnerv1.SuppressionSource_SUPPRESSION_SOURCE_MO_STOP
	case optout.SourcePartnerImport:
		out.Source = partnerv1.SuppressionSource_SUPPRESSION_SOURCE_PARTNER_IMPORT
	}
	return out
}
