package meta

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
)

// badgerOptions are Badger's options sized for metadata: small memtables
// and caches (a node's metadata is megabytes, and tests run several nodes
// in one process), logs routed to slog.
func badgerOptions(dir string, logger *slog.Logger) badger.Options {
	return badger.DefaultOptions(dir).
		WithLogger(badgerLogger{logger}).
		WithMemTableSize(8 << 20).
		WithValueLogFileSize(64 << 20).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(4 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithNumCompactors(2).
		WithValueThreshold(1 << 10)
}

// badgerLogger adapts slog to Badger's logger; Badger's info chatter goes
// to debug.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, v ...any)   { b.l.Error(fmt.Sprintf(f, v...)) }
func (b badgerLogger) Warningf(f string, v ...any) { b.l.Warn(fmt.Sprintf(f, v...)) }
func (b badgerLogger) Infof(f string, v ...any)    { b.l.Debug(fmt.Sprintf(f, v...)) }

// Debugf drops Badger's debug lines: they narrate every write ("writeRequests
// called") and would drown Strata's own debug log.
func (b badgerLogger) Debugf(string, ...any) {}

// removeEmptyValueLogs removes the value log files in dir that are empty,
// without even their header. A process killed while Badger creates one
// (between creating and sizing it) or deletes one (between truncating and
// removing it) leaves such a file, and Badger then refuses to open the
// directory, so the node could never start again. An empty value log
// holds no entry, so nothing can point into it: removing it loses
// nothing.
func removeEmptyValueLogs(dir string, logger *slog.Logger) error {
	vlogs, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err != nil {
		return err
	}
	for _, path := range vlogs {
		fi, err := os.Stat(path)
		if err != nil || fi.Size() > 0 {
			continue
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("meta: remove empty value log: %w", err)
		}
		logger.Warn("removed an empty value log left by a crash", "path", path)
	}
	return nil
}
