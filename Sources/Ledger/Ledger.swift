import Foundation
import LMDB
import Logging
import Synchronization

/// An append-only event ledger in one LMDB environment directory.
///
///     let ledger = try Ledger.open(at: "./fapiao.ledger", options: LedgerOptions(), logger: logger)
///     let result = try await ledger.append([AppendEntry(event, expecting: .noStream)])
///     let records = try ledger.stream("24112000000015301234", fromVersion: 1, limit: 100)
///
/// One process writes, through the group-commit writer; any number read, in this process or
/// others (open with `readOnly`). Reads use MVCC snapshots and never block the writer.
public final class Ledger: Sendable {
    public let path: String
    public let options: LedgerOptions
    let environment: Environment
    let tables: LedgerTables
    let writer: GroupCommitWriter?
    /// The recent end of the indexes (see `TailIndex`).
    let tail: TailIndex
    private let logger: Logger
    private let headWatchers = Mutex<HeadWatchers>(HeadWatchers())

    private init(path: String, options: LedgerOptions, environment: Environment, tables: LedgerTables, tail: TailIndex, writer: GroupCommitWriter?, logger: Logger) {
        self.path = path
        self.tail = tail
        self.options = options
        self.environment = environment
        self.tables = tables
        self.writer = writer
        self.logger = logger
    }

    /// Opens the ledger at `path`, runs `body`, closes the ledger, and returns once its LMDB
    /// environment is released, so the same directory can be opened again in this process at
    /// once (LMDB must never have one directory open twice in a process; `close()` returns a
    /// moment before the writer thread lets go of it). `body` must not keep the ledger: engines
    /// made in it are stopped there. Throws `LedgerError.storage` when the environment is still
    /// held 10 s after the close; `body`'s own error otherwise.
    public static func using<T>(
        at path: String, options: LedgerOptions = LedgerOptions(), clock: @escaping @Sendable () -> Int64 = Ledger.systemClockMicros,
        _ body: (Ledger) async throws -> T
    ) async throws -> T {
        var ledger: Ledger? = try open(at: path, options: options, clock: clock)
        weak let environment = ledger?.environment
        weak let index = ledger?.tables.index
        let outcome: Result<T, any Error>
        do {
            outcome = .success(try await body(ledger!))
        } catch {
            outcome = .failure(error)
        }
        ledger?.close()
        ledger = nil
        for _ in 0..<10_000 where environment != nil || index != nil {
            try await Task.sleep(nanoseconds: 1_000_000)
        }
        guard environment == nil && index == nil else { throw LedgerError.storage("the ledger at \(path) is still open 10 s after close(): something kept it") }
        return try outcome.get()
    }

