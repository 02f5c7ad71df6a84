package gateway

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
)

// UpdateFeatures (kafka-features.sh upgrade|downgrade): sets cluster
// features' finalized levels, as Kafka's controller does. Needs ALTER on
// the cluster. A lower level is a downgrade, refused unless asked for
// (v0's AllowDowngrade, v1's upgrade type 2 or 3); a level below 1
// removes the feature (level 0). ValidateOnly (v1) checks and changes
// nothing. One bad update fails them all, as in Kafka.
func (g *Gateway) updateFeatures(ctx context.Context, req *kmsg.UpdateFeaturesRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.UpdateFeaturesResponse)
	results := make([]kmsg.UpdateFeaturesResponseResult, len(req.FeatureUpdates))
	fail := func(code int16, err error) kmsg.Response {
		resp.ErrorCode, resp.ErrorMessage = code, errMessage(err)
		for i := range results {
			if results[i].ErrorCode == 0 {
				results[i].ErrorCode, results[i].ErrorMessage = code, errMessage(err)
			}
		}
		resp.Results = results
		return resp
	}
	for i, u := range req.FeatureUpdates {
		results[i] = kmsg.NewUpdateFeaturesResponseResult()
		results[i].Feature = u.Feature
	}
	if !g.allowedCluster(ctx, opAlter) {
		return fail(kerr.ClusterAuthorizationFailed.Code, nil)
	}
	s, err := g.cache.get(ctx, true)
	if err != nil || s.features == nil {
		return fail(kerr.NotController.Code, fmt.Errorf("the cluster's features are unreadable: %v", err))
	}
	levels := map[string]int16{}
	for i, u := range req.FeatureUpdates {
		level := max(u.MaxVersionLevel, 0)
		downgrade := u.AllowDowngrade
		if req.Version >= 1 {
			downgrade = u.UpgradeType == 2 || u.UpgradeType == 3
		}
		_, dup := levels[u.Feature]
		switch cur := s.features.Level(u.Feature); {
		case dup:
			err = fmt.Errorf("feature %q is updated twice", u.Feature)
		case meta.ValidateFeature(u.Feature, level) != nil:
			err = meta.ValidateFeature(u.Feature, level)
		case level < cur && !downgrade:
			err = fmt.Errorf("%s is at level %d: lowering it to %d is a downgrade, which must be asked for", u.Feature, cur, level)
		case level > cur && req.Version >= 1 && u.UpgradeType != 1:
			err = fmt.Errorf("%s is at level %d: raising it to %d is an upgrade, not a downgrade", u.Feature, cur, level)
		}
		if err != nil {
			results[i].ErrorCode, results[i].ErrorMessage = kerr.InvalidUpdateVersion.Code, errMessage(err)
			return fail(kerr.InvalidUpdateVersion.Code, err)
		}
		levels[u.Feature] = level
	}
	if len(levels) == 0 || req.ValidateOnly {
		resp.Results = results
		return resp
	}
	if err := g.propose(ctx, &meta.SetFeatures{Levels: levels}); err != nil {
		return fail(metaErrorCode(err), err)
	}
	g.cache.features.Store(nil) // this gateway's next ApiVersions reads them
	g.logger.Info("cluster features updated", "levels", levels, "principal", principalOf(ctx))
	resp.Results = results
	return resp
}
