package meta

import (
	"fmt"
	"math"
	"strconv"
)

// topicConfigs are the topic config keys Strata accepts, with their
// validators. Anything else is rejected by name, as Kafka does.
var topicConfigs = map[string]func(string) error{
	"retention.ms":                   intRange(-1, math.MaxInt64),
	"retention.bytes":                intRange(-1, math.MaxInt64),
	"local.retention.ms":             intRange(-2, math.MaxInt64),
	"local.retention.bytes":          intRange(-2, math.MaxInt64),
	"segment.bytes":                  intRange(14, math.MaxInt32),
	"segment.ms":                     intRange(1, math.MaxInt64),
	"segment.index.bytes":            intRange(48, math.MaxInt32),
	"index.interval.bytes":           intRange(0, math.MaxInt32),
	"max.message.bytes":              intRange(0, math.MaxInt32),
	"min.insync.replicas":            intRange(1, math.MaxInt16),
	"flush.messages":                 intRange(1, math.MaxInt64),
	"flush.ms":                       intRange(0, math.MaxInt64),
	"message.timestamp.type":         oneOf("CreateTime", "LogAppendTime"),
	"cleanup.policy":                 cleanupPolicy,
	"remote.storage.enable":          oneOf("true", "false"),
	"unclean.leader.election.enable": oneOf("true", "false"),
	"compression.type":               oneOf("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"),
	"min.cleanable.dirty.ratio":      floatRange(0, 1),
	"min.compaction.lag.ms":          intRange(0, math.MaxInt64),
	"max.compaction.lag.ms":          intRange(1, math.MaxInt64),
	"delete.retention.ms":            intRange(0, math.MaxInt64),
	"file.delete.delay.ms":           intRange(0, math.MaxInt64),
	// KIP-1191: the topic may take share groups' dead letters.
	"errors.deadletterqueue.group.enable": oneOf("true", "false"),
}

// ValidateTopicConfig checks one key and value, naming what is wrong.
func ValidateTopicConfig(key, value string) error {
	check, ok := topicConfigs[key]
	if !ok {
		return fmt.Errorf("%w: unknown topic config %q", ErrInvalidConfig, key)
	}
	if err := check(value); err != nil {
		return fmt.Errorf("%w: %s=%q: %v", ErrInvalidConfig, key, value, err)
	}
	return nil
}

// ValidateTopicConfigs checks every key of a config map, in key order so
// the first error is the same on every node.
func ValidateTopicConfigs(configs map[string]string) error {
	for _, k := range sortedKeys(configs) {
		if err := ValidateTopicConfig(k, configs[k]); err != nil {
			return err
		}
	}
	return nil
}

func intRange(lo, hi int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		if n < lo || n > hi {
			return fmt.Errorf("must be in [%d, %d]", lo, hi)
		}
		return nil
	}
}

func oneOf(allowed ...string) func(string) error {
	return func(v string) error {
		for _, a := range allowed {
			if v == a {
				return nil
			}
		}
		return fmt.Errorf("must be one of %v", allowed)
	}
}

func cleanupPolicy(v string) error {
	switch v {
	case "delete", "compact", "compact,delete", "delete,compact":
		return nil
	}
	return fmt.Errorf("must be delete, compact, or compact,delete")
}

func floatRange(lo, hi float64) func(string) error {
	return func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("not a number")
		}
		if f < lo || f > hi {
			return fmt.Errorf("must be between %g and %g", lo, hi)
		}
		return nil
	}
}

// TopicConfigDefaults are the values a topic has for keys it does not set
// (Kafka's defaults), as DescribeConfigs reports them.
var TopicConfigDefaults = map[string]string{
	"retention.ms":                        "604800000",
	"retention.bytes":                     "-1",
	"local.retention.ms":                  "-2",
	"local.retention.bytes":               "-2",
	"segment.bytes":                       "1073741824",
	"segment.ms":                          "604800000",
	"segment.index.bytes":                 "10485760",
	"index.interval.bytes":                "4096",
	"max.message.bytes":                   "1048588",
	"min.insync.replicas":                 "1",
	"flush.messages":                      "9223372036854775807",
	"flush.ms":                            "9223372036854775807",
	"message.timestamp.type":              "CreateTime",
	"cleanup.policy":                      "delete",
	"remote.storage.enable":               "false",
	"unclean.leader.election.enable":      "false",
	"compression.type":                    "producer",
	"min.cleanable.dirty.ratio":           "0.5",
	"min.compaction.lag.ms":               "0",
	"max.compaction.lag.ms":               "9223372036854775807",
	"delete.retention.ms":                 "86400000",
	"file.delete.delay.ms":                "60000",
	"errors.deadletterqueue.group.enable": "false",
}
