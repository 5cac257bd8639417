package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/fault"
	"pushsms.io/lib/rate"
	"pushsms.io/lib/shortcode"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// PauseCampaign holds the campaign's unsent messages: throttle stops
// releasing them within a second (CAMPAIGNS bucket) and keeps them until
// ResumeCampaign; their validity still runs. Pausing a paused, cancelled
// or completed campaign changes nothing.
func (a *api) PauseCampaign(ctx context.Context, req *partnerv1.PauseCampaignRequest) (*partnerv1.PauseCampaignResponse, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return nil, err
	}
	c, err := a.s.setCampaignControl(ctx, tenant, req.GetCampaignId(), campaignPaused)
	if err != nil {
		return nil, err
	}
	a.s.Log.InfoContext(ctx, "campaign paused", "campaign_id", c.GetCampaignId(), "tenant", tenant)
	return &partnerv1.PauseCampaignResponse{Campaign: c}, nil
}

// ResumeCampaign releases a paused campaign's messages again. Resuming a
// campaign that is not paused changes nothing.
func (a *api) ResumeCampaign(ctx context.Context, req *partnerv1.ResumeCampaignRequest) (*partnerv1.ResumeCampaignResponse, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return nil, err
	}
	c, err := a.s.setCampaignControl(ctx, tenant, req.GetCampaignId(), campaignRunning)
	if err != nil {
		return nil, err
	}
	a.s.Log.InfoContext(ctx, "campaign resumed", "campaign_id", c.GetCampaignId(), "tenant", tenant)
	return &partnerv1.ResumeCampaignResponse{Campaign: c}, nil
}

// setCampaignControl pauses (to = campaignPaused) or resumes (to =
// campaignRunning) a campaign, bucket first as cancelCampaign does: a state
// the database records must reach throttle.
func (s *Service) setCampaignControl(ctx context.Context, tenant, id, to string) (*partnerv1.Campaign, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, fault.Invalidf("campaign_id", "not a campaign id")
	}
	paused := enumText(partnerv1.CampaignState_CAMPAIGN_STATE_PAUSED)
	err := pgx.BeginFunc(ctx, s.Pool, func(tx pgx.Tx) error {
		c, err := scanCampaign(tx.QueryRow(ctx, `SELECT `+campaignColumns+` FROM ingest.campaigns WHERE id = $1 AND tenant_id = $2 FOR UPDATE`, id, tenant))
		if errors.Is(err, pgx.ErrNoRows) {
			return errNoCampaign(id)
		}
		if err != nil {
			return dbErr("get campaign", err)
		}
		counts, err := campaignCounts(ctx, tx, id, s.now())
		if err != nil {
			return dbErr("count campaign messages", err)
		}
		st := c.state(counts, s.now())
		var next string
		switch {
		case st == partnerv1.CampaignState_CAMPAIGN_STATE_CANCELLED, st == partnerv1.CampaignState_CAMPAIGN_STATE_COMPLETED:
			return nil
		case to == campaignPaused && st != partnerv1.CampaignState_CAMPAIGN_STATE_PAUSED:
			next = paused
		case to == campaignRunning && st == partnerv1.CampaignState_CAMPAIGN_STATE_PAUSED:
			// Running is refined when read (scheduled, completed).
			next = enumText(partnerv1.CampaignState_CAMPAIGN_STATE_RUNNING)
		default:
			return nil
		}
		if _, err := s.campaigns.Put(ctx, id, []byte(to)); err != nil {
			return fmt.Errorf("campaign %s: control state: %w", id, errors.Join(err, fault.ErrUnavailable))
		}
		// A campaign paused while its recipients are still uploading stays
		// paused: the end of the upload only moves "receiving" on.
		_, err = tx.Exec(ctx, `UPDATE ingest.campaigns SET state = $2, updated_at = $3 WHERE id = $1`, id, next, s.now())
		return dbErr("set campaign state", err)
	})
	if err != nil {
		return nil, err
	}
	return s.getCampaign(ctx, tenant, id)
}

// PauseShortCode stops every release of one of the partner's short codes
// within a second; held messages keep their place and validity.
func (a *api) PauseShortCode(ctx context.Context, req *partnerv1.PauseShortCodeRequest) (*partnerv1.PauseShortCodeResponse, error) {
	sc, err := a.s.updateShortCode(ctx, req.GetShortCode(), func(c *shortcode.Control) { c.State = shortcode.Paused })
	if err != nil {
		return nil, err
	}
	return &partnerv1.PauseShortCodeResponse{ShortCode: sc}, nil
}

// ResumeShortCode lets a paused short code release again.
func (a *api) ResumeShortCode(ctx context.Context, req *partnerv1.ResumeShortCodeRequest) (*partnerv1.ResumeShortCodeResponse, error) {
	sc, err := a.s.updateShortCode(ctx, req.GetShortCode(), func(c *shortcode.Control) { c.State = shortcode.Running })
	if err != nil {
		return nil, err
	}
	return &partnerv1.ResumeShortCodeResponse{ShortCode: sc}, nil
}

// CancelShortCode cancels every message of the short code accepted until
// now and not yet submitted (each reported cancelled); later messages go
// as usual.
func (a *api) CancelShortCode(ctx context.Context, req *partnerv1.CancelShortCodeRequest) (*partnerv1.CancelShortCodeResponse, error) {
	now := a.s.now()
	sc, err := a.s.updateShortCode(ctx, req.GetShortCode(), func(c *shortcode.Control) { c.CancelledBefore = now.UTC() })
	if err != nil {
		return nil, err
	}
	a.s.cancelScheduled(ctx, bus.ReleaseFilter(req.GetShortCode(), ""), now, bus.ShortCodeCancelled)
	return &partnerv1.CancelShortCodeResponse{ShortCode: sc}, nil
}

