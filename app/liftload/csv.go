package liftload

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
)

// csvHeader is the first line of the per-request CSV.
const csvHeader = "start_unix_ms,type,latency_ms,code,attempts\n"

// WriteCSV writes one line per record to w: start time (Unix ms), type,
// latency in ms (3 decimals), last status code (0: transport error),
// attempts.
func WriteCSV(w io.Writer, recs []Record) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := bw.WriteString(csvHeader); err != nil {
		return err
	}
	var line []byte
	for _, r := range recs {
		line = appendCSV(line[:0], r)
		if _, err := bw.Write(line); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func appendCSV(b []byte, r Record) []byte {
	b = strconv.AppendInt(b, r.Start/1e6, 10)
	b = append(b, ',')
	b = append(b, r.Kind.String()...)
	b = append(b, ',')
	b = strconv.AppendFloat(b, float64(r.Latency.Microseconds())/1000, 'f', 3, 64)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(r.Code), 10)
	b = append(b, ',')
	b = strconv.AppendUint(b, uint64(r.Attempts), 10)
	return append(b, '\n')
}

// writeCSVFile writes recs to a new file at path.
func writeCSVFile(path string, recs []Record) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("liftload: csv: %w", err)
	}
	if err := WriteCSV(f, recs); err != nil {
		f.Close()
		return fmt.Errorf("liftload: csv %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("liftload: csv %s: %w", path, err)
	}
	return nil
}
