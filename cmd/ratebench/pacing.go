package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/types/known/timestamppb"

	"pushsms.io/lib/bus"
	"pushsms.io/lib/gsm"
	"pushsms.io/lib/shortcode"
	eventsv1 "pushsms.io/proto/gen/pushsms/events/v1"
	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

// feedPacing is the backlog of the pacing path (-path pacing): for each
// short code, messages of messages[sc] 1–3-segment texts in turn, put on
// SMS_CLEARED as compliance clears them, while the short codes are paused
// (SHORT_CODES "<sc>.control", as the partner API's PauseShortCode does);
// then they are resumed together. It returns the segments per short code.
func (b *bench) feedPacing(ctx context.Context, messages map[string]int) (map[string]int64, error) {
	if err := b.setShortCodes(ctx, messages, shortcode.Paused); err != nil {
		return nil, err
	}
	var mu sync.Mutex
	segments := map[string]int64{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for sc, n := range messages {
		g.Go(func() error {
			total, err := b.publishCleared(gctx, sc, n)
			mu.Lock()
			segments[sc] = total
			mu.Unlock()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return segments, b.setShortCodes(ctx, messages, shortcode.Running)
}

// setShortCodes sets the state of every short code of codes.
func (b *bench) setShortCodes(ctx context.Context, codes map[string]int, state string) error {
	kv, err := b.bus.JS.KeyValue(ctx, bus.BucketShortCodes)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", bus.BucketShortCodes, err)
	}
	v, err := json.Marshal(shortcode.Control{State: state})
	if err != nil {
		return err
	}
	for sc := range codes {
		if _, err := kv.Put(ctx, shortcode.ControlKey(sc), v); err != nil {
			return fmt.Errorf("%s %s: %w", state, sc, err)
		}
	}
	return nil
}

// publishCleared puts n cleared customer-relationship messages of sc on
// the bus and returns their segments.
func (b *bench) publishCleared(ctx context.Context, sc string, n int) (int64, error) {
	var total int64
	for i := range n {
		text := segmentText("Acme", i%3+1, i)
		parts, _, err := gsm.Split(text, gsm.Policy{}, uint8(i))
		if err != nil {
			return total, fmt.Errorf("segment text %d: %w", i, err)
		}
		id := fmt.Sprintf("bench-%s-%08d", sc, i)
		c := &eventsv1.MessageCleared{
			Message: &eventsv1.MessageAccepted{
				MessageId: id, TenantId: "local", ShortCode: sc, Sender: sc,
				Category:     partnerv1.TrafficCategory_TRAFFIC_CATEGORY_CUSTOMER_RELATIONSHIP,
				Encoding:     partnerv1.Encoding_ENCODING_GSM7,
				SegmentCount: int32(len(parts)),
				AcceptedAt:   timestamppb.Now(),
			},
			RecipientE164: "+33" + b.recipient()[1:],
			ClearedAt:     timestamppb.Now(),
		}
		for _, p := range parts {
			c.Segments = append(c.Segments, &eventsv1.Segment{
				Index: int32(p.Index), Count: int32(p.Count), Encoding: partnerv1.Encoding_ENCODING_GSM7,
				UserData: p.UserData, Udh: p.UDH,
			})
		}
		if err := b.bus.Publish(ctx, bus.ClearedSubject("local", sc), c, id+"/cleared"); err != nil {
			return total, fmt.Errorf("publish cleared %s: %w", id, err)
		}
		total += int64(len(parts))
	}
	return total, nil
}
