package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// getResorts lists the resorts (endpoint 4).
func (a *App) getResorts(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	resorts, err := a.catalog.listResorts(ctx)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Resorts []resortInfo `json:"resorts"`
	}{resorts})
	return nil
}

// getSeasons lists a resort's seasons (endpoint 5).
func (a *App) getSeasons(w http.ResponseWriter, r *http.Request) error {
	p := pathParser{r: r}
	resort := p.id("resortID")
	if p.err != nil {
		return p.err
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	seasons, err := a.catalog.listSeasons(ctx, resort)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Seasons []string `json:"seasons"`
	}{seasons})
	return nil
}

const seasonExample = `{"year": "2025"}`

// postSeason adds a season to a resort (endpoint 6); adding an existing
// season again is a success.
func (a *App) postSeason(w http.ResponseWriter, r *http.Request) error {
	p := pathParser{r: r}
	resort := p.id("resortID")
	if p.err != nil {
		return p.err
	}
	var body struct {
		Year json.RawMessage `json:"year"`
	}
	if err := decodeBody(w, r, &body, seasonExample); err != nil {
		return err
	}
	if len(body.Year) == 0 {
		return badRequest("field year is missing; send %s", seasonExample)
	}
	// The API's year is a string; a bare number is accepted too.
	var s string
	if json.Unmarshal(body.Year, &s) != nil {
		s = string(body.Year)
	}
	year, err := parseSeason("year", s)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	if err := a.catalog.addSeason(ctx, resort, year); err != nil {
		return err
	}
	created(w)
	return nil
}

// resortDay parses and checks the resort, season and day of the resort-day
// endpoints: 400 for a bad value, 404 for an unknown resort or season.
func (a *App) resortDay(ctx context.Context, p *pathParser) (resort, season, day int, name string, err error) {
	resort, season, day = p.id("resortID"), p.season("seasonID"), p.day("dayID")
	if p.err != nil {
		return 0, 0, 0, "", p.err
	}
	name, err = a.catalog.checkSeason(ctx, resort, season)
	return resort, season, day, name, err
}

// noCache reports whether the request asks to bypass the cache.
func noCache(r *http.Request) bool {
	return strings.Contains(strings.ToLower(r.Header.Get("Cache-Control")), "no-cache")
}

// dayTotals reads (or takes from the cache) a resort-day's totals.
func (a *App) dayTotals(ctx context.Context, r *http.Request, resort, season, day int) (dayTotals, error) {
	return cached(ctx, a.cache, fmt.Sprintf("totals/%d/%d/%d", resort, season, day), noCache(r),
		func(ctx context.Context) (dayTotals, error) { return a.read.dayTotals(ctx, resort, season, day) })
}

// getUniqueSkiers answers the number of unique skiers at a resort on a day
// (endpoint 7). The field "time" holds the resort's name, as the API has it.
// Cached for up to Config.CacheTTL.
func (a *App) getUniqueSkiers(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	resort, season, day, name, err := a.resortDay(ctx, &pathParser{r: r})
	if err != nil {
		return err
	}
	t, err := a.dayTotals(ctx, r, resort, season, day)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Time      string `json:"time"`
		NumSkiers int64  `json:"numSkiers"`
	}{name, t.Skiers})
	return nil
}

// getDayTotals answers a resort-day's distinct rides and their vertical.
// Cached for up to Config.CacheTTL.
func (a *App) getDayTotals(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	resort, season, day, _, err := a.resortDay(ctx, &pathParser{r: r})
	if err != nil {
		return err
	}
	t, err := a.dayTotals(ctx, r, resort, season, day)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Resort   int    `json:"resortID"`
		Season   string `json:"seasonID"`
		Day      int    `json:"dayID"`
		NumRides int64  `json:"numRides"`
		Vert     int64  `json:"totalVert"`
	}{resort, seasonString(season), day, t.Rides, t.Vert})
	return nil
}

// getLiftRides answers the number of rides on a lift on a resort-day (Q5).
func (a *App) getLiftRides(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	p := &pathParser{r: r}
	lift := p.id("liftID") // every path value is checked before existence
	resort, season, day, _, err := a.resortDay(ctx, p)
	if err != nil {
		return err
	}
	n, err := a.read.liftRides(ctx, resort, season, day, lift)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Resort   int    `json:"resortID"`
		Season   string `json:"seasonID"`
		Day      int    `json:"dayID"`
		Lift     int    `json:"liftID"`
		NumRides int64  `json:"numRides"`
	}{resort, seasonString(season), day, lift, n})
	return nil
}

// getHours answers a resort-day's rides per hour of the ski day (Q6).
// Cached for up to Config.CacheTTL.
func (a *App) getHours(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	resort, season, day, _, err := a.resortDay(ctx, &pathParser{r: r})
	if err != nil {
		return err
	}
	hours, err := cached(ctx, a.cache, fmt.Sprintf("hours/%d/%d/%d", resort, season, day), noCache(r),
		func(ctx context.Context) ([]hourRides, error) { return a.read.hours(ctx, resort, season, day) })
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Resort int         `json:"resortID"`
		Season string      `json:"seasonID"`
		Day    int         `json:"dayID"`
		Hours  []hourRides `json:"hours"`
	}{resort, seasonString(season), day, hours})
	return nil
}
