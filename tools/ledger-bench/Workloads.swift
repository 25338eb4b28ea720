import CLMDB
import Foundation
import Ledger
import Synchronization

/// What to run. Every count is spelled out here; `--quick` shrinks them for a smoke run.
struct BenchConfiguration: Sendable {
    /// Events of the batched-append workload (ledger and raw alike).
    var batchedEvents = 200_000
    /// Events per request = per transaction in the batched workload.
    var batchEvents = 1_000
    /// Events of the group-commit workload through the ledger.
    var groupEvents = 20_000
    /// Concurrent single-event appenders of the group-commit workload.
    var groupAppenders = 64
    /// Events of the raw one-per-transaction ceiling.
    var rawSingleEvents = 2_000
    /// Streams of the read ledger, and events per stream.
    var readStreams = 100_000
    var readVersions = 10
    /// Timed stream reads, after untimed warm-up reads of other random streams.
    var readQueries = 10_000
    var readWarmupQueries = 2_000
    /// Ledger and ceiling alternate this many times in the append workloads.
    var rounds = 5

    static let quick = BenchConfiguration(
        batchedEvents: 50_000, groupEvents: 5_000, rawSingleEvents: 500, readStreams: 10_000)

    var readEvents: Int { readStreams * readVersions }
}

struct BatchedAppendResult {
    var events: Int
    var transactions: Int
    var ledgerSeconds: Double
    var rawSeconds: Double
    var meanRecordBytes: Double
    /// Bytes written to the data file over the phase (pages of every table, and meta pages).
    var ledgerWrittenBytes: Int
    var rawWrittenBytes: Int
    /// Raw LMDB making the ledger's three puts per event (log, stream index, idempotency index):
    /// the cost of the schema alone, without the ledger's code.
    var schemaSeconds: Double
    var schemaWrittenBytes: Int
    /// Waiting, after each ledger round, for the index merge it left running (merges run
    /// beside the writer), before the raw rounds start.
    var mergeWaitSeconds: Double = 0
    var ledgerRate: Double { Double(events) / ledgerSeconds }
    var rawRate: Double { Double(events) / rawSeconds }
    var schemaRate: Double { Double(events) / schemaSeconds }
}

struct GroupCommitResult {
    var events: Int
    var appenders: Int
    var ledgerSeconds: Double
    var commits: Int
    var appendLatency: Percentiles
    var rawEvents: Int
    var rawSeconds: Double
    var ledgerWrittenBytes: Int
    var rawWrittenBytes: Int
    var ledgerRate: Double { Double(events) / ledgerSeconds }
    var rawRate: Double { Double(rawEvents) / rawSeconds }
}

struct StreamReadResult {
    var events: Int
    var streams: Int
    var queries: Int
    /// nil when an existing ledger was reused.
    var buildSeconds: Double?
    var ledger: Percentiles
    var raw: Percentiles
}

struct BenchFailure: Error, CustomStringConvertible {
    let description: String
}

/// Removes (if present) and recreates `path`: only ever called on the bench's own subfolders.
func freshDirectory(_ path: String) throws {
    let files = FileManager.default
    if files.fileExists(atPath: path) { try files.removeItem(atPath: path) }
    try files.createDirectory(atPath: path, withIntermediateDirectories: true)
}

// MARK: 1. Batched append

