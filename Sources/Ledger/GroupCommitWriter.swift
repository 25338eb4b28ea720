import Foundation
import LMDB
import Logging

/// The one writer of a ledger: a dedicated thread that takes every queued append request,
/// applies as many as fit in one write transaction, commits once, and only then answers each
/// caller. Many concurrent appenders share one fsync ("group commit").
///
/// The queue is bounded in events: beyond `queuedEventsMax` a caller is told `overloaded` at
/// once instead of growing memory without bound.
final class GroupCommitWriter: @unchecked Sendable {
    typealias Completion = @Sendable (Result<AppendResult, LedgerError>) -> Void

    private struct Pending {
        var request: PreparedRequest
        var completion: Completion
    }

    /// Work that needs the write lock besides appends (projection catch-up, rebuilds): run on
    /// this thread in a transaction of its own, between append batches.
    typealias Job = @Sendable (Environment) -> Void

    private let environment: Environment
    private let tables: LedgerTables
    private let options: LedgerOptions
    private let tail: TailIndex
    private let logger: Logger
    private let clock: @Sendable () -> Int64
    private let committed: @Sendable (LogHead) -> Void

    // Guarded by `condition`.
    private let condition = NSCondition()
    private var queue: [Pending] = []
    private var jobs: [Job] = []
    private var observer: (any CommitObserver)?
    private var queueHead = 0
    private var queuedEvents = 0
    private var isClosing = false
    private var isFinished = false
    private var head: LogHead
    /// Created at the first append batch; used only on the writer thread.
    private var filters: IndexFilters?
    /// Merges the tail into `index/` on a thread of its own.
    private let merger: IndexMerger
    /// Hashes big requests' records on a thread of its own, beside the planning (not on a
    /// single core: the two threads would take turns).
    private let chain: ChainHasher? = ProcessInfo.processInfo.activeProcessorCount > 1 ? ChainHasher() : nil
    /// Set before the thread starts; cleared when it ends. Guarded by `condition`.
    private var thread: Thread?

    private static let staleReaderCheckSeconds = 30.0

    init(
        environment: Environment, tables: LedgerTables, options: LedgerOptions, tail: TailIndex, head: LogHead, logger: Logger,
        clock: @escaping @Sendable () -> Int64, committed: @escaping @Sendable (LogHead) -> Void
    ) {
        self.environment = environment
        self.tables = tables
        self.options = options
        self.tail = tail
        self.head = head
        self.logger = logger
        self.clock = clock
        self.committed = committed
        self.merger = IndexMerger(merged: tail.state.withLock { $0.indexedThrough })
        let thread = Thread { [self] in self.run() }
        thread.name = "fapiao-ledger-writer"
        self.thread = thread
        thread.start()
    }

    /// Queues a request; `completion` runs on the writer thread after the commit (or refusal).
    /// The request is prepared (checked, encoded, its keys hashed) here, on the caller's thread.
    /// A request the writer would refuse now is refused before it is prepared (and checked
    /// again after: the queue may have filled meanwhile).
    func submit(_ entries: [AppendEntry], completion: @escaping Completion) {
        condition.lock()
        let early = refusal(of: entries.count)
        condition.unlock()
        if let early { return completion(.failure(early)) }
        let request = PreparedRequest(entries, options: options)
        condition.lock()
        if let refusal = refusal(of: entries.count) {
            condition.unlock()
            return completion(.failure(refusal))
        }
        queue.append(Pending(request: request, completion: completion))
        queuedEvents += entries.count
        condition.signal()
        condition.unlock()
    }

    /// Why a request of `events` events cannot be queued now, if it cannot. Under `condition`.
    private func refusal(of events: Int) -> LedgerError? {
        if isClosing { return .closed }
        if queuedEvents > 0 && queuedEvents + events > options.queuedEventsMax {
            return .overloaded(queuedEventsMax: options.queuedEventsMax)
        }
        return nil
    }

