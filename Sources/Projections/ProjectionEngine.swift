import FapiaoDomain
import Foundation
import LMDB
import Ledger
import Logging
import Synchronization

/// Keeps projections in step with the log, rebuilds and verifies them.
///
/// - **Inline**: projections are applied inside each append's transaction (read-your-writes:
///   when `append` returns, the rows are there).
/// - **Async**: a catch-up loop follows the head and applies records in chunks, each chunk in a
///   write transaction of its own on the writer thread; `waitForCheckpoint` gives
///   read-your-writes on demand.
///
/// Either way, each projection's checkpoint is written with its rows, and `status()` shows the
/// lag in events and in time.
public final class ProjectionEngine: Sendable {
    public enum Mode: String, Sendable { case inline, async }

    public let ledger: Ledger
    public let projections: [any Projection]
    public let mode: Mode
    let catalog: Table
    private let handles = Mutex<[String: Table]>([:])
    private let runner = Mutex<Task<Void, Never>?>(nil)
    let logger: Logger
    /// Records per catch-up or rebuild transaction.
    public static let chunkEvents = 20_000
    public let rebuildLimits: RebuildLimits

    public init(
        ledger: Ledger, projections: [any Projection], mode: Mode = .async, rebuildLimits: RebuildLimits = RebuildLimits(),
        logger: Logger = Logger(label: "fapiao.projections")
    ) throws {
        self.ledger = ledger
        self.rebuildLimits = rebuildLimits
        self.projections = projections
        self.mode = mode
        self.logger = logger
        catalog = try ledger.table(named: CatalogEntry.tableName, create: ledger.isWritable)
    }

    public func projection(named name: String) -> (any Projection)? {
        projections.first { $0.name == name }
    }

    // MARK: Running

    /// Makes sure every projection has tables of its current version, catches up to the head,
    /// then follows appends (inline or async). Read-only ledgers only read.
    public func start() async throws {
        guard ledger.isWritable else { return }
        try await prepareGenerations()
        // Follow appends before catching up, so none committed in between is left waiting.
        // The inline applier skips batches that do not continue a checkpoint; catch-up gets them.
        let updates = ledger.headUpdates()
        if mode == .inline { ledger.setCommitObserver(InlineApplier(engine: self)) }
        try await catchUp()
        let task = Task { [weak self] in
            for await _ in updates {
                guard let self else { return }
                do { try await self.catchUp() } catch {
                    self.logger.error("projection catch-up failed; will retry on the next append", metadata: ["error": "\(error)"])
                }
            }
        }
        runner.withLock { $0 = task }
    }

    /// Stops following appends. The ledger's own `close` also ends the catch-up loop.
    public func stop() {
        if mode == .inline { ledger.setCommitObserver(nil) }
        runner.withLock { $0?.cancel(); $0 = nil }
    }

    /// Creates missing projections, and rebuilds any stored with another version (as
    /// `rebuild` does: readers keep the old rows until the new ones are swapped in).
    private func prepareGenerations() async throws {
        let specs = projections.map { ($0.name, $0.tables) }
        let stale = try await ledger.performWrite { [catalog, projections] txn -> [String] in
            var stale: [String] = []
            for ((name, tables), projection) in zip(specs, projections) {
                if let entry = try CatalogEntry.read(name, table: catalog, in: txn) {
                    if entry.version != projection.version { stale.append(name) }
                    continue
                }
                for spec in tables {
                    try txn.clear(txn.openTable(CatalogEntry.tableName(projection: name, generation: 1, table: spec.name), flags: spec.flags.union(.create)))
                }
                try CatalogEntry(generation: 1, version: projection.version, checkpoint: 0, checkpointMicros: 0).write(name, table: catalog, in: txn)
            }
            return stale
        }
        handles.withLock { $0.removeAll() }
        if !stale.isEmpty {
            logger.info("rebuilding projections stored with another version", metadata: ["projections": "\(stale.joined(separator: ", "))"])
            try await rebuild(stale)
        }
    }

    /// Applies every record after each projection's checkpoint, chunk by chunk, until all are
    /// at the head. Decoding happens here, off the writer thread; the writer only applies.
    /// Projections without tables yet (before `start`) are left alone: `apply` would skip them,
    /// so counting their checkpoint as 0 would loop forever.
    public func catchUp() async throws {
        // Decode the next chunk while the writer applies this one (as a rebuild does).
        var prefetched: (from: UInt64, task: Task<DecodedBatch, any Error>)?
        defer { prefetched?.task.cancel() }
        while true {
            let (checkpoints, head) = try ledger.read { txn in
                (try projections.compactMap { try CatalogEntry.read($0.name, table: catalog, in: txn)?.checkpoint }, try ledger.headPosition(in: txn))
            }
            guard let lowest = checkpoints.min(), lowest < head else { return }
            let chunk = head - lowest > UInt64(Self.chunkEvents) ? Self.rebuildChunkEvents : Self.chunkEvents
            let batch: DecodedBatch
            if let ready = prefetched, ready.from == lowest + 1 {
                batch = try await ready.task.value
            } else {
                prefetched?.task.cancel()
                batch = try await decodedBatch(from: lowest + 1, limit: chunk)
            }
            prefetched = nil
            if let last = batch.lastPosition, last < head {
                prefetched = (last + 1, Task { [next = last + 1] in try await self.decodedBatch(from: next, limit: chunk) })
            }
            try await applyInJob(batch, building: false)
        }
    }

