package liftload

import (
	"bytes"
	"encoding/csv"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWriteCSV(t *testing.T) {
	recs := []Record{
		{Start: 1_700_000_000_123_456_789, Latency: 2345 * time.Microsecond, Code: 201, Attempts: 1, Kind: KindPost},
		{Start: 1_700_000_001_000_000_000, Latency: 12 * time.Millisecond, Code: 404, Attempts: 1, Kind: KindGet2},
		{Start: 1_700_000_002_999_999_999, Latency: 500 * time.Microsecond, Code: 0, Attempts: 6, Kind: KindGet3, Failed: true},
		{Start: 1_700_000_003_000_000_000, Latency: time.Second, Code: 200, Attempts: 2, Kind: KindGet7},
	}
	var b bytes.Buffer
	if err := WriteCSV(&b, recs); err != nil {
		t.Fatal(err)
	}
	want := `start_unix_ms,type,latency_ms,code,attempts
1700000000123,POST,2.345,201,1
1700000001000,GET2,12.000,404,1
1700000002999,GET3,0.500,0,6
1700000003000,GET7,1000.000,200,2
`
	if b.String() != want {
		t.Errorf("CSV =\n%s\nwant\n%s", b.String(), want)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil || len(rows) != 5 {
		t.Fatalf("CSV does not parse as 5 rows: %v", err)
	}
}

func TestRunner_WritesCSVAndChart(t *testing.T) {
	f := newFakeService()
	srv := f.start(t)
	dir := t.TempDir()
	c := testConfig(srv.URL)
	c.Total, c.LittlesSample = 300, 10
	c.GetPhase = true
	c.CSVPath = filepath.Join(dir, "run.csv")
	c.ChartPath = filepath.Join(dir, "run.png")
	rep, _ := run(t, c)
	if !rep.OK() {
		t.Fatalf("run not OK: %v", rep.Err)
	}
	data, err := os.ReadFile(c.CSVPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if want := 1 + 300 + 3*c.GetWorkers*c.GetIterations; len(lines) != want {
		t.Errorf("CSV has %d lines, want %d", len(lines), want)
	}
	types := map[string]int{}
	for _, l := range lines[1:] {
		fields := strings.Split(l, ",")
		if len(fields) != 5 {
			t.Fatalf("CSV line %q has %d fields, want 5", l, len(fields))
		}
		types[fields[1]]++
	}
	if types["POST"] != 300 || types["GET7"] != 40 || types["GET2"] != 40 || types["GET3"] != 40 {
		t.Errorf("CSV types %v, want 300 POST and 40 of each GET", types)
	}
	pf, err := os.Open(c.ChartPath)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	img, err := png.Decode(pf)
	if err != nil {
		t.Fatalf("chart is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 200 {
		t.Errorf("chart is %v, want at least 500×200", b)
	}
}

func TestPerSecond(t *testing.T) {
	s := int64(1_000_000_000_000)
	recs := []Record{
		{Start: s, Latency: 10 * time.Millisecond, Kind: KindPost},
		{Start: s + 900e6, Latency: 200 * time.Millisecond, Kind: KindPost}, // ends in second 1
		{Start: s + 2e9, Latency: time.Millisecond, Kind: KindPost},
		{Start: s + 1e9, Latency: time.Millisecond, Kind: KindGet3},
	}
	got := perSecond(recs, s)
	if !slices.Equal(got[KindPost], []float64{1, 1, 1}) || !slices.Equal(got[KindGet3], []float64{0, 1}) || got[KindGet7] != nil {
		t.Errorf("perSecond = %v", got)
	}
}

func TestSummarize(t *testing.T) {
	var recs []Record
	for i := 1; i <= 100; i++ {
		recs = append(recs, Record{Start: int64(i) * 1e6, Latency: time.Duration(i) * time.Millisecond, Failed: i == 50})
	}
	s := summarize(recs, 2*time.Second)
	want := Summary{
		Requests: 100, Successes: 99, Failures: 1, Wall: 2 * time.Second, Throughput: 50,
		Mean: 50500 * time.Microsecond, Median: 50 * time.Millisecond, P99: 99 * time.Millisecond,
		Min: time.Millisecond, Max: 100 * time.Millisecond,
	}
	if s != want {
		t.Errorf("summarize =\n%+v\nwant\n%+v", s, want)
	}
	if got := summarize(nil, time.Second); got.Requests != 0 || got.Throughput != 0 {
		t.Errorf("summarize(nil) = %+v", got)
	}
}

func TestLittlesPrediction(t *testing.T) {
	for _, tc := range []struct {
		threads int
		w       time.Duration
		want    float64
	}{
		{32, 4 * time.Millisecond, 8000},
		{1, 2 * time.Millisecond, 500},
		{64, 10 * time.Millisecond, 6400},
		{128, 500 * time.Microsecond, 256_000},
		{32, 0, 0},
	} {
		if got := LittlesPrediction(tc.threads, tc.w); got != tc.want {
			t.Errorf("LittlesPrediction(%d, %v) = %v, want %v", tc.threads, tc.w, got, tc.want)
		}
	}
}