    /// Opens the ledger at directory `path`, creating it when writable and absent.
    /// - `clock`: microseconds since the epoch, for recorded times (tests pass their own).
    public static func open(
        at path: String, options: LedgerOptions = LedgerOptions(), logger: Logger = Logger(label: "fapiao.ledger"),
        clock: @escaping @Sendable () -> Int64 = Ledger.systemClockMicros
    ) throws -> Ledger {
        let environment = try openEnvironment(at: path, options: options)
        let existing = try environment.tableNames()
        if !existing.isEmpty && !existing.contains("meta") {
            throw LedgerError.incompatible(path: path, reason: "it is an LMDB environment of another program (tables: \(existing.prefix(5).joined(separator: ", ")))")
        }
        try checkFormat(of: environment, path: path)
        let (index, location) = try openIndex(of: environment, at: path, existing: existing, options: options, logger: logger)
        if location == .none {
            logger.notice("the ledger has no finished index/ (a writer builds it at its next open); reading from the log alone")
        }
        let tables: LedgerTables
        do {
            tables = try LedgerTables.open(in: environment, index: index, location: location, create: !options.readOnly)
        } catch LMDBError.notFound {
            throw LedgerError.incompatible(path: path, reason: "it has no fapiao tables")
        }
        let cleared = try environment.clearStaleReaders()
        if cleared > 0 { logger.info("cleared stale reader slots at open", metadata: ["count": "\(cleared)"]) }
        if location == .own { _ = try index.clearStaleReaders() }
        var indexed = try index.read { txn in try txn.indexedThrough(tables: tables) }
        let logHead = try environment.read { txn in try lastPosition(in: txn, tables: tables) }
        if indexed > logHead {
            // An index/ copied after the log (a backup taken in the wrong order), or a log cut
            // short after the fact, leaves index entries of records the log lacks. The index is
            // derived: a writer rebuilds it. A reader goes on (its look-ups of those records
            // fail as corrupt, and `fapiao check` tells what happened to the log).
            if options.readOnly {
                logger.warning(
                    "index/ covers records the log does not have (copied after the log, or the log cut short?); a writer will rebuild it",
                    metadata: ["indexed": "\(indexed)", "head": "\(logHead)"])
            } else {
                logger.warning("index/ covers records the log does not have (copied after the log?): rebuilding it from the log", metadata: [
                    "indexed": "\(indexed)", "head": "\(logHead)"])
                try index.write { txn in
                    for slot in tables.streamRuns.indices {
                        try txn.clear(tables.streamRuns[slot])
                        try txn.clear(tables.idRuns[slot])
                    }
                    try txn.storeIndexRuns([], tables: tables)
                    try txn.put(tables.indexMeta, key: LedgerTables.indexedKey, value: BigEndian.bytes(0), flags: [])
                }
                indexed = 0
            }
        }
        // A reader prunes the shared tail only in a process without a writer: the writer's
        // batch may be looking up keys in an index snapshot older than the reader's.
        // A writer's tail holds a merge's worth of keys, and more while a merge runs.
        let tail = TailIndex(
            indexedThrough: indexed, readersPrune: options.readOnly,
            reserving: options.readOnly ? 0 : min(2 * options.indexMergeEventsMin, 1 << 20))
        guard !options.readOnly else {
            return Ledger(path: path, options: options, environment: environment, tables: tables, tail: tail, writer: nil, logger: logger)
        }
        let head = try readHead(environment: environment, tables: tables)
        try catchUpIndex(
            environment: environment, tables: tables, tail: tail, from: indexed, through: head.position, step: options.indexCatchUpEvents,
            logger: logger)
        // Rebuild the tail from the log: the keys of records after `indexed`.
        _ = try environment.read { txn in
            try tail.synchronize(with: txn, tables: tables, indexed: tail.state.withLock { $0.indexedThrough }, head: head.position)
        }
        let box = LedgerBox()
        let writer = GroupCommitWriter(
            environment: environment, tables: tables, options: options, tail: tail, head: head, logger: logger, clock: clock,
            committed: { head in box.ledger?.publish(head: head.position) })
        let ledger = Ledger(path: path, options: options, environment: environment, tables: tables, tail: tail, writer: writer, logger: logger)
        box.ledger = ledger
        return ledger
    }

    /// Stops the writer after it has committed everything queued. Later appends fail with `closed`.
    public func close() {
        writer?.setObserver(nil)
        writer?.close()
        // Finish outside the lock: finishing runs each stream's onTermination, which takes it.
        for continuation in headWatchers.withLock({ $0.removeAll() }) { continuation.finish() }
    }

    deinit { writer?.close() }

    public static let systemClockMicros: @Sendable () -> Int64 = {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1_000
    }

    // MARK: Appending

    /// Appends the entries atomically (all or none), answering after the commit is durable.
    /// Throws `LedgerError`: a refusal (expectation, idempotency conflict, invalid) is also
    /// recorded as a `Rejection`.
    public func append(_ entries: [AppendEntry]) async throws(LedgerError) -> AppendResult {
        try await enqueue(entries).result()
    }

