package cli

import (
	"bufio"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
	ucli "github.com/urfave/cli/v2"
)

func produceCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "produce",
		Usage: "produce stdin lines as records (like kafka-console-producer.sh)",
		Flags: []ucli.Flag{brokersFlag,
			&ucli.StringFlag{Name: "topic", Aliases: []string{"t"}, Required: true, EnvVars: envVars("topic"), Usage: "topic to produce to"},
			&ucli.StringFlag{Name: "key-sep", EnvVars: envVars("key-sep"), Usage: "split each line into key and value at the first SEP"},
			&ucli.StringFlag{Name: "acks", Value: "all", EnvVars: envVars("acks"), Usage: "all, 1 or 0"},
			&ucli.StringSliceFlag{Name: "header", Aliases: []string{"H"}, Usage: "record header key=value (repeatable)"},
			&ucli.IntFlag{Name: "partition", Aliases: []string{"p"}, Value: -1, EnvVars: envVars("partition"), Usage: "produce to this partition (default: by key)"},
		},
		Action: func(c *ucli.Context) error {
			var acks kgo.Acks
			opts := []kgo.Opt{kgo.DefaultProduceTopic(c.String("topic"))}
			switch c.String("acks") {
			case "all", "-1":
				acks = kgo.AllISRAcks()
			case "1":
				acks = kgo.LeaderAck()
				opts = append(opts, kgo.DisableIdempotentWrite())
			case "0":
				acks = kgo.NoAck()
				opts = append(opts, kgo.DisableIdempotentWrite())
			default:
				return fmt.Errorf("produce: --acks %q must be all, 1 or 0", c.String("acks"))
			}
			opts = append(opts, kgo.RequiredAcks(acks))
			if c.Int("partition") >= 0 {
				opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
			}
			var headers []kgo.RecordHeader
			for _, h := range c.StringSlice("header") {
				k, v, ok := strings.Cut(h, "=")
				if !ok {
					return fmt.Errorf("produce: header %q is not key=value", h)
				}
				headers = append(headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
			}
			cl, err := newKafkaClient(c, opts...)
			if err != nil {
				return fmt.Errorf("produce: %w", err)
			}
			defer cl.Close()
			var (
				sent, failed atomic.Int64
				firstErr     error
				mu           sync.Mutex
			)
			stopProgress := terminalProgress(c.App.ErrWriter, "produced", &sent)
			defer stopProgress()
			sep := c.String("key-sep")
			sc := bufio.NewScanner(c.App.Reader)
			sc.Buffer(make([]byte, 64<<10), 16<<20)
			for sc.Scan() {
				line := sc.Text()
				r := &kgo.Record{Value: []byte(line), Headers: headers, Partition: int32(c.Int("partition"))}
				if sep != "" {
					if k, v, ok := strings.Cut(line, sep); ok {
						r.Key, r.Value = []byte(k), []byte(v)
					}
				}
				cl.Produce(c.Context, r, func(_ *kgo.Record, err error) {
					if err != nil {
						failed.Add(1)
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						return
					}
					sent.Add(1)
				})
			}
			if err := sc.Err(); err != nil {
				return fmt.Errorf("produce: reading stdin: %w", err)
			}
			if err := cl.Flush(c.Context); err != nil {
				return fmt.Errorf("produce: %w", err)
			}
			stopProgress()
			if firstErr != nil {
				return fmt.Errorf("produce: %d of %d records failed: %w", failed.Load(), failed.Load()+sent.Load(), firstErr)
			}
			fmt.Fprintf(c.App.ErrWriter, "Produced %d records to %s.\n", sent.Load(), c.String("topic"))
			return nil
		},
	}
}
