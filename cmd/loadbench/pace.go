package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// drive calls fn for 0..n-1 with at most parallel calls in flight: at
// perSecond calls a second from the start (an offered load, the same for
// both systems), or as fast as they complete when perSecond is 0. A call
// that cannot start on time (every slot busy) starts late: the offered
// load was more than the system took, which the latencies then show.
func drive(ctx context.Context, n int, perSecond float64, parallel int, fn func(ctx context.Context, i int) error) error {
	sem := make(chan struct{}, max(parallel, 1))
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		if perSecond > 0 {
			at := start.Add(time.Duration(float64(i) / perSecond * float64(time.Second)))
			if err := sleep(ctx, time.Until(at)); err != nil {
				break
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = fn(ctx, i)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	failed := 0
	var first error
	for _, e := range errs {
		if e != nil {
			failed++
			if first == nil {
				first = e
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d requests failed, first: %w", failed, n, first)
	}
	return nil
}
