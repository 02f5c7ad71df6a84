package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/auth"
	"github.com/strata-io/strata/meta"
)

// Kafka's numbers for the SCRAM mechanisms in the credential APIs.
var scramMechanismIDs = map[int8]string{1: auth.ScramSHA256, 2: auth.ScramSHA512}

func scramMechanismID(name string) int8 {
	for id, n := range scramMechanismIDs {
		if n == name {
			return id
		}
	}
	return 0
}

// describeUserScramCredentials lists users and their mechanisms and
// iterations (never salts or keys): all users, or those named.
func (g *Gateway) describeUserScramCredentials(ctx context.Context, req *kmsg.DescribeUserSCRAMCredentialsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	if !g.allowedCluster(ctx, opDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp
	}
	all, err := g.creds.all(ctx)
	if err != nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		msg := err.Error()
		resp.ErrorMessage = &msg
		return resp
	}
	byUser := map[string][]meta.ScramCredential{}
	var users []string
	for _, c := range all {
		if _, ok := byUser[c.User]; !ok {
			users = append(users, c.User)
		}
		byUser[c.User] = append(byUser[c.User], c)
	}
	result := func(user string) kmsg.DescribeUserSCRAMCredentialsResponseResult {
		r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		r.User = user
		for _, c := range byUser[user] {
			info := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
			info.Mechanism, info.Iterations = scramMechanismID(c.Mechanism), c.Iterations
			r.CredentialInfos = append(r.CredentialInfos, info)
		}
		return r
	}
	if req.Users == nil {
		for _, u := range users {
			resp.Results = append(resp.Results, result(u))
		}
		return resp
	}
	seen := map[string]int{}
	for _, u := range req.Users {
		seen[u.Name]++
	}
	for _, u := range req.Users {
		r := result(u.Name)
		switch {
		case seen[u.Name] > 1:
			r.ErrorCode, r.CredentialInfos = kerr.DuplicateResource.Code, nil
			msg := "user named more than once"
			r.ErrorMessage = &msg
		case len(r.CredentialInfos) == 0:
			r.ErrorCode = kerr.ResourceNotFound.Code
			msg := "user has no SCRAM credentials"
			r.ErrorMessage = &msg
		}
		resp.Results = append(resp.Results, r)
	}
	return resp
}

