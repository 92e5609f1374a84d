package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
)

// The local rsync checks the agent runs before it starts a group
// (rsyncd.CheckDeletes, rsync.ResumesFromPartialDir) each copy a few
// bytes to 1 MiB inside the state directory: 10-130 ms on a loaded
// 2-core machine over 1,100 runs. One of them was seen to hang for the
// whole 20 s a test gave the agent to start (a CI dry run of b86a7a4;
// rsync 3.5.0; never seen again in those runs). Waiting on it without a
// bound kept the group from ever starting, and the probe says nothing of
// this rsync when it is cut short. So each attempt gets
// rsyncCheckTimeout, and one cut short is tried again, up to
// rsyncCheckAttempts in all; after that the agent refuses to start and
// says why.
const (
	rsyncCheckTimeout  = 5 * time.Second
	rsyncCheckAttempts = 3
)

// checkWithAttempts runs check with a deadline of timeout per attempt and
// runs it again when an attempt runs out of time, up to attempts in all.
// Any other result, and the end of ctx itself, are returned at once.
func checkWithAttempts(ctx context.Context, log logr.Logger, what string, timeout time.Duration, attempts int, check func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, timeout)
		err := check(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		if attempt == attempts {
			return fmt.Errorf("%s: a local rsync did not finish in %d attempts of %s each; see whether rsync works on this host: %w", what, attempts, timeout, err)
		}
		log.Info("a local rsync check did not finish in time; trying again", "check", what, "timeout", timeout, "attempt", attempt, "attempts", attempts)
	}
}
