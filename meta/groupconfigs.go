package meta

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Group configs (KIP-848, KIP-932) are per-group settings, set with
// IncrementalAlterConfigs on the GROUP resource (kafka-configs.sh
// --entity-type groups) and kept here: gc/<group>.
const keyGroupConfigs = "gc/"

// TypeAlterGroupConfigs sets and deletes a group's configs.
const TypeAlterGroupConfigs CommandType = 33

// GroupConfigDefaults are the group configs Strata accepts, with the value
// a group has when it sets none (Kafka's defaults).
var GroupConfigDefaults = map[string]string{
	"share.auto.offset.reset":        "latest",
	"share.record.lock.duration.ms":  "30000",
	"share.delivery.count.limit":     "5",
	"share.isolation.level":          "read_uncommitted",
	"share.session.timeout.ms":       "45000",
	"share.heartbeat.interval.ms":    "5000",
	"consumer.session.timeout.ms":    "45000",
	"consumer.heartbeat.interval.ms": "5000",
	// Dead letters (in the spirit of KIP-1191): off unless a topic is
	// named.
	"errors.deadletterqueue.topic.name":         "",
	"errors.deadletterqueue.copy.record.enable": "false",
}

// DeadLetterPrefix is what a dead-letter topic's name must start with
// (KIP-1191's errors.deadletterqueue.topic.name.prefix default): a
// consumer of it knows its records were written there by the cluster.
const DeadLetterPrefix = "dlq."

var groupConfigs = map[string]func(string) error{
	"share.auto.offset.reset": shareAutoOffsetReset,
	// Kafka bounds the lock by group.share.{min,max}.record.lock.duration.ms
	// (15 s to 60 s by default); Strata allows 1 s to 1 h.
	"share.record.lock.duration.ms":  intRange(1000, 3_600_000),
	"share.delivery.count.limit":     intRange(2, 10),
	"share.isolation.level":          oneOf("read_uncommitted", "read_committed"),
	"share.session.timeout.ms":       intRange(1000, 3_600_000),
	"share.heartbeat.interval.ms":    intRange(100, 3_600_000),
	"consumer.session.timeout.ms":    intRange(1000, 3_600_000),
	"consumer.heartbeat.interval.ms": intRange(100, 3_600_000),
	"errors.deadletterqueue.topic.name": func(v string) error {
		if v == "" {
			return nil
		}
		if !strings.HasPrefix(v, DeadLetterPrefix) {
			return fmt.Errorf("a dead-letter topic's name must start with %q", DeadLetterPrefix)
		}
		return validTopicName(v)
	},
	"errors.deadletterqueue.copy.record.enable": oneOf("true", "false"),
}

// shareAutoOffsetReset accepts latest, earliest, and by_duration:<ISO-8601
// duration> (KIP-1106), such as by_duration:PT1H.
func shareAutoOffsetReset(v string) error {
	if v == "latest" || v == "earliest" {
		return nil
	}
	if d, ok := strings.CutPrefix(v, "by_duration:"); ok {
		if _, err := ParseISODuration(d); err != nil {
			return err
		}
		return nil
	}
	return fmt.Errorf("must be latest, earliest or by_duration:<ISO-8601 duration>")
}

// ParseISODuration reads an ISO-8601 duration of days and time, as Java's
// Duration.parse does: PnDTnHnMn.nS.
func ParseISODuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("%q is not an ISO-8601 duration such as P1DT2H or PT30M", s)
	rest, ok := strings.CutPrefix(strings.ToUpper(s), "P")
	if !ok || rest == "" {
		return 0, bad
	}
	var total float64
	inTime := false
	for rest != "" {
		if rest[0] == 'T' {
			if inTime {
				return 0, bad
			}
			inTime, rest = true, rest[1:]
			if rest == "" {
				return 0, bad
			}
			continue
		}
		i := strings.IndexAny(rest, "DHMS")
		if i <= 0 {
			return 0, bad
		}
		var n float64
		if _, err := fmt.Sscanf(rest[:i], "%g", &n); err != nil || n < 0 {
			return 0, bad
		}
		unit := rest[i]
		switch {
		case unit == 'D' && !inTime:
			total += n * 24 * 3600
		case unit == 'H' && inTime:
			total += n * 3600
		case unit == 'M' && inTime:
			total += n * 60
		case unit == 'S' && inTime:
			total += n
		default:
			return 0, bad
		}
		rest = rest[i+1:]
	}
	if total*1e9 > math.MaxInt64 {
		return 0, bad
	}
	return time.Duration(total * 1e9), nil
}