    /// Appends from a thread that may block (not from a Swift concurrency task).
    public func appendBlocking(_ entries: [AppendEntry]) throws(LedgerError) -> AppendResult {
        guard let writer else { throw .readOnly }
        let done = DispatchSemaphore(value: 0)
        let box = Mutex<Result<AppendResult, LedgerError>?>(nil)
        writer.submit(entries) { result in
            box.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        return try box.withLock { $0! }.get()
    }

    // MARK: Reading

    /// The last position in the log (0 when empty).
    public func headPosition() throws -> UInt64 {
        try environment.read { txn in try Self.lastPosition(in: txn, tables: tables) }
    }

    /// The record at `position`, or nil when there is none.
    public func record(at position: UInt64) throws -> Record? {
        try environment.read { txn in
            try txn.recordBytes(at: position, tables: tables).map { try RecordCodec.decode($0) }
        }
    }

    /// Up to `limit` records from `position` on (clamped to `readEventsMax`), in one snapshot.
    public func records(from position: UInt64, limit: Int) throws -> [Record] {
        let limit = min(max(limit, 0), options.readEventsMax)
        guard limit > 0 else { return [] }
        return try environment.read { txn in
            try txn.withCursor(tables.log) { cursor in
                var out: [Record] = []
                out.reserveCapacity(min(limit, 1024))
                var strings = RecordStrings()
                var entry = try cursor.seek(atLeast: BigEndian.bytes(max(position, 1)))
                while let current = entry, out.count < limit {
                    out.append(try RecordCodec.decode(current.value, strings: &strings))
                    entry = try cursor.next()
                }
                return out
            }
        }
    }

    /// Up to `limit` records of `stream` from stream version `fromVersion` (1-based) on.
    public func stream(_ stream: String, fromVersion: UInt64 = 1, limit: Int) throws -> [Record] {
        let limit = min(max(limit, 0), options.readEventsMax)
        guard limit > 0, Validation.isIndexable(stream: stream) else { return [] }
        return try readIndexed { snapshot in
            try snapshot.streamPositions(stream, fromVersion: max(fromVersion, 1), limit: limit).map { position in
                guard let bytes = try snapshot.txn.recordBytes(at: position, tables: tables) else {
                    throw LedgerError.corruptRecord(position: position, reason: "the stream index points at a missing record")
                }
                return try RecordCodec.decode(bytes)
            }
        }
    }

    /// The current version of `stream`: how many events it has.
    public func streamVersion(_ stream: String) throws -> UInt64 {
        guard Validation.isIndexable(stream: stream) else { return 0 }
        return try readIndexed { snapshot in try snapshot.streamVersion(stream) }
    }

    /// The position recorded for `(source, id)`, if that event was ever appended.
    public func position(source: String, id: String) throws -> UInt64? {
        try readIndexed { snapshot in try snapshot.position(source: source, id: id) }
    }

    /// Refused appends from `sequence` on, oldest first.
    public func rejections(from sequence: UInt64 = 1, limit: Int) throws -> [Rejection] {
        let limit = min(max(limit, 0), options.readEventsMax)
        return try environment.read { txn in
            try txn.withCursor(tables.rejections) { cursor in
                var out: [Rejection] = []
                var entry = try cursor.seek(atLeast: BigEndian.bytes(max(sequence, 1)))
                while let current = entry, out.count < limit {
                    out.append(try Rejection.decode(current.value))
                    entry = try cursor.next()
                }
                return out
            }
        }
    }

    /// How many appends were refused (the last rejection's sequence).
    public func rejectionCount() throws -> UInt64 {
        try environment.read { txn in
            try txn.withCursor(tables.rejections) { cursor in try cursor.last().map { BigEndian.uint64($0.key) } ?? 0 }
        }
    }

    /// Refused appends whose request named `stream`, oldest first.
    public func rejections(forStream stream: String, limit: Int) throws -> [Rejection] {
        guard Validation.isIndexable(stream: stream) else { return [] }
        let limit = min(max(limit, 0), options.readEventsMax)
        return try environment.read { txn in
            var sequences: [[UInt8]] = []
            try txn.withCursor(tables.rejectionsByStream) { cursor in
                var entry = try cursor.seek(exactly: Array(stream.utf8))
                while let current = entry, sequences.count < limit {
                    sequences.append(Array(current.value))
                    entry = try cursor.nextDuplicate()
                }
            }
            return try sequences.compactMap { key in
                try txn.get(tables.rejections, key: key).map { try $0.withUnsafeBytes { try Rejection.decode($0) } }
            }
        }
    }

    /// How full the map is.
    public func storageUsage() -> Environment.Usage { environment.usage() }

    // MARK: Watching the head

    /// A stream of head positions, one after each commit that added records (coalesced when
    /// the consumer is slow: only the newest head matters). Ends when the ledger closes.
    public func headUpdates() -> AsyncStream<UInt64> {
        let (stream, continuation) = AsyncStream.makeStream(of: UInt64.self, bufferingPolicy: .bufferingNewest(1))
        guard let id = headWatchers.withLock({ $0.add(continuation) }) else {
            continuation.finish()
            return stream
        }
        continuation.onTermination = { [weak self] _ in self?.headWatchers.withLock { $0.remove(id) } }
        return stream
    }

    private func publish(head position: UInt64) {
        headWatchers.withLock { $0.yield(position) }
    }

    // MARK: Opening

    private static func openEnvironment(at path: String, options: LedgerOptions) throws -> Environment {
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        if exists && !isDirectory.boolValue {
            throw LedgerError.incompatible(path: path, reason: "it is a file; a ledger is a directory")
        }
        if !exists {
            guard !options.readOnly else { throw LedgerError.notFound(path: path) }
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } else if options.readOnly && !FileManager.default.fileExists(atPath: path + "/data.mdb") {
            throw LedgerError.notFound(path: path)
        }
        return try openLMDB(at: path, options: Environment.Options(
            mapSizeBytes: options.mapSizeBytes, tablesMax: 32, readersMax: options.readersMax,
            readOnly: options.readOnly, noSync: false))
    }

    private static func checkFormat(of environment: Environment, path: String) throws {
        let readOnly = environment.options.readOnly
        let format: [UInt8]? = try {
            do {
                let meta = try environment.openTable("meta", create: !readOnly)
                if !readOnly {
                    try environment.write { txn in
                        if try txn.get(meta, key: LedgerTables.formatKey) == nil {
                            try txn.put(meta, key: LedgerTables.formatKey, value: LedgerTables.formatValue, flags: [.noOverwrite])
                        }
                    }
                }
                return try environment.read { txn in try txn.get(meta, key: LedgerTables.formatKey) }
            } catch LMDBError.notFound {
                throw LedgerError.incompatible(path: path, reason: "it has no fapiao tables")
            }
        }()
        guard format == LedgerTables.formatValue else {
            let found = format.map { String(decoding: $0, as: UTF8.self) } ?? "none"
            throw LedgerError.incompatible(path: path, reason: "format \(found), expected \(String(decoding: LedgerTables.formatValue, as: UTF8.self))")
        }
    }

    /// Opens `index/`, the environment of the `streams` and `idempotency` B-trees, creating it
    /// when writable. A writer moves the B-trees of a ledger written by an earlier version (kept
    /// in the log's environment) into it, once; a read-only opening of such a ledger reads them
    /// where they are (`legacy`).
    private static func openIndex(
        of environment: Environment, at path: String, existing: [String], options: LedgerOptions, logger: Logger
    ) throws -> (index: Environment, location: LedgerTables.IndexLocation) {
        let indexPath = path + "/" + LedgerTables.indexDirectory
        let envOptions = Environment.Options(
            mapSizeBytes: options.mapSizeBytes, tablesMax: UInt32(2 * LedgerTables.runSlots + 4), readersMax: options.readersMax, readOnly: options.readOnly, noSync: false)
        let hasLegacy = LedgerTables.legacyIndexTables.allSatisfy(existing.contains)
        if options.readOnly {
            guard FileManager.default.fileExists(atPath: indexPath + "/data.mdb") else { return (environment, hasLegacy ? .legacy : .none) }
            let index = try openLMDB(at: indexPath, options: envOptions)
            let marked: [UInt8]?
            do {
                let meta = try index.openTable("meta", create: false)
                marked = try index.read { txn in try txn.get(meta, key: LedgerTables.formatKey) }
            } catch LMDBError.notFound {
                marked = nil
            }
            if marked == LedgerTables.indexFormatValue || marked == LedgerTables.indexFormatValueV1 { return (index, .own) }
            return (environment, hasLegacy ? .legacy : .none)
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: indexPath, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw LedgerError.incompatible(path: path, reason: "\(indexPath) is a file; it must be the index's directory (move the file away: the index is rebuilt from the log)")
        }
        try FileManager.default.createDirectory(atPath: indexPath, withIntermediateDirectories: true)
        let index = try openLMDB(at: indexPath, options: envOptions)
        let indexMeta = try index.openTable("meta", create: true)
        let marked = try index.read { txn in try txn.get(indexMeta, key: LedgerTables.formatKey) }
        if marked == LedgerTables.indexFormatValueV1 {
            // One B-tree pair, slot 0: the first run. The other slots are made in the same
            // transaction, so a reader that sees version 2 finds every slot.
            try index.write { txn in
                try createRunSlots(from: 1, in: txn)  // slot 0 holds the index
                try txn.put(indexMeta, key: LedgerTables.runsKey, value: [0], flags: [])
                try txn.put(indexMeta, key: LedgerTables.formatKey, value: LedgerTables.indexFormatValue, flags: [])
            }
            logger.info("index/ now keeps its keys in runs (format 2)")
        } else if let marked, marked != LedgerTables.indexFormatValue {
            throw LedgerError.incompatible(path: path, reason: "its index/ has format \(String(decoding: marked, as: UTF8.self)), expected \(String(decoding: LedgerTables.indexFormatValue, as: UTF8.self))")
        }
        let legacyTables = hasLegacy ? try LedgerTables.legacyIndexTables.map { try environment.openTable($0, create: false) } : []
        let meta = try environment.openTable("meta", create: false)
        if marked == nil {
            try moveLegacyIndex(from: environment, tables: legacyTables, meta: meta, into: index, indexMeta: indexMeta, logger: logger)
        }
        if hasLegacy {
            // The moved B-trees leave the log's environment (also when an earlier version wrote
            // to them after the move: the log is the truth, and the tail covers what `index/`
            // lacks).
            try environment.write { txn in
                for table in legacyTables { try txn.drop(table) }
                _ = try txn.delete(meta, key: LedgerTables.indexedKey)
            }
            logger.info("removed the index B-trees from the log's environment: they are in index/ now")
        }
        return (index, .own)
    }

    /// Fills a new `index/`: with the B-trees of the log's environment, copied in key order
    /// (`MDB_APPEND`), and their `indexed`; or empty, `indexed` 0 (the tail then covers the whole
    /// log until the first merge). One transaction, marked complete in it.
    private static func moveLegacyIndex(
        from environment: Environment, tables legacyTables: [Table], meta: Table, into index: Environment, indexMeta: Table, logger: Logger
    ) throws {
        let started = DispatchTime.now().uptimeNanoseconds
        var copied = 0
        if !legacyTables.isEmpty { logger.info("moving the index B-trees into index/ (once per ledger)") }
        let indexed = try environment.read { txn in
            try txn.get(meta, key: LedgerTables.indexedKey).map { $0.withUnsafeBytes { BigEndian.uint64($0) } } ?? 0
        }
        try index.write { target in
            try createRunSlots(in: target)
            for (offset, name) in LedgerTables.legacyIndexTables.enumerated() {
                let table = try target.openTable(name, flags: [.create])
                guard offset < legacyTables.count else { continue }
                try environment.read { source in
                    try source.withCursor(legacyTables[offset]) { from in
                        try target.withCursor(table) { to in
                            var entry = try from.first()
                            while let current = entry {
                                try to.put(key: current.key, value: current.value, flags: [.append])
                                copied += 1
                                entry = try from.next()
                            }
                        }
                    }
                }
            }
            // The old B-trees, if any, are the first run (slot 0).
            try target.put(indexMeta, key: LedgerTables.runsKey, value: legacyTables.isEmpty ? [] : [0], flags: [])
            try target.put(indexMeta, key: LedgerTables.indexedKey, value: BigEndian.bytes(legacyTables.isEmpty ? 0 : indexed), flags: [])
            try target.put(indexMeta, key: LedgerTables.formatKey, value: LedgerTables.indexFormatValue, flags: [])
        }
        if !legacyTables.isEmpty {
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            logger.info("moved the index B-trees into index/", metadata: [
                "entries": "\(copied)", "indexed": "\(indexed)", "seconds": "\(String(format: "%.2f", seconds))"])
        }
    }

    /// Brings index/ to within `options.indexCatchUpEvents` records of the log's head, a step of
    /// that many at a time (each step: its keys into the tail, one sorted merge, a prune). A
    /// lost, deleted or restored-without index/ would otherwise put every key of the log in the
    /// tail at once.
    private static func catchUpIndex(
        environment: Environment, tables: LedgerTables, tail: TailIndex, from indexed: UInt64, through head: UInt64, step: Int, logger: Logger
    ) throws {
        guard head > indexed, head - indexed > UInt64(step) else { return }
        let started = DispatchTime.now().uptimeNanoseconds
        logger.info("index/ lacks records: merging them from the log before appending", metadata: [
            "indexed": "\(indexed)", "head": "\(head)"])
        var done = indexed
        while head - done > UInt64(step) {
            let through = done + UInt64(step)
            _ = try environment.read { txn in
                try tail.synchronize(with: txn, tables: tables, indexed: done, head: through)
            }
            try tables.index.write { txn in try IndexMerge.merge(tail: tail, through: through, tables: tables, in: txn) }
            tail.state.withLock { $0.prune(through: through) }
            done = through
            logger.debug("merged the index from the log", metadata: ["through": "\(through)"])
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        logger.info("index/ caught up with the log", metadata: ["indexed": "\(done)", "seconds": "\(String(format: "%.1f", seconds))"])
    }

    /// Creates the run slots' tables from `first` on, emptied (an unfinished fill left some
    /// behind).
    private static func createRunSlots(from first: Int = 0, in txn: Transaction) throws {
        for slot in first..<LedgerTables.runSlots {
            let names = LedgerTables.runTableNames(slot: slot)
            try txn.clear(try txn.openTable(names.streams, flags: [.create]))
            try txn.clear(try txn.openTable(names.ids, flags: [.create]))
        }
    }

    /// Opens one LMDB environment of the ledger (its own, or `index/`), its errors in the
    /// ledger's terms.
    private static func openLMDB(at path: String, options: Environment.Options) throws -> Environment {
        do {
            return try Environment(path: path, options: options)
        } catch LMDBError.invalid {
            throw LedgerError.incompatible(path: path, reason: "data.mdb is not an LMDB file")
        } catch {
            throw LedgerError.storage("cannot open \(path): \(error)")
        }
    }

    static func lastPosition(in txn: Transaction, tables: LedgerTables) throws -> UInt64 {
        try txn.withCursor(tables.log) { cursor in
            try cursor.last().map { BigEndian.uint64($0.key) } ?? 0
        }
    }

    /// The writer's starting point, read from the log itself: the last record's hash is the
    /// chain's head, so nothing derived needs to be kept in step with it.
    private static func readHead(environment: Environment, tables: LedgerTables) throws -> LogHead {
        try environment.read { txn in
            var head = LogHead(position: 0, hash: RecordCodec.genesisHash, recordedMicros: 0, rejectionSequence: 0)
            try txn.withCursor(tables.log) { cursor in
                if let last = try cursor.last() {
                    let record = try RecordCodec.decode(last.value)
                    head.position = BigEndian.uint64(last.key)
                    guard record.position == head.position else {
                        throw LedgerError.corruptRecord(position: head.position, reason: "the record says position \(record.position)")
                    }
                    head.hash = RecordCodec.hash(last.value)
                    head.recordedMicros = record.recordedMicros
                    if let stored = try StoredHead.read(in: txn, tables: tables), stored != StoredHead(position: head.position, hash: head.hash) {
                        throw LedgerError.corruptRecord(
                            position: head.position,
                            reason: "the log's last record (position \(head.position)) does not match the head stored at the last commit (position \(stored.position)); it was altered or removed after it was committed, so the writer will not chain onto it")
                    }
                }
            }
            try txn.withCursor(tables.rejections) { cursor in
                if let last = try cursor.last() { head.rejectionSequence = BigEndian.uint64(last.key) }
            }
            return head
        }
    }
}

/// Lets the writer's commit callback reach the ledger without a retain cycle.
private final class LedgerBox: @unchecked Sendable {
    weak var ledger: Ledger?
}

struct HeadWatchers: ~Copyable {
    private var nextID = 0
    private var continuations: [Int: AsyncStream<UInt64>.Continuation] = [:]

    private var isClosed = false

    /// Nil once the ledger is closed: there will be no more heads.
    mutating func add(_ continuation: AsyncStream<UInt64>.Continuation) -> Int? {
        guard !isClosed else { return nil }
        nextID += 1
        continuations[nextID] = continuation
        return nextID
    }

    mutating func remove(_ id: Int) { continuations[id] = nil }

    func yield(_ position: UInt64) {
        for continuation in continuations.values { continuation.yield(position) }
    }

    /// Forgets every watcher and hands their continuations back, for finishing outside the lock.
    mutating func removeAll() -> [AsyncStream<UInt64>.Continuation] {
        defer { continuations = [:]; isClosed = true }
        return Array(continuations.values)
    }
}