    /// Reads and decodes records, the decoding split across two tasks (two cores).
    func decodedBatch(from position: UInt64, limit: Int) async throws -> DecodedBatch {
        var records: [Record] = []
        var next = position
        while records.count < limit {
            let chunk = try ledger.records(from: next, limit: limit - records.count)
            if chunk.isEmpty { break }
            records += chunk
            next = chunk.last!.position + 1
        }
        guard records.count > 1_000 else { return DecodedBatch(records: records) }
        let middle = records.count / 2
        let firstHalf = Array(records[..<middle])
        let secondHalf = Array(records[middle...])
        async let first = DecodedBatch(records: firstHalf)
        let second = DecodedBatch(records: secondHalf)
        return DecodedBatch(items: await first.items + second.items)
    }

    /// Applies `batch` to every projection (or every building generation) whose checkpoint it
    /// continues, in one write transaction with their checkpoints.
    func applyInJob(_ batch: DecodedBatch, building: Bool) async throws {
        let specs = projections
        try await ledger.performWrite { [self] txn in
            try self.apply(batch, to: specs, building: building, in: txn)
        }
    }

    /// The core step: for each projection, the items after its checkpoint, if they follow it.
    func apply(_ batch: DecodedBatch, to targets: [any Projection], building: Bool, in txn: Transaction) throws {
        guard let first = batch.items.first?.record.position, let last = batch.items.last else { return }
        for projection in targets {
            guard var entry = try CatalogEntry.read(projection.name, building: building, table: catalog, in: txn) else { continue }
            guard entry.checkpoint + 1 >= first, entry.checkpoint < last.record.position else { continue }
            let store = try self.store(for: projection, generation: entry.generation, in: txn)
            if entry.checkpoint + 1 == first {
                try projection.apply(batch, to: store)
            } else {
                try projection.apply(DecodedBatch(items: batch.items.filter { $0.record.position > entry.checkpoint }), to: store)
            }
            entry.checkpoint = last.record.position
            entry.checkpointMicros = last.record.recordedMicros
            try entry.write(projection.name, building: building, table: catalog, in: txn)
        }
    }

    func store(for projection: any Projection, generation: Int, in txn: Transaction) throws -> ProjectionStore {
        var tables: [String: Table] = [:]
        for spec in projection.tables {
            tables[spec.name] = try handle(CatalogEntry.tableName(projection: projection.name, generation: generation, table: spec.name), flags: spec.flags, in: txn)
        }
        return ProjectionStore(transaction: txn, handles: tables, ledger: ledger)
    }

    /// Table handles, opened once. In a write transaction a table is opened in it. A read
    /// transaction can use only handles opened before it began (LMDB answers EINVAL otherwise),
    /// so `read` opens them first and retries when a rebuild swapped generations meanwhile.
    private func handle(_ name: String, flags: TableFlags, in txn: Transaction) throws -> Table {
        if let cached = handles.withLock({ $0[name] }) { return cached }
        guard !txn.isReadOnly else { throw HandleNotOpen(name: name, flags: flags) }
        return try txn.openTable(name, flags: flags)
    }

    private struct HandleNotOpen: Error {
        var name: String
        var flags: TableFlags
    }

    func forgetHandles() {
        handles.withLock { $0.removeAll() }
    }

    // MARK: Reading

    /// Runs `body` on a read snapshot of the projections' active generations.
    public func read<T>(_ body: (ProjectionSnapshot) throws -> T) throws -> T {
        for _ in 0..<4 {
            do {
                return try ledger.read { txn in try body(ProjectionSnapshot(engine: self, transaction: txn)) }
            } catch let missing as HandleNotOpen {
                try openActiveHandles(including: missing)
            }
        }
        return try ledger.read { txn in try body(ProjectionSnapshot(engine: self, transaction: txn)) }
    }

    /// Opens (outside any snapshot) the tables of every active generation.
    private func openActiveHandles(including missing: HandleNotOpen) throws {
        let generations = try ledger.read { txn in
            try projections.map { ($0, try CatalogEntry.read($0.name, table: catalog, in: txn)?.generation) }
        }
        var wanted = [(missing.name, missing.flags)]
        for (projection, generation) in generations {
            guard let generation else { continue }
            for spec in projection.tables {
                wanted.append((CatalogEntry.tableName(projection: projection.name, generation: generation, table: spec.name), spec.flags))
            }
        }
        for (name, flags) in wanted where handles.withLock({ $0[name] }) == nil {
            let table = try ledger.table(named: name, flags: flags, create: false)
            handles.withLock { $0[name] = table }
        }
    }