/// 1,000-event requests awaited one after another, so each request is one transaction.
/// The ceiling replays the very record bytes the ledger stored, read back from its `log` table.
/// A second, "schema" ceiling makes the ledger's three puts per event in raw LMDB (the record
/// and both index keys), so the cost of the indexes shows apart from the cost of the code.
/// Ledger and ceilings alternate in rounds, so a drift of the disk's speed during the run (a
/// shared virtual disk drifts a lot) hits all alike.
/// `onlyRecords`: skip the ceiling (the group workload only needs the records).
func runBatchedAppend(in directory: String, configuration: BenchConfiguration, onlyRecords: Bool = false) async throws
    -> (BatchedAppendResult, RecordBytes)
{
    let ledgerPath = directory + "/batched.ledger"
    let rawPath = directory + "/batched-raw"
    let schemaPath = directory + "/batched-raw-indexed"
    for path in [ledgerPath, rawPath, schemaPath] { try freshDirectory(path) }
    let n = configuration.batchedEvents
    let batch = configuration.batchEvents
    var rng = SplitMix64(seed: 1)
    let requests: [[AppendEntry]] = stride(from: 0, to: n, by: batch).map { start in
        (start..<min(start + batch, n)).map { i in
            AppendEntry(BenchEvents.event(stream: BenchEvents.invoiceKey(UInt64(i), namespace: 1), rng: &rng))
        }
    }
    let rounds = min(configuration.rounds, requests.count)

    Progress.say("batched append: \(Format.grouped(n)) events, \(batch) per transaction, ledger and raw alternating in \(rounds) rounds")
    let ledger = try Ledger.open(at: ledgerPath)
    defer { ledger.close() }
    let ledgerLog = try RawEnvironment(path: ledgerPath, flags: MDB_RDONLY | MDB_NOLOCK)
    let raw = try RawEnvironment(path: rawPath, flags: 0)
    let rawTable = try raw.openTable("events", create: true)
    let schema = try RawEnvironment(path: schemaPath, flags: 0)
    let schemaTables = (
        log: try schema.openTable("log", create: true), streams: try schema.openTable("streams", create: true),
        idempotency: try schema.openTable("idempotency", create: true))
    var result = BatchedAppendResult(
        events: n, transactions: requests.count, ledgerSeconds: 0, rawSeconds: 0, meanRecordBytes: 0,
        ledgerWrittenBytes: 0, rawWrittenBytes: 0, schemaSeconds: 0, schemaWrittenBytes: 0)
    var records = RecordBytes()
    for round in 0..<rounds {
        let roundRequests = requests[(requests.count * round / rounds)..<(requests.count * (round + 1) / rounds)]
        var written = WrittenBytes.now()
        let started = Monotonic.nanoseconds()
        for request in roundRequests {
            let appended = try await ledger.append(request)
            guard appended.newCount == request.count else {
                throw BenchFailure(description: "batched append stored \(appended.newCount) of \(request.count)")
            }
        }
        result.ledgerSeconds += Monotonic.seconds(since: started)
        // An index merge may still run beside the writer: let it finish before the raw rounds,
        // so it neither slows them nor goes unseen (its wait is reported).
        let waitStarted = Monotonic.nanoseconds()
        ledger.waitForIndexMerge()
        result.mergeWaitSeconds += Monotonic.seconds(since: waitStarted)
        result.ledgerWrittenBytes += WrittenBytes.now() - written

        let firstPosition = records.count + 1
        let roundEvents = roundRequests.reduce(0) { $0 + $1.count }
        let roundRecords = try ledgerLog.values(of: "log", from: UInt64(firstPosition), limit: roundEvents)
        guard roundRecords.count == roundEvents else {
            throw BenchFailure(description: "read back \(roundRecords.count) records of \(roundEvents)")
        }
        records.append(contentsOf: roundRecords)
        if !onlyRecords {
            written = WrittenBytes.now()
            result.rawSeconds += try raw.append(roundRecords, firstPosition: firstPosition, into: rawTable, batch: batch)
            result.rawWrittenBytes += WrittenBytes.now() - written

            var indexes = IndexPuts(
                streams: schemaTables.streams, idempotency: schemaTables.idempotency, streamKeys: RecordBytes(),
                idempotencyKeys: RecordBytes())
            for event in roundRequests.joined().map(\.event) {
                // Every stream of this workload is new: its one event is version 1.
                indexes.streamKeys.append(Array(event.stream.utf8) + [0, 0, 0, 0, 0, 0, 0, 0, 1])
                indexes.idempotencyKeys.append(Array(event.source.utf8) + [0] + Array(event.id.utf8))
            }
            written = WrittenBytes.now()
            result.schemaSeconds += try schema.append(
                roundRecords, firstPosition: firstPosition, into: schemaTables.log, batch: batch, indexes: indexes)
            result.schemaWrittenBytes += WrittenBytes.now() - written
        }
        Progress.say("  \(Format.grouped(records.count)) events")
    }
    result.meanRecordBytes = records.meanBytes
    return (result, records)
}

// MARK: 2. Group commit

/// Hands out event numbers to the appenders.
private final class Ticket: Sendable {
    let next: Atomic<Int>
    init(first: Int) { next = Atomic(first) }
}

