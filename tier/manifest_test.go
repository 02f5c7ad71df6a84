package tier

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/strata-io/strata/meta"
)

var update = flag.Bool("update", false, "rewrite the golden files of the current manifest version")

// goldenTopic and goldenSegments are what the golden files describe.
var (
	goldenTopic = meta.Topic{Name: "orders", ID: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, Partitions: 3,
		ReplicationFactor: 2, Configs: map[string]string{"remote.storage.enable": "true", "retention.ms": "-1"}}
	goldenSegments = []meta.TierSegment{
		{Topic: "orders", Partition: 1, BaseOffset: 0, LastOffset: 962, SizeBytes: 972627, LeaderEpoch: 0, MaxTimestamp: 1764000000000,
			ObjectKey: "orders-0102030405060708090a0b0c0d0e0f10/1/00000000000000000000-0.log", UploadTimeMs: 1764000001000,
			SegmentEpochs: []meta.EpochStart{{Epoch: 0, StartOffset: 0}}},
		{Topic: "orders", Partition: 1, BaseOffset: 963, LastOffset: 1925, SizeBytes: 972627, LeaderEpoch: 2, MaxTimestamp: 1764000002000,
			ObjectKey: "orders-0102030405060708090a0b0c0d0e0f10/1/00000000000000000963-2.log", UploadTimeMs: 1764000003000,
			SegmentEpochs: []meta.EpochStart{{Epoch: 0, StartOffset: 963}, {Epoch: 2, StartOffset: 1500}}},
	}
)

// TestManifestGolden: what this version writes is exactly the golden
// files (a change to the bucket format shows in review as a change to
// them, and needs a new version), and every version ever written reads
// back as the same topic and segments.
func TestManifestGolden(t *testing.T) {
	topic, manifest, err := encodeManifests(goldenTopic, 1, 0, goldenSegments, time.UnixMilli(1764000004000))
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]byte{"topic.v1.json": topic, "manifest.v1.json": manifest} {
		path := filepath.Join("testdata", name)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s changed; a new bucket format needs a new version:\n%s", name, got)
		}
	}
	for _, version := range []string{"v0", "v1"} {
		b, err := os.ReadFile(filepath.Join("testdata", "topic."+version+".json"))
		if err != nil {
			t.Fatal(err)
		}
		tm, err := DecodeTopicManifest(b)
		if err != nil {
			t.Fatalf("%s topic.json: %v", version, err)
		}
		if got, err := tm.Topic(); err != nil || !reflect.DeepEqual(got, goldenTopic) {
			t.Fatalf("%s topic.json: %+v, %v", version, got, err)
		}
		if b, err = os.ReadFile(filepath.Join("testdata", "manifest."+version+".json")); err != nil {
			t.Fatal(err)
		}
		pm, err := DecodePartitionManifest(b)
		if err != nil {
			t.Fatalf("%s manifest.json: %v", version, err)
		}
		if got := pm.TierSegments(); pm.Partition != 1 || pm.Topic != "orders" || !reflect.DeepEqual(got, goldenSegments) {
			t.Fatalf("%s manifest.json: %+v", version, got)
		}
	}
}

