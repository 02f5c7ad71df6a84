package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	ucli "github.com/urfave/cli/v2"
)

func consumeCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "consume",
		Usage: "print records (like kafka-console-consumer.sh)",
		Description: "--format takes kcat's placeholders: %t topic, %p partition, %o offset, %k key, %v value,\n" +
			"%T timestamp (ms), %h headers; \\n and \\t are newline and tab. Default: \"%v\\n\".",
		Flags: []ucli.Flag{brokersFlag,
			&ucli.StringFlag{Name: "topic", Aliases: []string{"t"}, Required: true, EnvVars: envVars("topic"), Usage: "topic to consume"},
			&ucli.StringFlag{Name: "group", Aliases: []string{"g"}, EnvVars: envVars("group"), Usage: "consumer group (commits offsets); none: read without committing"},
			&ucli.StringFlag{Name: "share-group", EnvVars: envVars("share-group"),
				Usage: "share group (a queue, KIP-932): records are shared with the group's other members, each acknowledged once printed"},
			&ucli.StringFlag{Name: "group-protocol", Value: "classic", EnvVars: envVars("group-protocol"),
				Usage: "with --group: classic, or consumer for Kafka 4's protocol with server-side assignment (group.protocol, KIP-848)"},
			&ucli.BoolFlag{Name: "from-beginning", EnvVars: envVars("from-beginning"), Usage: "start at the earliest offset (default: the latest)"},
			&ucli.Int64Flag{Name: "offset", Value: -1, EnvVars: envVars("offset"), Usage: "start at this offset in every partition"},
			&ucli.DurationFlag{Name: "since", EnvVars: envVars("since"), Usage: "start at records newer than this long ago, e.g. 1h"},
			&ucli.IntFlag{Name: "max-messages", Aliases: []string{"n"}, EnvVars: envVars("max-messages"), Usage: "stop after this many records (default: until Ctrl-C)"},
			&ucli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: `%v\n`, EnvVars: envVars("format"), Usage: "output format"},
		},
		Action: func(c *ucli.Context) error {
			start := kgo.NewOffset().AtEnd()
			switch {
			case c.Bool("from-beginning"):
				start = kgo.NewOffset().AtStart()
			case c.Int64("offset") >= 0:
				start = kgo.NewOffset().At(c.Int64("offset"))
			case c.Duration("since") > 0:
				start = kgo.NewOffset().AfterMilli(time.Now().Add(-c.Duration("since")).UnixMilli())
			}
			opts := []kgo.Opt{kgo.ConsumeTopics(c.String("topic")), kgo.ConsumeResetOffset(start)}
			share := c.String("share-group")
			switch g := c.String("group"); {
			case share != "" && g != "":
				return fmt.Errorf("consume: --group and --share-group: a consumer is in one group")
			case share != "" && (c.Bool("from-beginning") || c.IsSet("offset") || c.IsSet("since")):
				return fmt.Errorf("consume: a share group starts where the group is (share.auto.offset.reset; strata group reset-offsets moves it), not at --from-beginning, --offset or --since")
			case share != "":
				opts = []kgo.Opt{kgo.ConsumeTopics(c.String("topic")), kgo.ShareGroup(share)}
				if limit := c.Int("max-messages"); limit > 0 {
					// Take no more than will be printed: what is taken is
					// held from the group's other members until released.
					opts = append(opts, kgo.ShareMaxRecords(int32(min(limit, 500))))
				}
			case g != "":
				opts = append(opts, kgo.ConsumerGroup(g))
			}
			switch c.String("group-protocol") {
			case "classic":
			case "consumer":
				opts = append(opts, kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.ServerSideBalancer())
			default:
				return fmt.Errorf("consume: --group-protocol %q: want classic or consumer", c.String("group-protocol"))
			}
			cl, err := newKafkaClient(c, opts...)
			if err != nil {
				return fmt.Errorf("consume: %w", err)
			}
			defer cl.Close()
			ctx, cancel := signalContext(c.Context)
			defer cancel()
			format := unescape(c.String("format"))
			limit := c.Int("max-messages")
			n := 0
			var shown atomic.Int64
			stopProgress := terminalProgress(c.App.ErrWriter, "consumed", &shown)
			defer stopProgress()
			for limit == 0 || n < limit {
				fs := cl.PollRecords(ctx, max(limit-n, 0))
				if ctx.Err() != nil {
					break
				}
				if errs := fs.Errors(); len(errs) > 0 {
					return fmt.Errorf("consume %s: %v", c.String("topic"), errs[0].Err)
				}
				fs.EachRecord(func(r *kgo.Record) {
					if limit == 0 || n < limit {
						writeRecord(c.App.Writer, format, r)
						n++
						shown.Add(1)
						if share != "" {
							r.Ack(kgo.AckAccept)
						}
					} else if share != "" {
						r.Ack(kgo.AckRelease) // not printed: back to the group
					}
				})
				if share != "" {
					if err := cl.FlushAcks(ctx); err != nil && ctx.Err() == nil {
						return fmt.Errorf("consume: acknowledging: %w", err)
					}
				}
			}
			if c.String("group") != "" {
				if err := cl.CommitUncommittedOffsets(c.Context); err != nil {
					return fmt.Errorf("consume: commit: %w", err)
				}
			}
			return nil
		},
	}
}

func unescape(f string) string {
	return strings.NewReplacer(`\n`, "\n", `\t`, "\t").Replace(f)
}

// writeRecord prints r with kcat-style placeholders.
func writeRecord(w io.Writer, format string, r *kgo.Record) {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' || i+1 == len(format) {
			b.WriteByte(format[i])
			continue
		}
		i++
		switch format[i] {
		case 't':
			b.WriteString(r.Topic)
		case 'p':
			b.WriteString(strconv.Itoa(int(r.Partition)))
		case 'o':
			b.WriteString(strconv.FormatInt(r.Offset, 10))
		case 'k':
			b.Write(r.Key)
		case 'v':
			b.Write(r.Value)
		case 'T':
			b.WriteString(strconv.FormatInt(r.Timestamp.UnixMilli(), 10))
		case 'h':
			for j, h := range r.Headers {
				if j > 0 {
					b.WriteByte(',')
				}
				b.WriteString(h.Key + "=" + string(h.Value))
			}
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(format[i])
		}
	}
	io.WriteString(w, b.String())
}