    /// Waits until `name`'s checkpoint is at least `position` (read-your-writes for async mode).
    public func waitForCheckpoint(_ name: String, atLeast position: UInt64, timeoutSeconds: Double = 30) async throws {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while try checkpoint(of: name) < position {
            guard Date() < deadline else { throw ProjectionError.timedOut(name: name, position: position) }
            try await Task.sleep(nanoseconds: 2_000_000)
        }
    }

    /// Projections stored with another version than this build's (their rows may not decode):
    /// a writer rebuilds them when it starts.
    public func staleProjections() throws -> [String] {
        try ledger.read { txn in
            try projections.filter { projection in
                guard let entry = try CatalogEntry.read(projection.name, table: catalog, in: txn) else { return true }
                return entry.version != projection.version
            }.map(\.name)
        }
    }

    public func checkpoint(of name: String) throws -> UInt64 {
        try ledger.read { txn in try CatalogEntry.read(name, table: catalog, in: txn)?.checkpoint ?? 0 }
    }

    // MARK: Status

    public struct Status: Codable, Sendable, Equatable {
        public var name: String
        public var version: Int
        public var generation: Int
        public var checkpoint: UInt64
        public var head: UInt64
        public var lagEvents: UInt64
        /// How long the oldest unapplied record has waited (0 when caught up).
        public var lagMilliseconds: Int64
        public var rebuilding: Bool
    }

    public func status(nowMicros: Int64 = Ledger.systemClockMicros()) throws -> [Status] {
        try ledger.read { txn in
            let head = try ledger.headPosition(in: txn)
            return try projections.map { projection in
                let entry = try CatalogEntry.read(projection.name, table: catalog, in: txn)
                let checkpoint = entry?.checkpoint ?? 0
                var lag: Int64 = 0
                if checkpoint < head, let next = try ledger.records(from: checkpoint + 1, limit: 1, in: txn).first {
                    lag = max(0, (nowMicros - next.recordedMicros) / 1000)
                }
                return Status(
                    name: projection.name, version: entry?.version ?? projection.version, generation: entry?.generation ?? 0,
                    checkpoint: checkpoint, head: head, lagEvents: head - min(checkpoint, head), lagMilliseconds: lag,
                    rebuilding: try CatalogEntry.read(projection.name, building: true, table: catalog, in: txn) != nil)
            }
        }
    }
}

public enum ProjectionError: Error, CustomStringConvertible {
    case timedOut(name: String, position: UInt64)
    case unknown(name: String, known: [String])
    case notCaughtUp(name: String)
    /// The active rows are in another version's format (a ledger last written by another fapiao).
    case storedVersion(name: String, stored: Int, expected: Int)

    public var description: String {
        switch self {
        case let .storedVersion(name, stored, expected):
            "projection \(name) is stored as version \(stored) and this fapiao reads version \(expected); "
                + "rebuild it with `fapiao projections catch-up --ledger PATH` (it rebuilds what changed) when no other process writes"
        case let .timedOut(name, position): "projection \(name) did not reach position \(position) in time"
        case let .unknown(name, known): "no projection named \(name); known: \(known.joined(separator: ", "))"
        case let .notCaughtUp(name): "projection \(name) has not caught up with the log"
        }
    }
}

/// Applies projections inside the append transaction (inline mode).
struct InlineApplier: CommitObserver {
    let engine: ProjectionEngine

    func didAppend(_ records: [Record], in transaction: Transaction) throws {
        // A projection that lags (its checkpoint is before this batch) is left to catch-up.
        try engine.apply(DecodedBatch(records: records), to: engine.projections, building: false, in: transaction)
    }
}

/// The active generations of the projections in one read snapshot.
public struct ProjectionSnapshot {
    let engine: ProjectionEngine
    public let transaction: Transaction

    /// The store of `name`'s active generation, and its checkpoint.
    public func store(_ name: String) throws -> (store: ProjectionStore, checkpoint: UInt64)? {
        guard let projection = engine.projection(named: name),
              let entry = try CatalogEntry.read(name, table: engine.catalog, in: transaction) else { return nil }
        // Rows of another version would be misread (a binary row taken for JSON, a changed field):
        // refused, with what to do, until a writer has rebuilt them. The CLI's readers say so
        // up front (`staleProjections`); this holds for every other reader of a snapshot.
        guard entry.version == projection.version else {
            throw ProjectionError.storedVersion(name: name, stored: entry.version, expected: projection.version)
        }
        return (try engine.store(for: projection, generation: entry.generation, in: transaction), entry.checkpoint)
    }
}

extension DecodedBatch {
    public init(items: [Item]) { self.items = items }
}