// TestDecodeRejectsBadManifests: corrupt, hostile or future bucket
// objects are refused with ErrBadManifest, never used.
func TestDecodeRejectsBadManifests(t *testing.T) {
	good, err := os.ReadFile("testdata/manifest.v1.json")
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	segment := func(m map[string]any, i int) map[string]any { return m["segments"].([]any)[i].(map[string]any) }
	for name, b := range map[string][]byte{
		"not json":       []byte("{\"version\": 1, \"segm"),
		"empty":          nil,
		"future version": edit(func(m map[string]any) { m["version"] = 2 }),
		"bad topic id":   edit(func(m map[string]any) { m["topic_id"] = "zz" }),
		"negative start": edit(func(m map[string]any) { m["log_start_offset"] = -5 }),
		"other partition": edit(func(m map[string]any) {
			segment(m, 0)["object_key"] = "orders-0102030405060708090a0b0c0d0e0f10/2/0-0.log"
		}),
		"other topic": edit(func(m map[string]any) {
			segment(m, 0)["object_key"] = "secret-0102030405060708090a0b0c0d0e0f10/1/0-0.log"
		}),
		"climbs out": edit(func(m map[string]any) {
			segment(m, 0)["object_key"] = "orders-0102030405060708090a0b0c0d0e0f10/1/../../x.log"
		}),
		"out of order": edit(func(m map[string]any) { segment(m, 1)["base_offset"] = 0 }),
		"last before base": edit(func(m map[string]any) {
			segment(m, 1)["last_offset"] = 10
		}),
		"negative epoch": edit(func(m map[string]any) { segment(m, 0)["leader_epoch"] = -1 }),
		"epoch outside": edit(func(m map[string]any) {
			segment(m, 1)["epochs"] = []any{map[string]any{"epoch": 1, "start_offset": 5000}}
		}),
	} {
		if _, err := DecodePartitionManifest(b); !errors.Is(err, ErrBadManifest) {
			t.Errorf("%s: %v, want ErrBadManifest", name, err)
		}
	}
	v0, err := os.ReadFile("testdata/manifest.v0.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodePartitionManifest(bytes.Replace(v0, []byte(`"Partition": 1`), []byte(`"Partition": 2`), 1)); !errors.Is(err, ErrBadManifest) {
		t.Errorf("v0 segment of another partition: %v", err)
	}
	for name, b := range map[string]string{
		"no partitions":   `{"version":1,"name":"t","id":"0102030405060708090a0b0c0d0e0f10","partitions":0,"replication_factor":1}`,
		"huge partitions": `{"version":1,"name":"t","id":"0102030405060708090a0b0c0d0e0f10","partitions":2000000000,"replication_factor":1}`,
		"bad name":        `{"version":1,"name":"a/b","id":"0102030405060708090a0b0c0d0e0f10","partitions":1,"replication_factor":1}`,
		"bad id":          `{"version":1,"name":"t","id":"01","partitions":1,"replication_factor":1}`,
		"future":          `{"version":7,"name":"t","id":"0102030405060708090a0b0c0d0e0f10","partitions":1,"replication_factor":1}`,
		"array":           `[]`,
	} {
		if _, err := DecodeTopicManifest([]byte(b)); !errors.Is(err, ErrBadManifest) {
			t.Errorf("topic.json %s: %v, want ErrBadManifest", name, err)
		} else if name == "future" && !strings.Contains(err.Error(), "upgrade") {
			t.Errorf("a newer version's error does not say what to do: %v", err)
		}
	}
}

// FuzzDecodeManifest: decoding any bytes as either object never panics;
// what decodes passes the checks, and encoding it and decoding again
// gives the same manifest.
func FuzzDecodeManifest(f *testing.F) {
	for _, name := range []string{"topic.v0.json", "topic.v1.json", "manifest.v0.json", "manifest.v1.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if pm, err := DecodePartitionManifest(b); err == nil {
			again, err := json.Marshal(pm)
			if err != nil {
				t.Fatal(err)
			}
			pm2, err := DecodePartitionManifest(again)
			if err != nil || !reflect.DeepEqual(pm, pm2) {
				t.Fatalf("re-decoding %s: %+v, %v", again, pm2, err)
			}
		} else if !errors.Is(err, ErrBadManifest) {
			t.Fatalf("manifest error %v is not ErrBadManifest", err)
		}
		if tm, err := DecodeTopicManifest(b); err == nil {
			again, _ := json.Marshal(tm)
			tm2, err := DecodeTopicManifest(again)
			if err != nil || !reflect.DeepEqual(tm, tm2) {
				t.Fatalf("re-decoding %s: %+v, %v", again, tm2, err)
			}
		} else if !errors.Is(err, ErrBadManifest) {
			t.Fatalf("topic error %v is not ErrBadManifest", err)
		}
	})
}
