package gateway

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-io/strata/meta"
)

// describeGroupConfigs answers DescribeConfigs for one GROUP resource:
// every group config key, the group's own value or the default.
func (g *Gateway) describeGroupConfigs(ctx context.Context, rr kmsg.DescribeConfigsRequestResource, sr *kmsg.DescribeConfigsResponseResource) {
	if !g.allowed(ctx, opDescribeConfigs, rtGroup, rr.ResourceName) {
		sr.ErrorCode = kerr.GroupAuthorizationFailed.Code
		return
	}
	r, err := g.meta.Read(ctx, meta.ReadRequest{Kind: "group_configs", Group: rr.ResourceName})
	if err != nil {
		sr.ErrorCode, sr.ErrorMessage = metaErrorCode(err), errMessage(err)
		return
	}
	for _, k := range slices.Sorted(maps.Keys(meta.GroupConfigDefaults)) {
		if rr.ConfigNames != nil && !slices.Contains(rr.ConfigNames, k) {
			continue
		}
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name = k
		v, set := r.GroupConfigs[k]
		if set {
			c.Source = kmsg.ConfigSourceGroupConfig
		} else {
			v, c.Source, c.IsDefault = meta.GroupConfigDefaults[k], kmsg.ConfigSourceDefaultConfig, true
		}
		c.Value = &v
		sr.Configs = append(sr.Configs, c)
	}
}

// alterGroupConfigs sets and deletes a group's config keys.
func (g *Gateway) alterGroupConfigs(ctx context.Context, name string, set map[string]string, del []string, validateOnly bool) (int16, *string) {
	if !g.allowed(ctx, opAlterConfigs, rtGroup, name) {
		return kerr.GroupAuthorizationFailed.Code, nil
	}
	if name == "" {
		return kerr.InvalidRequest.Code, errMessage(errors.New("empty group id"))
	}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		if err := meta.ValidateGroupConfig(k, set[k]); err != nil {
			return kerr.InvalidConfig.Code, errMessage(err)
		}
	}
	for _, k := range del {
		if _, ok := meta.GroupConfigDefaults[k]; !ok {
			return kerr.InvalidConfig.Code, errMessage(errors.New("unknown group config " + k))
		}
	}
	if validateOnly {
		return 0, nil
	}
	err := g.propose(ctx, &meta.AlterGroupConfigs{Group: name, Set: set, Delete: del})
	return metaErrorCode(err), errMessage(err)
}
