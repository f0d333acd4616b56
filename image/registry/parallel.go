package registry

import (
	"context"
	"sync"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// forEachParallel runs fn on each of descs, at most n at a time
// (DefaultConcurrency when n <= 0), started in order. The first error cancels the others' context and is returned;
// a cancelled ctx stops new starts and gives its cause.
func forEachParallel(ctx context.Context, descs []ocispec.Descriptor, n int, fn func(context.Context, ocispec.Descriptor) error) error {
	if n <= 0 {
		n = DefaultConcurrency
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, n)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
loop:
	for _, d := range descs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, d); err != nil {
				once.Do(func() { first = err; cancel(err) })
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return context.Cause(ctx)
}