// alterUserScramCredentials sets and deletes credentials. The client
// sends a salted password, never the password; what is kept is derived
// from it. Every change of one user lands or none does: a user with one
// bad change gets its error and keeps what it had.
func (g *Gateway) alterUserScramCredentials(ctx context.Context, req *kmsg.AlterUserSCRAMCredentialsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	if !g.allowedCluster(ctx, opAlter) {
		for _, u := range userOrder(req) {
			resp.Results = append(resp.Results, scramResult(u, kerr.ClusterAuthorizationFailed, "altering credentials needs ALTER on the cluster"))
		}
		return resp
	}
	existing, err := g.creds.all(ctx)
	if err != nil {
		for _, u := range userOrder(req) {
			resp.Results = append(resp.Results, scramResult(u, kerr.CoordinatorNotAvailable, err.Error()))
		}
		return resp
	}
	have := map[[2]string]bool{}
	for _, c := range existing {
		have[[2]string{c.User, c.Mechanism}] = true
	}
	type change struct {
		upserts []meta.ScramCredential
		deletes []meta.CredentialRef
		err     *kerr.Error
		msg     string
	}
	changes := map[string]*change{}
	at := func(user string) *change {
		if changes[user] == nil {
			changes[user] = &change{}
		}
		return changes[user]
	}
	fail := func(c *change, e *kerr.Error, msg string) {
		if c.err == nil {
			c.err, c.msg = e, msg
		}
	}
	touched := map[[2]string]bool{}
	for _, d := range req.Deletions {
		c := at(d.Name)
		mech, ok := scramMechanismIDs[d.Mechanism]
		switch {
		case d.Name == "":
			fail(c, kerr.UnacceptableCredential, "empty user name")
		case !ok:
			fail(c, kerr.UnsupportedSaslMechanism, fmt.Sprintf("unknown SCRAM mechanism %d", d.Mechanism))
		case touched[[2]string{d.Name, mech}]:
			fail(c, kerr.DuplicateResource, "a user's mechanism is changed twice")
		case !have[[2]string{d.Name, mech}]:
			fail(c, kerr.ResourceNotFound, fmt.Sprintf("no %s credential to delete", mech))
		default:
			c.deletes = append(c.deletes, meta.CredentialRef{User: d.Name, Mechanism: mech})
		}
		touched[[2]string{d.Name, mech}] = true
	}
	for _, u := range req.Upsertions {
		c := at(u.Name)
		mech, ok := scramMechanismIDs[u.Mechanism]
		if !ok {
			fail(c, kerr.UnsupportedSaslMechanism, fmt.Sprintf("unknown SCRAM mechanism %d", u.Mechanism))
			continue
		}
		if u.Name == "" {
			fail(c, kerr.UnacceptableCredential, "empty user name")
			continue
		}
		if touched[[2]string{u.Name, mech}] {
			fail(c, kerr.DuplicateResource, "a user's mechanism is changed twice")
			continue
		}
		touched[[2]string{u.Name, mech}] = true
		cred, err := auth.FromSaltedPassword(mech, u.Salt, u.SaltedPassword, int(u.Iterations))
		if err != nil {
			fail(c, kerr.UnacceptableCredential, err.Error())
			continue
		}
		c.upserts = append(c.upserts, meta.ScramCredential{User: u.Name, Mechanism: mech, Iterations: u.Iterations,
			Salt: cred.Salt, StoredKey: cred.StoredKey, ServerKey: cred.ServerKey})
	}
	cmd := &meta.AlterScramCredentials{}
	for _, c := range changes {
		if c.err == nil {
			cmd.Upserts = append(cmd.Upserts, c.upserts...)
			cmd.Deletes = append(cmd.Deletes, c.deletes...)
		}
	}
	var proposeErr error
	if len(cmd.Upserts)+len(cmd.Deletes) > 0 {
		res, err := g.meta.Propose(ctx, cmd)
		if err == nil {
			err = res.Err
		}
		proposeErr = err
	}
	for _, u := range userOrder(req) {
		c := changes[u]
		switch {
		case c.err != nil:
			resp.Results = append(resp.Results, scramResult(u, c.err, c.msg))
		case proposeErr != nil:
			e := kerr.CoordinatorNotAvailable
			if errors.Is(proposeErr, meta.ErrInvalidRequest) {
				e = kerr.UnacceptableCredential
			}
			resp.Results = append(resp.Results, scramResult(u, e, proposeErr.Error()))
		default:
			resp.Results = append(resp.Results, scramResult(u, nil, ""))
		}
	}
	if proposeErr == nil && len(cmd.Upserts)+len(cmd.Deletes) > 0 {
		g.creds.invalidate()
		g.logger.Info("SCRAM credentials altered", "principal", principalOf(ctx), "upserted", len(cmd.Upserts), "deleted", len(cmd.Deletes))
	}
	return resp
}

// userOrder lists the users a request names, each once, in order.
func userOrder(req *kmsg.AlterUserSCRAMCredentialsRequest) []string {
	var out []string
	for _, d := range req.Deletions {
		if !slices.Contains(out, d.Name) {
			out = append(out, d.Name)
		}
	}
	for _, u := range req.Upsertions {
		if !slices.Contains(out, u.Name) {
			out = append(out, u.Name)
		}
	}
	return out
}

func scramResult(user string, e *kerr.Error, msg string) kmsg.AlterUserSCRAMCredentialsResponseResult {
	r := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
	r.User = user
	if e != nil {
		r.ErrorCode = e.Code
		r.ErrorMessage = &msg
	}
	return r
}
