package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	plog "github.com/strata-io/strata/node/log"
)

func logCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "log",
		Usage: "inspect partition log files on disk",
		Subcommands: []*ucli.Command{{
			Name:      "dump",
			Usage:     "print the batches of segment files, read-only (like kafka-dump-log.sh)",
			ArgsUsage: "PARTITION-DIR | SEGMENT.log ...",
			Flags: []ucli.Flag{
				&ucli.BoolFlag{Name: "summary", EnvVars: envVars("summary"), Usage: "one line per segment instead of one per batch"},
			},
			Action: func(c *ucli.Context) error {
				if c.NArg() == 0 {
					return errors.New("log dump: name a partition directory or .log files")
				}
				var files []string
				for _, arg := range c.Args().Slice() {
					fi, err := os.Stat(arg)
					if err != nil {
						return fmt.Errorf("log dump: %w", err)
					}
					if !fi.IsDir() {
						files = append(files, arg)
						continue
					}
					matches, err := filepath.Glob(filepath.Join(arg, "*.log"))
					if err != nil {
						return err
					}
					slices.Sort(matches)
					files = append(files, matches...)
				}
				bad := 0
				for _, f := range files {
					ok, err := dumpSegment(c.App.Writer, f, c.Bool("summary"))
					if err != nil {
						return fmt.Errorf("log dump: %w", err)
					}
					if !ok {
						bad++
					}
				}
				if bad > 0 {
					return fmt.Errorf("log dump: %d of %d segments have a corrupt or torn tail", bad, len(files))
				}
				return nil
			},
		}},
	}
}

// dumpSegment prints one segment file; it reports false when the file has
// bytes that recovery would cut.
func dumpSegment(w io.Writer, path string, summary bool) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	fmt.Fprintf(w, "Dumping %s (%d bytes)\n", path, fi.Size())
	var batches, records int64
	first, last := int64(-1), int64(-1)
	valid, scanErr := plog.ScanSegment(f, fi.Size(), func(pos int64, h plog.BatchHeader) bool {
		batches++
		records += int64(h.RecordCount)
		if first < 0 {
			first = h.BaseOffset
		}
		last = h.LastOffset()
		if !summary {
			fmt.Fprintf(w, "baseOffset: %d lastOffset: %d count: %d position: %d size: %d leaderEpoch: %d compression: %s maxTimestamp: %s producerId: %d baseSequence: %d crc: %08x\n",
				h.BaseOffset, h.LastOffset(), h.RecordCount, pos, h.Size(), h.LeaderEpoch,
				codecName(h.Compression()), time.UnixMilli(h.MaxTimestamp).UTC().Format(time.RFC3339Nano),
				h.ProducerID, h.BaseSequence, h.CRC)
		}
		return true
	})
	fmt.Fprintf(w, "%d batches, %d records, offsets [%d, %d]\n", batches, records, first, last)
	if scanErr != nil {
		fmt.Fprintf(w, "CORRUPT at position %d: %d bytes would be cut by recovery: %s\n",
			valid, fi.Size()-valid, strings.TrimPrefix(scanErr.Error(), "log: "))
		return false, nil
	}
	return true, nil
}

func codecName(c int) string {
	switch c {
	case plog.CompressionNone:
		return "none"
	case plog.CompressionGzip:
		return "gzip"
	case plog.CompressionSnappy:
		return "snappy"
	case plog.CompressionLZ4:
		return "lz4"
	case plog.CompressionZstd:
		return "zstd"
	}
	return fmt.Sprintf("unknown(%d)", c)
}
