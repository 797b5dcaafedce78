// Package liftload is the standard load test of the lift-ride service
// (the Ski Data API v2.0 of /work/shared/liftride-api.md): it POSTs
// generated lift rides, runs the GET phase, verifies the service's answers
// exactly against the generated rides, and reports throughput, latency and a
// Little's-law prediction. cmd/liftload is its thin main.
//
// # The run
//
//  1. Seasons: POST /resorts/{id}/seasons {"year":"S"} for every resort the
//     generator uses (201 also when the season exists).
//  2. Little's-law warm-up: one thread sends [Config.LittlesSample] POSTs.
//     They are COUNTED IN [Config.Total]: the run sends exactly Total POSTs.
//     Their mean latency W predicts each phase's throughput as
//     threads / W (Little's law with no queueing).
//  3. Phase 1: [Config.InitialThreads] threads each send
//     [Config.InitialPerThread] POSTs.
//  4. Phase 2: [Config.Threads] threads send the rest.
//  5. Verification (optional): wait for GET /queue to report 0 pending
//     events, then compare endpoint 7, the per resort-day totals endpoint and
//     endpoint 2 with the figures computed from the generated rides.
//  6. GET phase (optional): endpoints 7, 2 and 3 in turn, each with
//     [Config.GetWorkers] workers × [Config.GetIterations] requests, the
//     workers' starts spread evenly over [Config.GetRamp].
//
// Every thread sends its next request as soon as the previous one returns.
//
// # Events
//
// One generator goroutine makes every ride from [Config.Seed] and feeds the
// threads through a buffered channel; it pre-renders each ride's path and
// JSON body so the senders only send. The same seed, data ranges and Total
// give the same set of rides (which thread sends which ride is not fixed),
// so the verifier regenerates the rides from the seed instead of keeping
// them, and a run can be replayed from the parameters it prints first.
// A random generator can produce the same ride (resort, season, day, skier,
// lift, time) twice; the service counts it once, and so does the verifier.
//
// # Requests, retries and what counts as success
//
// Requests go round-robin over [Config.URLs]; a retry goes to the next URL.
// A transport error or a 4xx/5xx answer is retried up to [Config.Retries]
// times (so at most Retries+1 attempts), waiting [Config.RetryBackoff],
// doubled each retry and capped at 2 s, before each retry. A request counts
// as failed only when every attempt failed. A POST succeeds on 2xx. A GET
// succeeds on 2xx or 404: a 404 for a skier or day with no rides is a valid
// answer of the API. A request's latency spans all its attempts, backoff
// included; its record carries the number of attempts.
//
// # Records and outputs
//
// Every POST and GET-phase request leaves one compact [Record] (24 bytes;
// 600,000 rides take about 15 MB). The CSV ([Config.CSVPath]) has the
// header
//
//	start_unix_ms,type,latency_ms,code,attempts
//
// with type POST, GET7, GET2 or GET3 and code 0 for a transport error. The
// chart ([Config.ChartPath]) plots completed requests per second over the run,
// one line per type, drawn with gonum.org/v1/plot.
//
// Seasons setup, queue polling and verification reads are not recorded;
// verification reads send "Cache-Control: no-cache".
//
// The report also gives the load client's own CPU time per request (from
// getrusage), so a run on a machine shared with the servers shows whether
// the client was a bottleneck.
//
// # Concurrency
//
// A [Runner] runs one load test at a time; its methods are not safe for
// concurrent use. Every goroutine it starts has ended when Run returns.
package liftload