/// Many tasks, each awaiting its single-event append before the next: the writer folds what
/// is queued into one transaction, so they share fsyncs. The ceiling commits one event per
/// transaction, which is what each of them would cost alone. Alternating rounds, as above.
func runGroupCommit(in directory: String, configuration: BenchConfiguration, records: RecordBytes) async throws
    -> GroupCommitResult
{
    let ledgerPath = directory + "/group.ledger"
    let rawPath = directory + "/group-raw"
    try freshDirectory(ledgerPath)
    try freshDirectory(rawPath)
    let n = configuration.groupEvents
    var rng = SplitMix64(seed: 2)
    let entries = (0..<n).map { i in
        AppendEntry(BenchEvents.event(stream: BenchEvents.invoiceKey(UInt64(i), namespace: 2), rng: &rng))
    }
    let rawRecords = records.prefix(configuration.rawSingleEvents)
    let rounds = configuration.rounds

    Progress.say(
        "group commit: \(Format.grouped(n)) single-event appends from \(configuration.groupAppenders) tasks;"
            + " \(Format.grouped(rawRecords.count)) raw one-event transactions; alternating in \(rounds) rounds")
    let ledger = try Ledger.open(at: ledgerPath)
    defer { ledger.close() }
    let raw = try RawEnvironment(path: rawPath, flags: 0)
    let rawTable = try raw.openTable("events", create: true)
    var latencies: [UInt64] = []
    var ledgerSeconds = 0.0
    var rawSeconds = 0.0
    var ledgerWrittenBytes = 0
    var rawWrittenBytes = 0
    for round in 0..<rounds {
        let ticket = Ticket(first: n * round / rounds)
        let end = n * (round + 1) / rounds
        var written = WrittenBytes.now()
        let started = Monotonic.nanoseconds()
        latencies += try await withThrowingTaskGroup(of: [UInt64].self) { group in
            for _ in 0..<configuration.groupAppenders {
                group.addTask {
                    var mine: [UInt64] = []
                    while true {
                        let i = ticket.next.wrappingAdd(1, ordering: .relaxed).oldValue
                        if i >= end { break }
                        let sent = Monotonic.nanoseconds()
                        let result = try await ledger.append([entries[i]])
                        mine.append(Monotonic.nanoseconds() - sent)
                        guard result.newCount == 1 else { throw BenchFailure(description: "group append not stored") }
                    }
                    return mine
                }
            }
            var all: [UInt64] = []
            for try await part in group { all += part }
            return all
        }
        ledgerSeconds += Monotonic.seconds(since: started)
        ledgerWrittenBytes += WrittenBytes.now() - written

        let first = rawRecords.count * round / rounds
        let roundRecords = rawRecords.slice(first..<(rawRecords.count * (round + 1) / rounds))
        written = WrittenBytes.now()
        rawSeconds += try raw.append(roundRecords, firstPosition: first + 1, into: rawTable, batch: 1)
        rawWrittenBytes += WrittenBytes.now() - written
        Progress.say("  round \(round + 1) of \(rounds)")
    }

    // Every record of one commit carries that commit's recorded time, and fsync keeps commits
    // more than a microsecond apart: distinct recorded times count the transactions.
    var commitTimes = Set<Int64>()
    var position: UInt64 = 1
    while true {
        let chunk = try ledger.records(from: position, limit: 5_000)
        if chunk.isEmpty { break }
        for record in chunk { commitTimes.insert(record.recordedMicros) }
        position = chunk[chunk.count - 1].position + 1
    }
    guard latencies.count == n, position == UInt64(n) + 1 else {
        throw BenchFailure(description: "group commit stored \(position - 1) of \(n)")
    }

    return GroupCommitResult(
        events: n, appenders: configuration.groupAppenders, ledgerSeconds: ledgerSeconds, commits: commitTimes.count,
        appendLatency: Percentiles(nanoseconds: latencies), rawEvents: rawRecords.count, rawSeconds: rawSeconds,
        ledgerWrittenBytes: ledgerWrittenBytes, rawWrittenBytes: rawWrittenBytes)
}

// MARK: 3. Stream reads

/// The stream of read-ledger stream number `j`.
private func readStream(_ j: Int) -> String { BenchEvents.invoiceKey(UInt64(j), namespace: 3) }