    /// Queues a job; false when closing (the job will not run).
    func submit(job: @escaping Job) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !isClosing else { return false }
        jobs.append(job)
        condition.signal()
        return true
    }

    func setObserver(_ observer: (any CommitObserver)?) {
        condition.lock()
        self.observer = observer
        condition.unlock()
    }

    /// Stops taking requests, finishes what is queued, and waits for the thread to end.
    /// Called on the writer thread itself (the last reference to a ledger can be dropped by a
    /// completion running there), it only asks the thread to stop: waiting would deadlock.
    func close() {
        condition.lock()
        isClosing = true
        condition.broadcast()
        if Thread.current !== thread {
            while !isFinished { condition.wait() }
        }
        condition.unlock()
    }

    private var currentObserver: (any CommitObserver)? {
        condition.lock()
        defer { condition.unlock() }
        return observer
    }

    /// Requests whose hash chain `ChainHasher` computed (0 without one).
    var chainJobs: Int { chain?.jobsStarted.load(ordering: .relaxed) ?? 0 }

    /// Waits until no index merge is running.
    func waitForIndexMerge() { merger.wait() }

    var currentHead: LogHead {
        condition.lock()
        defer { condition.unlock() }
        return head
    }

    // MARK: The writer thread

    private func run() {
        var lastStaleCheck = Date()
        while let work = nextBatch() {
            runJobs()
            takeMerged()
            guard let batch = work else {
                startMerge(reason: "idle")
                continue
            }
            if batch.isEmpty { continue }
            commit(batch)
            takeMerged()  // so `waiting` counts only keys no merge has taken
            let waiting = tail.state.withLock { $0.count }
            if waiting >= options.indexMergeEventsMin {
                // Past a few merges' worth the merges are not keeping up: the writer waits for
                // the running one, so the tail (memory, and the next merge) stays bounded.
                if waiting >= Self.tailBacklogMerges * options.indexMergeEventsMin && merger.isRunning {
                    logger.debug("waiting for the index merge", metadata: ["tail": "\(waiting)"])
                    merger.wait()
                    takeMerged()
                }
                startMerge(reason: "size")
            }
            if Date().timeIntervalSince(lastStaleCheck) > Self.staleReaderCheckSeconds {
                lastStaleCheck = Date()
                if let cleared = try? environment.clearStaleReaders(), cleared > 0 {
                    logger.info("cleared stale reader slots", metadata: ["count": "\(cleared)"])
                }
                _ = try? tables.index.clearStaleReaders()
            }
        }
        runJobs()
        mergeAll(reason: "close")
        filters?.stop()
        chain?.stop()
        condition.lock()
        isFinished = true
        thread = nil // the thread's closure holds this writer: break the cycle
        condition.broadcast()
        condition.unlock()
    }

    /// How many merges' worth of tail the writer lets build up behind a running merge.
    static let tailBacklogMerges = 4

    /// Waits for work, then takes whole requests up to `batchEventsMax` events (at least one).
    /// Returns nil when closing and the queue is drained, and `.some(nil)` when the writer has
    /// been idle long enough to merge a waiting index tail.
    private func nextBatch() -> [Pending]?? {
        condition.lock()
        defer { condition.unlock() }
        while queueHead == queue.count {
            if !jobs.isEmpty { return .some([]) }
            if isClosing { return nil }
            let tailWaiting = tail.state.withLock { $0.count } > 0
            let seconds = tailWaiting ? Double(options.indexMergeIdleMilliseconds) / 1000 : Self.staleReaderCheckSeconds
            let signalled = condition.wait(until: Date(timeIntervalSinceNow: seconds))
            if !signalled && tailWaiting && queueHead == queue.count && !isClosing { return .some(nil) }
        }
        var batch: [Pending] = []
        var events = 0
        while queueHead < queue.count {
            let next = queue[queueHead]
            if !batch.isEmpty && events + next.request.entries.count > options.batchEventsMax { break }
            batch.append(next)
            events += next.request.entries.count
            queueHead += 1
        }
        queuedEvents -= events
        if queueHead == queue.count {
            queue.removeAll(keepingCapacity: true)
            queueHead = 0
        } else if queueHead > 1024 {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
        return batch
    }

    private func runJobs() {
        condition.lock()
        let waiting = jobs
        jobs.removeAll()
        condition.unlock()
        for job in waiting { job(environment) }
    }

    /// The index tail's keys may take this much memory. Past it (only when merges keep failing,
    /// e.g. on a full map) appends are refused with the merge's error until a merge succeeds:
    /// the tail neither grows without bound nor outgrows its 32-bit offsets.
    static let tailKeyBytesMax = 1 << 30

    private func commit(_ batch: [Pending]) {
        if tail.state.withLock({ $0.arena.count }) > Self.tailKeyBytesMax {
            mergeAll(reason: "full")
            if tail.state.withLock({ $0.arena.count }) > Self.tailKeyBytesMax {
                let cause = merger.lastFailure.map { Self.ledgerError($0, mapSizeBytes: tables.index.usage().mapSizeBytes) }
                let failure = cause ?? .storage("the index tail is full and could not be merged")
                logger.error("appends refused: the index tail is full and merging it fails", metadata: ["error": "\(failure)"])
                for pending in batch { pending.completion(.failure(failure)) }
                return
            }
        }
        let start = head
        let observer = currentObserver
        if filters == nil {
            let keys = (try? tables.index.read { txn in
                try txn.indexRuns(tables: tables).reduce(0) { $0 + (try txn.count(tables.idRuns[$1])) }
            }) ?? 0
            filters = IndexFilters(tables: tables, capacity: 2 * keys)
        }
        filters?.maintain()
        var applier = BatchApplier(
            tables: tables, options: options, tail: tail, filters: filters, head: start, collectsRecords: observer != nil, chain: chain)
        let now = max(clock(), start.recordedMicros)
        var results: [Result<AppendResult, LedgerError>] = []
        results.reserveCapacity(batch.count)
        do {
            // The index's snapshot holds every merge whose keys the tail no longer has
            // (`takeMerged` runs before each batch, on this thread).
            try tables.index.read { index in
                try environment.write { txn in
                    try RunLookups.with(index, tables: tables) { lookups in
                        for pending in batch {
                            results.append(try applier.apply(pending.request, recordedMicros: now, in: txn, index: lookups))
                        }
                    }
                    if applier.head.position != start.position {
                        try applier.storeHead(in: txn)
                        if let observer { try observer.didAppend(applier.records, in: txn) }
                    }
                }
            }
        } catch {
            tail.state.withLock { $0.truncate(after: start.position) }
            let failure = Self.ledgerError(error, mapSizeBytes: environment.usage().mapSizeBytes)
            logger.error("append batch failed; nothing of it was written", metadata: ["error": "\(failure)"])
            for pending in batch { pending.completion(.failure(failure)) }
            return
        }
        condition.lock()
        head = applier.head
        condition.unlock()
        if applier.head.position != start.position { committed(applier.head) }
        for (pending, result) in zip(batch, results) { pending.completion(result) }
    }

    // MARK: Merging the index tail

    /// Starts merging the tail's keys through the head into `index/`, unless a merge is running.
    private func startMerge(reason: String) {
        takeMerged()
        let through = head.position
        guard tail.state.withLock({ $0.coveredThrough > $0.indexedThrough }) else { return }
        merger.start(tail: tail, through: through, tables: tables, logger: logger, reason: reason)
    }

    /// Merges everything in the tail and waits for it (closing, or a tail too big to grow).
    private func mergeAll(reason: String) {
        merger.wait()
        takeMerged()
        startMerge(reason: reason)
        merger.wait()
        takeMerged()
    }

    /// Takes what a finished merge committed: its keys go into the filters and leave the tail.
    /// Only here, on the writer thread, before the batch's index snapshot is taken.
    private func takeMerged() {
        let merged = merger.merged
        tail.state.withLock { state in
            guard merged > state.indexedThrough else { return }
            let count = Int(min(merged, state.coveredThrough) - state.indexedThrough)
            if let filters {
                for index in 0..<count {
                    let entry = state.entry(at: index)
                    filters.insert(streamHash: entry.streamHash, idHash: entry.idHash)
                }
            }
            state.prune(through: merged)
        }
    }

    static func ledgerError(_ error: any Error, mapSizeBytes: Int) -> LedgerError {
        switch error {
        case let ledger as LedgerError: return ledger
        case LMDBError.mapFull: return .mapFull(mapSizeBytes: mapSizeBytes)
        case LMDBError.noSpace: return .diskFull
        default: return .storage("\(error)")
        }
    }
}