// GetShortCode tells the short code's state and its contracted and
// achieved rates.
func (a *api) GetShortCode(ctx context.Context, req *partnerv1.GetShortCodeRequest) (*partnerv1.GetShortCodeResponse, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return nil, err
	}
	if err := a.s.ownShortCode(ctx, tenant, req.GetShortCode()); err != nil {
		return nil, err
	}
	kv, err := a.s.shortCodesKV(ctx)
	if err != nil {
		return nil, err
	}
	ctl, _, err := readControl(ctx, kv, req.GetShortCode())
	if err != nil {
		return nil, err
	}
	sc, err := a.s.shortCodeView(ctx, kv, req.GetShortCode(), ctl)
	if err != nil {
		return nil, err
	}
	return &partnerv1.GetShortCodeResponse{ShortCode: sc}, nil
}

func (s *Service) ownShortCode(ctx context.Context, tenant, sc string) error {
	if !shortCodePattern.MatchString(sc) {
		return fault.Invalidf("short_code", "not a 5-digit short code")
	}
	// checkShortCode says "not yours" the same way for a short code that
	// does not exist: another partner's short codes are not revealed.
	return checkShortCode(ctx, s.Pool, tenant, sc)
}

func (s *Service) shortCodesKV(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := s.Bus.JS.KeyValue(ctx, bus.BucketShortCodes)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", bus.BucketShortCodes, errors.Join(err, fault.ErrUnavailable))
	}
	return kv, nil
}

// readControl returns the control of sc and its revision (0: no key).
func readControl(ctx context.Context, kv jetstream.KeyValue, sc string) (shortcode.Control, uint64, error) {
	e, err := kv.Get(ctx, shortcode.ControlKey(sc))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return shortcode.Control{State: shortcode.Running}, 0, nil
	}
	if err != nil {
		return shortcode.Control{}, 0, fmt.Errorf("short code %s: control: %w", sc, errors.Join(err, fault.ErrUnavailable))
	}
	// What throttle cannot read holds the short code: ParseControl says
	// paused, and so does the partner's view.
	ctl, _ := shortcode.ParseControl(e.Value())
	return ctl, e.Revision(), nil
}

// maxControlRetries bounds the compare-and-set loop of updateShortCode:
// two calls on one short code at the same time are rare.
const maxControlRetries = 5

// updateShortCode applies change to the short code's control in the
// bucket, compare-and-set, so that a pause and a cancel at the same time
// both hold. Throttle sees it within a second.
func (s *Service) updateShortCode(ctx context.Context, sc string, change func(*shortcode.Control)) (*partnerv1.ShortCode, error) {
	tenant, err := tenantFrom(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.ownShortCode(ctx, tenant, sc); err != nil {
		return nil, err
	}
	kv, err := s.shortCodesKV(ctx)
	if err != nil {
		return nil, err
	}
	for range maxControlRetries {
		ctl, rev, err := readControl(ctx, kv, sc)
		if err != nil {
			return nil, err
		}
		change(&ctl)
		v, err := json.Marshal(ctl)
		if err != nil {
			return nil, fmt.Errorf("short code %s: control: %w", sc, err)
		}
		if rev == 0 {
			_, err = kv.Create(ctx, shortcode.ControlKey(sc), v)
		} else {
			_, err = kv.Update(ctx, shortcode.ControlKey(sc), v, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || isWrongLastSequence(err) {
			continue // someone changed it meanwhile: read again
		}
		if err != nil {
			return nil, fmt.Errorf("short code %s: control: %w", sc, errors.Join(err, fault.ErrUnavailable))
		}
		s.Log.InfoContext(ctx, "short code control", "short_code", sc, "tenant", tenant, "state", ctl.State,
			"cancelled_before", ctl.CancelledBefore)
		return s.shortCodeView(ctx, kv, sc, ctl)
	}
	return nil, fmt.Errorf("short code %s: control changed concurrently: %w", sc, fault.ErrUnavailable)
}

func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// shortCodeView builds the partner's view of sc: its state, the contracted
// rate (the bucket's "<sc>.rate", else the offer's default) and the rate
// smsc-link achieved lately.
func (s *Service) shortCodeView(ctx context.Context, kv jetstream.KeyValue, sc string, ctl shortcode.Control) (*partnerv1.ShortCode, error) {
	out := &partnerv1.ShortCode{
		ShortCode:      sc,
		State:          partnerv1.ShortCodeState_SHORT_CODE_STATE_RUNNING,
		ContractedRate: rate.DefaultRate,
	}
	if ctl.State == shortcode.Paused {
		out.State = partnerv1.ShortCodeState_SHORT_CODE_STATE_PAUSED
	}
	if !ctl.CancelledBefore.IsZero() {
		out.CancelledBefore = timestamppb.New(ctl.CancelledBefore)
	}
	r, known, err := contractedRate(ctx, kv, sc)
	if err != nil {
		return nil, err
	}
	if known {
		out.ContractedRate = int32(r)
	}
	link, err := s.Bus.JS.KeyValue(ctx, bus.BucketLinkState)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", bus.BucketLinkState, errors.Join(err, fault.ErrUnavailable))
	}
	e, err := link.Get(ctx, sc)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
	case err != nil:
		return nil, fmt.Errorf("short code %s: link state: %w", sc, errors.Join(err, fault.ErrUnavailable))
	default:
		if ls, err := shortcode.ParseLinkState(e.Value()); err == nil {
			out.AchievedRate = ls.Achieved
		}
	}
	return out, nil
}