/// A ledger of `readStreams` streams × `readVersions` events, appended version by version so
/// a stream's events lie far apart in the log; then `stream(key, fromVersion: 1, limit: 10)`
/// of random streams, timed one by one. The ceiling makes the same lookups with raw cursor
/// and get calls on the same files.
func runStreamReads(in directory: String, configuration: BenchConfiguration) async throws -> StreamReadResult {
    let total = configuration.readEvents
    let ledgerPath = directory + "/reads-\(total).ledger"
    try FileManager.default.createDirectory(atPath: ledgerPath, withIntermediateDirectories: true)
    var ledger = try Ledger.open(at: ledgerPath)
    defer { ledger.close() }
    let head = try ledger.headPosition()
    var buildSeconds: Double?
    let firstStreamVersion = try ledger.streamVersion(readStream(0))
    if head == 0 {
        buildSeconds = try await buildReadLedger(ledger, configuration: configuration)
        // Closing merges the index tail into the B-trees, where the raw ceiling looks too;
        // reads are timed on a ledger as a writer leaves it.
        ledger.close()
        ledger = try Ledger.open(at: ledgerPath)
    } else if head != UInt64(total) || firstStreamVersion != UInt64(configuration.readVersions) {
        throw BenchFailure(description: "\(ledgerPath) holds \(head) events, not the \(total) this run expects; delete it")
    } else {
        Progress.say("stream reads: reusing \(ledgerPath) (\(Format.grouped(total)) events)")
    }

    let limit = configuration.readVersions
    var rng = SplitMix64(seed: 4)
    let pick = { (count: Int) -> [String] in
        (0..<count).map { _ in readStream(Int(rng.next() % UInt64(configuration.readStreams))) }
    }
    let warmup = pick(configuration.readWarmupQueries)
    let timed = pick(configuration.readQueries)

    Progress.say("stream reads: \(Format.grouped(timed.count)) timed ledger.stream() calls")
    for stream in warmup { _ = try ledger.stream(stream, fromVersion: 1, limit: limit) }
    var ledgerLatencies: [UInt64] = []
    ledgerLatencies.reserveCapacity(timed.count)
    for stream in timed {
        let started = Monotonic.nanoseconds()
        let records = try ledger.stream(stream, fromVersion: 1, limit: limit)
        ledgerLatencies.append(Monotonic.nanoseconds() - started)
        guard records.count == limit, records[0].stream == stream, records[limit - 1].streamVersion == UInt64(limit) else {
            throw BenchFailure(description: "stream \(stream) read \(records.count) records, expected \(limit)")
        }
    }

    Progress.say("stream reads: \(Format.grouped(timed.count)) raw cursor seeks + \(limit) gets")
    // The `streams` index is in the ledger's index/ environment, the log in its own.
    let raw = try RawEnvironment(path: ledgerPath, flags: MDB_RDONLY | MDB_NOLOCK)
    let rawIndex = try RawEnvironment(path: ledgerPath + "/index", flags: MDB_RDONLY | MDB_NOLOCK)
    // The live runs (index/ meta `runs`, newest first; absent: slot 0 alone), oldest first.
    let runSlots = try rawIndex.value(of: "meta", key: Array("runs".utf8)).map { $0.map(Int.init) } ?? [0]
    let streams = try runSlots.reversed().map { slot in try rawIndex.openTable(slot == 0 ? "streams" : "streams.\(slot)", create: false) }
    let log = try raw.openTable("log", create: false)
    let seekKey = { (stream: String) -> [UInt8] in Array(stream.utf8) + [0, 0, 0, 0, 0, 0, 0, 0, 1] }
    _ = try raw.streamReadLatencies(keys: warmup.map(seekKey), limit: limit, index: rawIndex, streams: streams, log: log)
    let rawLatencies = try raw.streamReadLatencies(keys: timed.map(seekKey), limit: limit, index: rawIndex, streams: streams, log: log)

    return StreamReadResult(
        events: total, streams: configuration.readStreams, queries: timed.count, buildSeconds: buildSeconds,
        ledger: Percentiles(nanoseconds: ledgerLatencies), raw: Percentiles(nanoseconds: rawLatencies))
}

/// Appends version 1 of every stream, then version 2, ...: 1,000-event requests, each entry
/// expecting its stream's previous version.
private func buildReadLedger(_ ledger: Ledger, configuration: BenchConfiguration) async throws -> Double {
    let total = configuration.readEvents
    Progress.say("stream reads: building a ledger of \(Format.grouped(total)) events in \(Format.grouped(configuration.readStreams)) streams")
    let streams = (0..<configuration.readStreams).map(readStream)
    var rng = SplitMix64(seed: 3)
    let started = Monotonic.nanoseconds()
    var appended = 0
    for version in 1...configuration.readVersions {
        for start in stride(from: 0, to: streams.count, by: configuration.batchEvents) {
            let request = streams[start..<min(start + configuration.batchEvents, streams.count)].map { stream in
                AppendEntry(BenchEvents.event(stream: stream, rng: &rng), expecting: .version(UInt64(version - 1)))
            }
            let result = try await ledger.append(request)
            appended += result.newCount
        }
        Progress.say("  \(Format.grouped(appended)) events")
    }
    guard appended == total else { throw BenchFailure(description: "built \(appended) of \(total) events") }
    return Monotonic.seconds(since: started)
}