/// Merges the index tail into `index/` on a thread of its own, one merge at a time, so the
/// log's writer goes on appending meanwhile. The writer starts merges and takes their result
/// (`merged`) between batches; only it prunes the tail.
final class IndexMerger: @unchecked Sendable {
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var running = false
    private var mergedThrough: UInt64
    private var failure: (any Error)?

    init(merged: UInt64) {
        mergedThrough = merged
    }

    /// Every record through this position is in `index/`'s B-trees.
    var merged: UInt64 {
        condition.lock()
        defer { condition.unlock() }
        return mergedThrough
    }

    var isRunning: Bool {
        condition.lock()
        defer { condition.unlock() }
        return running
    }

    /// The last merge's error, if it failed.
    var lastFailure: (any Error)? {
        condition.lock()
        defer { condition.unlock() }
        return failure
    }

    /// Starts a merge of the tail's keys through `through` unless one is running. A failure
    /// leaves everything as it was: the keys stay in the tail (and in the log), and the next
    /// merge tries again.
    func start(tail: TailIndex, through: UInt64, tables: LedgerTables, logger: Logger, reason: String) {
        condition.lock()
        defer { condition.unlock() }
        guard !running, through > mergedThrough else { return }
        running = true
        let thread = Thread { [self] in
            let started = DispatchTime.now().uptimeNanoseconds
            var runs: [Int] = []
            var outcome: (any Error)?
            do {
                // Compacts first when eight runs are live (in the same transaction).
                runs = try tables.index.write { txn in try IndexMerge.merge(tail: tail, through: through, tables: tables, in: txn) }
            } catch {
                outcome = error
            }
            let milliseconds = (DispatchTime.now().uptimeNanoseconds - started) / 1_000_000
            condition.lock()
            if outcome == nil { mergedThrough = max(mergedThrough, through) }
            failure = outcome
            condition.unlock()
            if let outcome {
                logger.warning("index merge failed; the keys stay in memory and will be merged later", metadata: ["error": "\(outcome)"])
            } else {
                logger.debug("merged the index tail", metadata: [
                    "through": "\(through)", "reason": "\(reason)", "ms": "\(milliseconds)", "runs": "\(runs.count)"])
            }
            condition.lock()
            running = false
            condition.broadcast()
            condition.unlock()
        }
        thread.name = "fapiao-index-merge"
        thread.start()
    }

    /// Waits until no merge is running.
    func wait() {
        condition.lock()
        while running { condition.wait() }
        condition.unlock()
    }
}
