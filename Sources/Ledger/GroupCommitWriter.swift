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
            guard let batch = work else {
                mergeIndexTail(reason: "idle")
                continue
            }
            if batch.isEmpty { continue }
            commit(batch)
            if tail.state.withLock({ $0.count }) >= options.indexMergeEventsMin { mergeIndexTail(reason: "size") }
            if Date().timeIntervalSince(lastStaleCheck) > Self.staleReaderCheckSeconds {
                lastStaleCheck = Date()
                if let cleared = try? environment.clearStaleReaders(), cleared > 0 {
                    logger.info("cleared stale reader slots", metadata: ["count": "\(cleared)"])
                }
            }
        }
        runJobs()
        mergeIndexTail(reason: "close")
        filters?.stop()
        condition.lock()
        isFinished = true
        thread = nil // the thread's closure holds this writer: break the cycle
        condition.broadcast()
        condition.unlock()
    }

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
    private var lastMergeError: (any Error)?

    private func commit(_ batch: [Pending]) {
        if tail.state.withLock({ $0.arena.count }) > Self.tailKeyBytesMax {
            mergeIndexTail(reason: "full")
            if tail.state.withLock({ $0.arena.count }) > Self.tailKeyBytesMax {
                let cause = lastMergeError.map { Self.ledgerError($0, mapSizeBytes: environment.usage().mapSizeBytes) }
                let failure = cause ?? .storage("the index tail is full and could not be merged")
                logger.error("appends refused: the index tail is full and merging it fails", metadata: ["error": "\(failure)"])
                for pending in batch { pending.completion(.failure(failure)) }
                return
            }
        }
        let start = head
        let observer = currentObserver
        if filters == nil {
            let keys = (try? environment.read { txn in try txn.count(tables.idempotency) }) ?? 0
            filters = IndexFilters(environment: environment, tables: tables, capacity: 2 * keys)
        }
        filters?.maintain()
        var applier = BatchApplier(
            tables: tables, options: options, tail: tail, filters: filters, head: start, collectsRecords: observer != nil)
        let now = max(clock(), start.recordedMicros)
        var results: [Result<AppendResult, LedgerError>] = []
        results.reserveCapacity(batch.count)
        do {
            try environment.write { txn in
                try txn.withCursor(tables.streams) { streams in
                    for pending in batch {
                        results.append(try applier.apply(pending.request, recordedMicros: now, in: txn, streams: streams))
                    }
                }
                if applier.head.position != start.position {
                    try applier.storeHead(in: txn)
                    if let observer { try observer.didAppend(applier.records, in: txn) }
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

    /// Moves the tail's keys into the B-trees (see `TailIndex`). A failure leaves the tail as
    /// it was: the keys stay in memory and in the log, and the next merge tries again.
    private func mergeIndexTail(reason: String) {
        let through = head.position
        guard tail.state.withLock({ $0.coveredThrough > $0.indexedThrough }) else { return }
        do {
            try environment.write { txn in try IndexMerge.merge(tail: tail, through: through, tables: tables, filters: filters, in: txn) }
            tail.state.withLock { $0.prune(through: through) }
            lastMergeError = nil
            logger.debug("merged the index tail", metadata: ["through": "\(through)", "reason": "\(reason)"])
        } catch {
            lastMergeError = error
            logger.warning("index merge failed; the keys stay in memory and will be merged later", metadata: ["error": "\(error)"])
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
