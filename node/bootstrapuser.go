package node

import (
	"context"
	"time"

	"github.com/strata-io/strata/auth"
	"github.com/strata-io/strata/meta"
)

// bootstrapUser creates the first user of a secured cluster, with
// SCRAM-SHA-256 and SCRAM-SHA-512 credentials, unless a user of that
// name has any credential already (a password changed since stays). It
// tries until the metadata takes the command or stop closes, and tells
// done whether this call created the user.
func bootstrapUser(m *meta.Member, user, password string, stop <-chan struct{}, done func(created bool), logf func(string, ...any)) {
	cmd := &meta.AlterScramCredentials{OnlyIfAbsent: true}
	for _, mech := range auth.ScramMechanisms {
		c, err := auth.NewCredential(mech, password, auth.DefaultIterations)
		if err != nil {
			logf("cannot make the bootstrap user's credential", "user", user, "error", err)
			return
		}
		cmd.Upserts = append(cmd.Upserts, meta.ScramCredential{User: user, Mechanism: mech, Iterations: int32(c.Iterations),
			Salt: c.Salt, StoredKey: c.StoredKey, ServerKey: c.ServerKey})
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := m.Propose(ctx, cmd)
		cancel()
		if err == nil && res.Err == nil {
			if done != nil {
				done(res.Value > 0)
			}
			return
		}
		select {
		case <-stop:
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}
