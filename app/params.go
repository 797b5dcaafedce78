package app

import (
	"math"
	"net/http"
	"strconv"
)

// Ranges of the API's values (liftride-api.md and the service contract).
const (
	maxDay    = 366
	maxTime   = 1440
	minSeason = 1000
	maxSeason = 9999
	maxID     = math.MaxInt32
)

// parseID parses a decimal ID in 1..maxID named name.
func parseID(name, s string) (int, error) {
	n, ok := parseDigits(s)
	if !ok || n < 1 || n > maxID {
		return 0, badRequest("%s must be an integer from 1 to %d, got %q", name, maxID, s)
	}
	return n, nil
}

// parseDay parses a day of the year, 1..366.
func parseDay(name, s string) (int, error) {
	n, ok := parseDigits(s)
	if !ok || n < 1 || n > maxDay {
		return 0, badRequest("%s must be a day of the year from 1 to %d, got %q", name, maxDay, s)
	}
	return n, nil
}

// parseSeason parses a season: a four-digit year such as "2025".
func parseSeason(name, s string) (int, error) {
	n, ok := parseDigits(s)
	if !ok || len(s) != 4 || n < minSeason {
		return 0, badRequest("%s must be a four-digit year such as \"2025\", got %q", name, s)
	}
	return n, nil
}

// parseDigits parses a non-empty string of ASCII digits (no sign, no
// spaces) of at most 10 digits.
func parseDigits(s string) (int, bool) {
	if len(s) == 0 || len(s) > 10 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// pathIDs parses the named path values with their parsers, in order.
type pathParser struct {
	r   *http.Request
	err error
}

func (p *pathParser) id(name string) int     { return p.do(name, parseID) }
func (p *pathParser) day(name string) int    { return p.do(name, parseDay) }
func (p *pathParser) season(name string) int { return p.do(name, parseSeason) }

func (p *pathParser) do(name string, parse func(string, string) (int, error)) int {
	if p.err != nil {
		return 0
	}
	n, err := parse(name, p.r.PathValue(name))
	p.err = err
	return n
}
