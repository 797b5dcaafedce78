package app

import (
	"context"
	"net/http"
	"slices"
)

const rideExample = `{"time": 217, "liftID": 21}`

// postRide records a lift ride (endpoint 1): 201 once it is durably queued
// (IngestQueued) or applied (IngestSync).
func (a *App) postRide(w http.ResponseWriter, r *http.Request) error {
	p := pathParser{r: r}
	ride := Ride{Resort: p.id("resortID"), Season: p.season("seasonID"), Day: p.day("dayID"), Skier: p.id("skierID")}
	if p.err != nil {
		return p.err
	}
	var body struct {
		Time *int64 `json:"time"`
		Lift *int64 `json:"liftID"`
	}
	if err := decodeBody(w, r, &body, rideExample); err != nil {
		return err
	}
	switch {
	case body.Time == nil:
		return badRequest("field time is missing; send %s", rideExample)
	case body.Lift == nil:
		return badRequest("field liftID is missing; send %s", rideExample)
	case *body.Time < 1 || *body.Time > maxTime:
		return badRequest("time must be the minute of the ski day, 1 to %d, got %d", maxTime, *body.Time)
	case *body.Lift < 1 || *body.Lift > maxID:
		return badRequest("liftID must be an integer from 1 to %d, got %d", maxID, *body.Lift)
	}
	ride.Time, ride.Lift = int(*body.Time), int(*body.Lift)

	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	if _, err := a.catalog.checkSeason(ctx, ride.Resort, ride.Season); err != nil {
		return err
	}
	b := a.enq
	if b == nil {
		b = a.syncB
	}
	if err := b.Enqueue(ctx, ride); err != nil {
		return err
	}
	created(w)
	return nil
}

// getSkierDayVertical answers the skier's vertical at a resort on a day
// (endpoint 2) as a bare integer; 0 when the skier did not ride that day.
func (a *App) getSkierDayVertical(w http.ResponseWriter, r *http.Request) error {
	p := pathParser{r: r}
	resort, season, day, skier := p.id("resortID"), p.season("seasonID"), p.day("dayID"), p.id("skierID")
	if p.err != nil {
		return p.err
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	if _, err := a.catalog.checkSeason(ctx, resort, season); err != nil {
		return err
	}
	v, err := a.read.skierDayVertical(ctx, skier, resort, season, day)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// getSkierVertical answers the skier's vertical per season at the resorts
// asked for (endpoint 3): one entry per season, summed over the resorts;
// with season parameters exactly those seasons (0 when no rides), without
// them every season with rides, ascending.
func (a *App) getSkierVertical(w http.ResponseWriter, r *http.Request) error {
	p := pathParser{r: r}
	skier := p.id("skierID")
	if p.err != nil {
		return p.err
	}
	q := r.URL.Query()
	if len(q["resort"]) == 0 {
		return badRequest("query parameter resort is required (repeatable), e.g. /skiers/%d/vertical?resort=1&season=2025", skier)
	}
	var resorts, seasons []int
	for _, s := range q["resort"] {
		id, err := parseID("resort", s)
		if err != nil {
			return err
		}
		resorts = append(resorts, id)
	}
	for _, s := range q["season"] {
		y, err := parseSeason("season", s)
		if err != nil {
			return err
		}
		seasons = append(seasons, y)
	}
	slices.Sort(resorts)
	resorts = slices.Compact(resorts)
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	for _, id := range resorts {
		if _, err := a.catalog.resortName(ctx, id); err != nil {
			return err
		}
	}
	out, err := a.read.skierVertical(ctx, skier, resorts, seasons)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Resorts []seasonVert `json:"resorts"`
	}{out})
	return nil
}

// getSkierDays answers the days the skier skied in a season and the
// vertical of each, over all resorts (Q1, Q2).
func (a *App) getSkierDays(w http.ResponseWriter, r *http.Request) error {
	p := pathParser{r: r}
	skier, season := p.id("skierID"), p.season("seasonID")
	if p.err != nil {
		return p.err
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	days, err := a.read.skierDays(ctx, skier, season)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Skier   int       `json:"skierID"`
		Season  string    `json:"seasonID"`
		NumDays int       `json:"numDays"`
		Days    []dayVert `json:"days"`
	}{skier, seasonString(season), len(days), days})
	return nil
}

// getSkierLifts answers the skier's rides of a day, by time (Q3).
func (a *App) getSkierLifts(w http.ResponseWriter, r *http.Request) error {
	p := pathParser{r: r}
	skier, season, day := p.id("skierID"), p.season("seasonID"), p.day("dayID")
	if p.err != nil {
		return p.err
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestTimeout)
	defer cancel()
	rides, err := a.read.skierRides(ctx, skier, season, day)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Skier  int        `json:"skierID"`
		Season string     `json:"seasonID"`
		Day    int        `json:"dayID"`
		Rides  []liftRide `json:"rides"`
	}{skier, seasonString(season), day, rides})
	return nil
}
