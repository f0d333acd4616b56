// Package progress carries the progress of long transfers (pull, push,
// load, unpack) from the code doing them to whatever shows it: per-layer
// bars on a terminal, plain lines otherwise, nothing with --quiet.
package progress

// Reporter receives progress. id names the item (a layer's short digest,
// say); status is a word or two ("Downloading", "Verifying", "Extracting",
// "Pull complete", "Already exists"); current and total are bytes (total 0
// when unknown). Implementations are safe for concurrent use.
type Reporter interface {
	Update(id, status string, current, total int64)
}

// Discard is a Reporter that shows nothing.
var Discard Reporter = discard{}

type discard struct{}

func (discard) Update(string, string, int64, int64) {}

// Or returns r, or Discard when r is nil.
func Or(r Reporter) Reporter {
	if r == nil {
		return Discard
	}
	return r
}
