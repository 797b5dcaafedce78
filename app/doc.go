// Package app is the lift-ride service: the Ski Data API v2.0 of
// /work/shared/liftride-api.md over Ridgeline, plus the extra query endpoints
// of the service/load-client contract, a queue built on Ridgeline for
// ingest, caching of aggregate reads, /statistics and /metrics.
//
// An [App] keeps no state that changes answers: every answer is read from
// Ridgeline, so any request can go to any replica and two replicas on one
// cluster answer alike. What a replica holds locally is either permanent
// once true (a resort or a season exists: neither is ever removed), bounded
// in staleness (the aggregate cache, default 1 s), or its own contribution
// to cluster-wide figures (its latency sums, published every second).
//
// # Endpoints
//
// The eight of the API, plus (see routes.go): Q1+Q2 GET
// /skiers/{skierID}/seasons/{seasonID}/days, Q3 GET
// /skiers/{skierID}/seasons/{seasonID}/days/{dayID}/lifts, Q5 GET
// /resorts/{resortID}/seasons/{seasonID}/day/{dayID}/lifts/{liftID}, Q6 GET
// …/day/{dayID}/hours, totals GET …/day/{dayID}/vertical, GET /queue,
// GET /metrics and GET /healthz. Choices where the API is silent: endpoint 2
// answers 0 for a day without rides (404 only for an unknown resort or a
// season the resort lacks); endpoint 3 answers one entry per season summed
// over the resorts asked for (seasons asked for are listed even at 0).
// Unknown paths and methods get 404 and 405 with a JSON message.
//
// # Data model
//
// A ride is (resort, season, day, skier, lift, time); the same six values
// are the same ride however often it is POSTed or re-delivered. Its
// vertical is lift × 10 m, stored with the ride. Keys use Ridgeline hash
// tags ({…}: only the tag picks the shard), so each group below is one
// shard and one Txn can update it atomically. Integers in keys that are
// scanned in order are zero-padded.
//
// Skier side, tag {s:B} with B = skier mod [SkierBuckets]; a skier's rides
// and totals are all in one shard, and a consumer batch puts many skiers of
// one bucket into one Txn:
//
//	{s:B}/r/<skier>/<season>/<day:03>/<time:04>/<resort>/<lift> = vertical   the ride (dedup marker), Q3
//	{s:B}/d/<skier>/<season>/<day:03>                         += vertical   skier-season-day, Q1 and Q2
//	{s:B}/t/<skier>/<resort>/<season>                         += vertical   skier-resort-season, endpoint 3
//	{s:B}/v/<skier>/<resort>/<season>/<day>                   += vertical   skier-resort-day, endpoint 2
//
// Resort-day side, striped so that a resort-day is not one hot key: tag
// {rd:<resort>:<season>:<day>:<k>} with stripe k = skier mod [Stripes]. A
// skier always falls in the same stripe, so unique skiers of a day are the
// sum of the stripes' counts. Queries read the [Stripes] stripes
// concurrently (a bounded fan-out):
//
//	{rd:…:k}/r/<skier>/<lift>/<time>   ride marker (dedup)
//	{rd:…:k}/u/<skier>                 skier seen that day (unique-skier marker)
//	{rd:…:k}/c/skiers                  += 1 per new skier        endpoint 7 (Q4)
//	{rd:…:k}/c/rides, /c/vert          += 1, += vertical          totals endpoint
//	{rd:…:k}/l/<lift>                  += 1                       Q5
//	{rd:…:k}/h/<hour:02>               += 1, hour = (time-1)/60   Q6
//
// Each side is applied by its own Txn, guarded by version compares: the ride
// markers (and the unique-skier markers of skiers not yet seen) must be
// absent, and the Txn creates them together with the counter additions. A
// Txn whose compare fails changed nothing; the applier reads which markers
// exist, drops those rides (duplicates) and retries. So every ride counts
// exactly once on each side, whatever is retried or re-delivered, and a
// retry after an unknown outcome is safe. Markers are never deleted.
//
// Catalogue, tag {meta}: resorts {meta}/resort/<id> = name (10 seeded at
// start-up with create-if-absent Puts, so replicas starting together do not
// conflict), seasons {meta}/season/<resort>/<year>, and each replica's
// heartbeat and latency sums {meta}/replica/<id>.
//
// # Ingest
//
// With [IngestSync], POST answers 201 once both sides of the ride are
// applied; concurrent POSTs are gathered for up to [QueueConfig.Linger] and
// applied together (one Apply, a few Txns, instead of two Txns each). With [IngestQueued] (the default) it answers 201 once the event
// is durably in the queue, which lives in Ridgeline itself: [Partitions]
// partitions, tag {q:<p>}. A replica's enqueuer gathers concurrent POSTs
// for up to [QueueConfig.Linger] (group commit) and writes them as one entry
// {q:p}/e/<unix nanos:20>/<replica>/<seq> holding many events, in one Txn
// with the partition's pending-event counter {q:p}/pending; every waiting
// POST gets 201 when that Txn is acknowledged, or 503 if it failed (a POST
// retried after an unknown outcome may be enqueued twice, and is still
// counted once). A partition is consumed by the holder of its lease
// {q:p}/lease (owner and expiry, taken and renewed with version compares, TTL
// [QueueConfig.LeaseTTL]); replicas share the partitions evenly (Partitions
// / live replicas each, by their heartbeats) and a dead replica's partitions
// are taken over once its leases expire. Each replica's consumer takes the
// oldest entries of all its partitions, applies their rides as one batch
// grouped by bucket and stripe (few Txns per many rides), then per
// partition deletes the entries and subtracts their rides from the pending
// counter in one Txn guarded by the entries' versions. Consumers run in
// both modes, so a replica restarted in sync mode still drains what a
// queued run left. GET /queue sums the pending counters and reports the age
// of the oldest entry.
//
// # Staleness
//
// Endpoint 7, the hours (Q6) and the totals are cached per replica for
// [Config.CacheTTL] (default 1 s); a request with "Cache-Control: no-cache"
// reads through and refreshes the cache. In queued mode a ride is visible
// to reads once a consumer applied it: consumers wait up to
// [QueueConfig.ConsumeLinger] (default 500 ms) between batches when there is
// no backlog, so normally well under a second after its 201, longer while
// the consumers work off a backlog (GET /queue shows the age of the oldest
// entry). /statistics merges the latency sums every replica publishes
// every [Config.StatsInterval], so other replicas' figures lag by up to that
// interval; the answering replica's own figures are current.
package app
