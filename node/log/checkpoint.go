package log

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Small text files in the partition directory, in the shape of Kafka's
// checkpoint files: a version line, a count line, then one entry a line.
// They are replaced atomically: write a temporary file, fsync, rename,
// fsync the directory.
const (
	cleanShutdownFile = ".clean-shutdown"
	// compactedFile marks a log that may have gaps between batches and
	// batches with records taken out: cleaned here, or replicated from a
	// cleaned leader. Without it, recovery holds offsets to be
	// contiguous, which catches a corrupt base offset (outside the CRC).
	compactedFile       = ".compacted"
	logStartOffsetFile  = "log-start-offset-checkpoint"
	recoveryPointFile   = "recovery-point-offset-checkpoint"
	leaderEpochFile     = "leader-epoch-checkpoint"
	checkpointVersion   = 0
	checkpointTmpSuffix = ".tmp"
)

// writeCheckpoint atomically replaces dir/name with the given lines.
func writeCheckpoint(fs FS, dir, name string, lines []string) error {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%d\n%d\n", checkpointVersion, len(lines))
	for _, l := range lines {
		buf.WriteString(l)
		buf.WriteByte('\n')
	}
	path := filepath.Join(dir, name)
	tmp := path + checkpointTmpSuffix
	f, err := fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(buf.Bytes(), 0); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Sync(); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename(tmp, path); err != nil {
		return err
	}
	return fs.SyncDir(dir)
}

// readCheckpoint returns the entry lines of dir/name, or os.ErrNotExist.
// A file that does not parse returns an error wrapping ErrCorrupt.
func readCheckpoint(fs FS, dir, name string) ([]string, error) {
	f, err := fs.OpenFile(filepath.Join(dir, name), os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	var lines []string
	for sc.Scan() {
		lines = append(lines, strings.TrimSpace(sc.Text()))
	}
	if len(lines) < 2 || lines[0] != strconv.Itoa(checkpointVersion) {
		return nil, fmt.Errorf("%w: checkpoint %s: bad header", ErrCorrupt, name)
	}
	n, err := strconv.Atoi(lines[1])
	if err != nil || n < 0 || n != len(lines)-2 {
		return nil, fmt.Errorf("%w: checkpoint %s: count %q disagrees with %d entries", ErrCorrupt, name, lines[1], len(lines)-2)
	}
	return lines[2:], nil
}

// readOffsetCheckpoint reads a checkpoint holding a single offset.
func readOffsetCheckpoint(fs FS, dir, name string) (int64, error) {
	lines, err := readCheckpoint(fs, dir, name)
	if err != nil {
		return 0, err
	}
	if len(lines) != 1 {
		return 0, fmt.Errorf("%w: checkpoint %s: want 1 entry, have %d", ErrCorrupt, name, len(lines))
	}
	off, err := strconv.ParseInt(lines[0], 10, 64)
	if err != nil || off < 0 {
		return 0, fmt.Errorf("%w: checkpoint %s: bad offset %q", ErrCorrupt, name, lines[0])
	}
	return off, nil
}

func writeOffsetCheckpoint(fs FS, dir, name string, offset int64) error {
	return writeCheckpoint(fs, dir, name, []string{strconv.FormatInt(offset, 10)})
}