// ValidateGroupConfig checks one group config key and value.
func ValidateGroupConfig(key, value string) error {
	check, ok := groupConfigs[key]
	if !ok {
		return fmt.Errorf("%w: unknown group config %q", ErrInvalidConfig, key)
	}
	if err := check(value); err != nil {
		return fmt.Errorf("%w: %s=%q: %v", ErrInvalidConfig, key, value, err)
	}
	return nil
}

// AlterGroupConfigs sets and deletes a group's config keys; one bad key
// rejects the command.
type AlterGroupConfigs struct {
	Group  string
	Set    map[string]string
	Delete []string
}

func (AlterGroupConfigs) Type() CommandType { return TypeAlterGroupConfigs }

func (c *AlterGroupConfigs) encode(e *encoder) {
	e.string(c.Group)
	e.stringMap(c.Set)
	e.strings(c.Delete)
}
func (c *AlterGroupConfigs) decode(d *decoder) {
	c.Group, c.Set, c.Delete = d.string(), d.stringMap(), d.strings()
}

func groupConfigsKey(group string) []byte { return append([]byte(keyGroupConfigs), group...) }

func encodeGroupConfigs(m map[string]string) []byte {
	e := encoder{}
	e.byte(stateVersion)
	e.stringMap(m)
	return e.b
}

func decodeGroupConfigs(b []byte) (map[string]string, error) {
	d := decoder{b: b}
	if v := d.byte(); v != stateVersion {
		return nil, fmt.Errorf("%w: group configs record version %d", ErrUnknownCommand, v)
	}
	m := d.stringMap()
	return m, d.finish("group configs")
}

func (w *writer) alterGroupConfigs(c *AlterGroupConfigs) (*ApplyResult, error) {
	if c.Group == "" {
		return rejected(fmt.Errorf("%w: empty group id", ErrInvalidRequest))
	}
	for _, k := range sortedKeys(c.Set) {
		if err := ValidateGroupConfig(k, c.Set[k]); err != nil {
			return rejected(err)
		}
	}
	for _, k := range c.Delete {
		if _, known := groupConfigs[k]; !known {
			return rejected(fmt.Errorf("%w: unknown group config %q", ErrInvalidConfig, k))
		}
	}
	merged, _, err := getRecord(w.txn, groupConfigsKey(c.Group), decodeGroupConfigs)
	if err != nil {
		return nil, err
	}
	if merged == nil {
		merged = map[string]string{}
	}
	for k, v := range c.Set {
		merged[k] = v
	}
	for _, k := range c.Delete {
		delete(merged, k)
	}
	if len(merged) == 0 {
		return &ApplyResult{}, w.delete(groupConfigsKey(c.Group))
	}
	return &ApplyResult{}, w.set(groupConfigsKey(c.Group), encodeGroupConfigs(merged))
}

// GroupConfigs reads the configs a group sets (nil: none).
func (v *View) GroupConfigs(group string) (map[string]string, error) {
	m, _, err := getRecord(v.txn, groupConfigsKey(group), decodeGroupConfigs)
	return m, err
}

// GroupConfig is a group's value for key: its own, else the default.
func GroupConfig(set map[string]string, key string) string {
	if v, ok := set[key]; ok {
		return v
	}
	return GroupConfigDefaults[key]
}
