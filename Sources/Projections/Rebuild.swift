import FapiaoDomain
import Foundation
import LMDB
import Ledger

/// How a rebuild cuts its work (see `ProjectionEngine.rebuild`).
public struct RebuildLimits: Sendable {
    /// Records decoded and folded at a time in log order; in a fold by stream, the most records
    /// a group of streams holds (at most 10,000; a longer stream is a group of its own, folded
    /// this many records at a time).
    public var chunkEvents: Int
    /// Memory the folded rows may fill before they are written out (see `RowBuffer`).
    public var bufferBytes: Int
    /// Rows written per transaction when they are.
    public var rowsPerTransaction: Int
    /// Parts of the work done at once, each on a task of its own (one per core): ranges of the
    /// log scanned, ranges of the streams index walked, groups of streams folded.
    public var streamParts: Int

    /// A quarter of the machine's memory, at least 1 GiB and at most 8 GiB: written out once,
    /// at the end, the rows go into empty tables with `MDB_APPEND`; written out more often,
    /// every write-out after the first is a B-tree insert per row.
    public static var defaultBufferBytes: Int {
        let quarter = Int(clamping: ProcessInfo.processInfo.physicalMemory / 4)
        return min(max(quarter, 1 << 30), 8 << 30)
    }

    public init(
        chunkEvents: Int = ProjectionEngine.rebuildChunkEvents, bufferBytes: Int = RebuildLimits.defaultBufferBytes, rowsPerTransaction: Int = 500_000,
        streamParts: Int = ProcessInfo.processInfo.activeProcessorCount
    ) {
        self.chunkEvents = max(1, chunkEvents)
        self.bufferBytes = bufferBytes
        self.rowsPerTransaction = max(1, rowsPerTransaction)
        self.streamParts = min(max(1, streamParts), 64)
    }
}

/// Progress of a rebuild: how far it is, counted as records of the head when it started.
public struct RebuildProgress: Sendable, Equatable {
    /// Folding the log into rows in memory, then writing the rows into the new tables.
    public enum Phase: Sendable, Equatable {
        case folding
        case writing
    }

    public var phase = Phase.folding
    public var applied: UInt64
    public var total: UInt64
    /// While writing: rows written, of `rowsTotal` (an upper bound until every projection's rows
    /// are sorted: a key changed twice is one row).
    public var rowsWritten = 0
    public var rowsTotal = 0

    public init(applied: UInt64, total: UInt64) {
        self.applied = applied
        self.total = total
    }

    /// Every record folded, `written` of `rowsTotal` rows written.
    init(writing written: Int, of rowsTotal: Int, total: UInt64) {
        self.init(applied: total, total: total)
        phase = .writing
        rowsWritten = written
        self.rowsTotal = rowsTotal
    }

    /// `done` of `work` units (a rebuild may read some records twice: by type, then by stream),
    /// scaled to `total`.
    init(_ done: UInt64, of work: UInt64, total: UInt64) {
        self.init(applied: work == 0 ? total : UInt64(Double(total) * Double(min(done, work)) / Double(work)), total: total)
    }
}

/// A difference found by `verify`: the rebuilt rows against the maintained ones.
public struct VerifyResult: Codable, Sendable, Equatable {
    public var name: String
    public var checkpoint: UInt64
    public var rows: Int
    public var identical: Bool
    /// The first differing table and key (hex), when not identical.
    public var firstDifference: String?
}

extension ProjectionEngine {
    /// Records per rebuild transaction: the new generation is invisible until the swap, so
    /// large transactions cost readers nothing and let rows be rewritten less often.
    public static let rebuildChunkEvents = 50_000

    /// Rebuilds `names` from the log into fresh tables, then swaps them in atomically. Readers
    /// keep reading the old generation until the swap commits; appends go on meanwhile.
    ///
    /// The swap empties the old generation's tables but does not drop them: dropping a table
    /// closes its handle for the whole process at once (LMDB's `mdb_drop` closes the DBI), and a
    /// reader whose snapshot still names the old generation would get EINVAL. The emptied
    /// tables are dropped by the next rebuild or verify, when no reader can still be on them.
    public func rebuild(_ names: [String], progress: @Sendable (RebuildProgress) -> Void = { _ in }) async throws {
        let targets = try resolve(names)
        try await buildNewGenerations(targets, progress: progress)
        try await ledger.performWrite { [self] txn in
            try self.catchUpInTransaction(targets, building: true, txn: txn)
            for projection in targets {
                guard let fresh = try CatalogEntry.read(projection.name, building: true, table: catalog, in: txn) else { continue }
                if let old = try CatalogEntry.read(projection.name, table: catalog, in: txn) {
                    try clearTables(of: projection, generation: old.generation, in: txn)
                }
                try fresh.write(projection.name, table: catalog, in: txn)
                try CatalogEntry.remove(projection.name, building: true, table: catalog, in: txn)
            }
        }
        forgetHandles()
    }

    /// Rebuilds `names` into scratch tables and compares them, row by row and byte by byte, with
    /// the maintained ones at the same checkpoint; then drops the scratch tables.
    public func verify(_ names: [String], progress: @Sendable (RebuildProgress) -> Void = { _ in }) async throws -> [VerifyResult] {
        let targets = try resolve(names)
        try await buildNewGenerations(targets, progress: progress)
        let results = try await ledger.performWrite { [self] txn -> [VerifyResult] in
            try self.catchUpInTransaction(targets, building: false, txn: txn)
            try self.catchUpInTransaction(targets, building: true, txn: txn)
            var results: [VerifyResult] = []
            for projection in targets {
                guard let fresh = try CatalogEntry.read(projection.name, building: true, table: catalog, in: txn),
                      let active = try CatalogEntry.read(projection.name, table: catalog, in: txn) else { continue }
                var result = VerifyResult(name: projection.name, checkpoint: active.checkpoint, rows: 0, identical: true)
                for spec in projection.tables {
                    let a = try txn.openTable(CatalogEntry.tableName(projection: projection.name, generation: active.generation, table: spec.name), flags: spec.flags)
                    let b = try txn.openTable(CatalogEntry.tableName(projection: projection.name, generation: fresh.generation, table: spec.name), flags: spec.flags)
                    let (rows, difference) = try Self.compare(a, b, in: txn)
                    result.rows += rows
                    if let difference, result.identical {
                        result.identical = false
                        result.firstDifference = "\(spec.name): \(difference)"
                    }
                }
                try dropTables(of: projection, generation: fresh.generation, in: txn)
                try CatalogEntry.remove(projection.name, building: true, table: catalog, in: txn)
                results.append(result)
            }
            return results
        }
        forgetHandles()
        return results
    }

    private func resolve(_ names: [String]) throws -> [any Projection] {
        if names.isEmpty { return projections }
        return try names.map { name in
            guard let projection = projection(named: name) else {
                throw ProjectionError.unknown(name: name, known: projections.map(\.name))
            }
            return projection
        }
    }

    /// Builds fresh generations of `targets` from the log, grouping the log by stream from the
    /// `streams` index (`indexLayout`). Should a record contradict what that assumes, builds them
    /// again from a scan of every record's header (`scanLayout`), which can cost up to a second
    /// fold, and notes it in the catalog: the log keeps that record, so every later rebuild of
    /// this ledger scans from the start.
    private func buildNewGenerations(_ targets: [any Projection], progress: @Sendable (RebuildProgress) -> Void) async throws {
        let noted = try ledger.read { [catalog] txn in try txn.get(catalog, key: Self.scanLayoutKey) != nil }
        if !noted {
            do {
                return try await buildNewGenerations(targets, fromStreamIndex: true, progress: progress)
            } catch let mismatch as StreamIndexLayout.Mismatch {
                logger.notice(
                    "a record of a type folded in log order is on a stream named like an invoice key (the event contract puts those types on system streams); rebuilding from a scan of every record's header, now and from now on",
                    metadata: ["position": "\(mismatch.position)"])
                try await ledger.performWrite { [catalog] txn in
                    try txn.put(catalog, key: Self.scanLayoutKey, value: Array("\(mismatch.position)".utf8), flags: [])
                }
            }
        }
        try await buildNewGenerations(targets, fromStreamIndex: false, progress: progress)
    }

    /// Catalog key: the position of a record that keeps rebuilds from grouping the log by the
    /// streams index (see `buildNewGenerations`). No projection name begins with '#'.
    static let scanLayoutKey = Array("#layout-by-scan".utf8)

    /// Creates a fresh generation for each target (discarding a crashed rebuild's) and fills it
    /// from the log through the head it began with, off the writer thread (appends go on):
    /// - the positions are grouped by stream (`indexLayout` or `scanLayout`);
    /// - the other projections fold the records of their types in log order (`foldInOrder`);
    /// - the stream-partitioned ones fold a stream at a time, and the derivable ones derive from
    ///   their rows as they go (`foldByStream`);
    /// - every projection folds into its own `RowBuffer`, written out sorted when the buffers
    ///   outgrow `rebuildLimits.bufferBytes` and at the end.
    /// Without stream-partitioned targets and type declarations, every record is folded in log
    /// order, a chunk decoded ahead.
    private func buildNewGenerations(
        _ targets: [any Projection], fromStreamIndex: Bool, progress: @Sendable (RebuildProgress) -> Void
    ) async throws {
        let total = try ledger.headPosition()
        let tables: [[String: Table]] = try await ledger.performWrite { [self] txn in
            var tables: [[String: Table]] = []
            for projection in targets {
                if let stale = try CatalogEntry.read(projection.name, building: true, table: catalog, in: txn) {
                    try dropTables(of: projection, generation: stale.generation, in: txn)
                }
                let active = try CatalogEntry.read(projection.name, table: catalog, in: txn)
                if let active, active.generation > 1 {
                    // The generation the last swap retired (emptied, kept for its readers).
                    try dropTables(of: projection, generation: active.generation - 1, in: txn)
                }
                let generation = (active?.generation ?? 0) + 1
                var handles: [String: Table] = [:]
                for spec in projection.tables {
                    let table = try txn.openTable(CatalogEntry.tableName(projection: projection.name, generation: generation, table: spec.name), flags: spec.flags.union(.create))
                    try txn.clear(table)
                    handles[spec.name] = table
                }
                tables.append(handles)
                try CatalogEntry(generation: generation, version: projection.version, checkpoint: 0, checkpointMicros: 0)
                    .write(projection.name, building: true, table: catalog, in: txn)
            }
            return tables
        }
        forgetHandles()
        guard total > 0, let last = try ledger.record(at: total) else { return }
        let buffers = targets.map { projection in RowBuffer(tables: projection.tables.map(\.name)) }
        // Projections derived from the rows of another target folded a stream at a time, as it
        // goes, instead of folded themselves.
        var derivations: [(index: Int, source: Int)] = []
        for (index, projection) in targets.enumerated() {
            guard let derivable = projection as? any DerivableProjection,
                  let source = targets.firstIndex(where: { $0.name == derivable.derivedFrom.projection && $0 is any StreamPartitionedProjection })
            else { continue }
            derivations.append((index, source))
        }
        let derived = Set(derivations.map(\.index))
        // Folded a stream at a time, or over the log in order (only the types they use).
        let perStream = targets.indices.filter { targets[$0] is any StreamPartitionedProjection && !derived.contains($0) }
        let inOrder = targets.indices.filter { !perStream.contains($0) }
        var inOrderTypes: Set<EventType>? = []
        for index in inOrder {
            let wanted = derived.contains(index) ? (targets[index] as? any DerivableProjection)?.underivedEventTypes : targets[index].eventTypes
            inOrderTypes = wanted.flatMap { wanted in inOrderTypes.map { $0.union(wanted) } }
        }
        let plan = RebuildPlan(targets: targets, tables: tables, buffers: buffers, derived: derived, total: total)
        if perStream.isEmpty && inOrderTypes == nil {
            try await foldInOrder(inOrder, positions: nil, plan: plan, counted: (0, total), progress: progress)
        } else {
            // The per-stream folds read only the records of their types.
            var streamTypes: Set<EventType>? = []
            for index in perStream {
                streamTypes = targets[index].eventTypes.flatMap { wanted in streamTypes.map { $0.union(wanted) } }
            }
            let layout: StreamLayout
            // The index path takes invoice-named streams whole for the folds by stream: a fold
            // in log order that reads invoice events would find none of them there.
            if fromStreamIndex, !perStream.isEmpty, let inOrderTypes, !inOrderTypes.contains(where: { $0.streamKind == .invoice }) {
                layout = try await indexLayout(streamTypes: streamTypes, types: inOrderTypes, total: total)
            } else {
                layout = try await scanLayout(streams: !perStream.isEmpty, streamTypes: streamTypes, types: inOrderTypes, total: total)
            }
            let byStream = UInt64(layout.events)
            let work = UInt64(layout.inOrderPositions?.count ?? Int(total)) + byStream
            if !inOrder.isEmpty {
                try await foldInOrder(inOrder, positions: layout.inOrderPositions, plan: plan, counted: (0, work), progress: progress)
            }
            if !perStream.isEmpty {
                // The derivations read what the in-order folds wrote (status_views: the systems).
                if !derivations.isEmpty { try await writeOut(inOrder.map { buffers[$0] }, tables: inOrder.map { tables[$0] }) }
                try await foldByStream(perStream, deriving: derivations, layout: layout, plan: plan, counted: (work - byStream, work), progress: progress)
            }
        }
        try await writeOut(buffers, tables: tables) { written, rows in
            progress(RebuildProgress(writing: written, of: rows, total: total))
        }
        try await setCheckpoints(of: targets, through: last)
    }

    /// What the folds of one rebuild share.
    private struct RebuildPlan: @unchecked Sendable {
        var targets: [any Projection]
        var tables: [[String: Table]]
        var buffers: [RowBuffer]
        var derived: Set<Int>
        var total: UInt64

        /// `apply` for a source that hands its rows over (nil: it does not).
        func applyHandingRows(_ batch: DecodedBatch, index: Int, buffer: RowBuffer, ledger: Ledger) throws -> [(key: String, row: SourceRow)]? {
            guard let source = targets[index] as? any RowHandingProjection else { return nil }
            return try ledger.read { txn in
                try source.applyHandingRows(batch, to: ProjectionStore(transaction: txn, handles: tables[index], buffer: buffer, ledger: ledger))
            }
        }

        /// Folds `batch` into target `index` through `buffer`.
        func apply(_ batch: DecodedBatch, index: Int, buffer: RowBuffer, ledger: Ledger) throws {
            try ledger.read { txn in
                let store = ProjectionStore(transaction: txn, handles: tables[index], buffer: buffer, ledger: ledger)
                if derived.contains(index), let derivable = targets[index] as? any DerivableProjection {
                    try derivable.applyUnderived(batch, to: store)
                } else {
                    try targets[index].apply(batch, to: store)
                }
            }
        }
    }

    /// Scans the record headers in one part of the log per core, then joins the parts: the
    /// positions of `streamTypes`' records grouped by stream, and those of `types` in log order.
    private func scanLayout(streams: Bool, streamTypes: Set<EventType>?, types: Set<EventType>?, total: UInt64) async throws -> StreamLayout {
        let parts = UInt64(min(rebuildLimits.streamParts, max(1, Int(total) / rebuildLimits.chunkEvents)))
        let ranges = (0..<parts).map { part in (total * part / parts + 1)...(total * (part + 1) / parts) }
        let scanned = try await withThrowingTaskGroup(of: (Int, PartialStreamLayout, [UInt64]?).self) { group in
            for (part, range) in ranges.enumerated() {
                group.addTask { [ledger] in
                    var partial = PartialStreamLayout()
                    var inOrder: [UInt64]? = types == nil ? nil : []
                    var known = EventTypeNames()
                    try ledger.scanHeaders(from: range.lowerBound, through: range.upperBound) { position, stream, typeBytes in
                        let type = known.eventType(typeBytes)
                        if streams && (streamTypes.map { type.map($0.contains) ?? false } ?? true) {
                            partial.add(stream: stream, position: position)
                        }
                        if let types, type.map(types.contains) ?? false { inOrder?.append(position) }
                    }
                    return (part, partial, inOrder)
                }
            }
            var partials = [(PartialStreamLayout, [UInt64]?)?](repeating: nil, count: ranges.count)
            for try await (part, partial, inOrder) in group { partials[part] = (partial, inOrder) }
            return partials.compactMap { $0 }
        }
        let inOrder: [UInt64]? = types == nil ? nil : scanned.flatMap { $0.1 ?? [] }
        return StreamLayout(joining: scanned.map(\.0), inOrderPositions: inOrder)
    }

    /// `scanLayout` read from the `streams` index instead of every record's header: at 999,560
    /// records, 0.1 s instead of 0.25-0.32 s (both on two cores), since an index entry is about
    /// 40 bytes and a record 500. The index is cut at sampled stream names into one part per
    /// core. It holds each stream's positions in key order, but not the records' types. So the
    /// records of streams named like invoice keys (digits and '-') are all taken for the folds
    /// by stream, which skip those of other types as they read them (`StreamIndexLayout.Check`);
    /// the headers of the other streams' records (the systems', a few percent) are read to sort
    /// them exactly; and the records after the index's end (`meta.indexed`) are scanned as
    /// `scanLayout` does. An invoice-named stream holding a record an in-order fold reads (the
    /// contract does not allow it, the ledger does not refuse it) makes the fold throw
    /// `Mismatch`, and the rebuild starts again from a header scan.
    private func indexLayout(streamTypes: Set<EventType>?, types: Set<EventType>, total: UInt64) async throws -> StreamLayout {
        let indexed = min(try ledger.indexedThrough(), total)
        let cuts = try indexCuts(parts: indexed > 0 ? rebuildLimits.streamParts : 1, indexed: indexed)
        let bounds: [[UInt8]?] = [nil] + cuts + [nil]
        let parts = try await withThrowingTaskGroup(of: (Int, PartialStreamLayout, [UInt64]).self) { group in
            for part in 0..<(bounds.count - 1) {
                group.addTask { [ledger] in
                    var partial = PartialStreamLayout()
                    var others: [(position: UInt64, stream: Int32)] = []
                    try ledger.streamIndex(from: bounds[part], before: bounds[part + 1], through: indexed) { stream, positions in
                        let id = partial.names.intern(stream)
                        if StreamIndexLayout.isInvoiceLike(stream) {
                            for position in positions { partial.add(stream: id, position: position) }
                        } else {
                            for position in positions { others.append((position, id)) }
                        }
                    }
                    others.sort { $0.position < $1.position }
                    var inOrder: [UInt64] = []
                    var known = EventTypeNames()
                    var next = 0
                    try ledger.headers(at: others.map(\.position)) { position, _, typeBytes in
                        let type = known.eventType(typeBytes)
                        if streamTypes.map({ type.map($0.contains) ?? false }) ?? true { partial.add(stream: others[next].stream, position: position) }
                        if type.map(types.contains) ?? false { inOrder.append(position) }
                        next += 1
                    }
                    return (part, partial, inOrder)
                }
            }
            var parts = [(PartialStreamLayout, [UInt64])?](repeating: nil, count: bounds.count - 1)
            for try await (part, partial, inOrder) in group { parts[part] = (partial, inOrder) }
            return parts.compactMap { $0 }
        }
        var inOrder = parts.flatMap(\.1)
        var layout: StreamLayout
        if indexed < total {
            // The records no index holds yet, as `scanLayout` reads them.
            var tail = PartialStreamLayout()
            var known = EventTypeNames()
            try ledger.scanHeaders(from: indexed + 1, through: total) { position, stream, typeBytes in
                let type = known.eventType(typeBytes)
                if streamTypes.map({ type.map($0.contains) ?? false }) ?? true { tail.add(stream: stream, position: position) }
                if type.map(types.contains) ?? false { inOrder.append(position) }
            }
            layout = StreamLayout(joining: parts.map(\.0) + [tail], inOrderPositions: inOrder.sorted())
        } else {
            layout = StreamLayout(keyOrderedParts: parts.map(\.0), inOrderPositions: inOrder.sorted())
        }
        layout.check = StreamIndexLayout.Check(streamTypes: streamTypes, inOrderTypes: types)
        return layout
    }

    /// Stream names that cut the `streams` index into `parts` parts of about as many records:
    /// the quantiles of the streams of 64 records spread over the log (strictly increasing, so
    /// there may be fewer).
    private func indexCuts(parts: Int, indexed: UInt64) throws -> [[UInt8]] {
        guard parts > 1, indexed >= 64 else { return [] }
        var sampled: [[UInt8]] = []
        try ledger.headers(at: (1...64).map { indexed * UInt64($0) / 64 }) { _, stream, _ in sampled.append(Array(stream)) }
        sampled.sort { RowKey.compare($0, $1) < 0 }
        var cuts: [[UInt8]] = []
        for part in 1..<parts {
            let cut = sampled[sampled.count * part / parts]
            if cuts.last.map({ RowKey.compare($0, cut) < 0 }) ?? true { cuts.append(cut) }
        }
        return cuts
    }

    /// The event types of the few type names a log holds, each looked up once.
    struct EventTypeNames {
        private var types: [(bytes: [UInt8], type: EventType?)] = []

        /// The event type a record's type names (nil: not one of the contract's).
        mutating func eventType(_ bytes: UnsafeRawBufferPointer) -> EventType? {
            for known in types where known.bytes.count == bytes.count {
                let same = known.bytes.withUnsafeBytes { stored in bytes.isEmpty || memcmp(stored.baseAddress!, bytes.baseAddress!, bytes.count) == 0 }
                if same { return known.type }
            }
            let type = EventType(rawValue: String(decoding: bytes, as: UTF8.self))
            if types.count < 64 { types.append((Array(bytes), type)) }
            return type
        }
    }

    /// Folds targets `indices` over the log in order: every record (`positions` nil) or those at
    /// `positions`, a chunk at a time, the next chunk decoded while the projections fold this
    /// one, each projection on a task of its own. Chunks end at the head the rebuild began
    /// with; what was appended since is caught up in the swap's transaction.
    private func foldInOrder(_ indices: [Int], positions: [UInt64]?, plan: RebuildPlan, counted: (before: UInt64, of: UInt64), progress: (RebuildProgress) -> Void) async throws {
        let total = plan.total
        let chunkEvents = rebuildLimits.chunkEvents
        func decode(_ chunk: Int) -> Task<DecodedBatch, any Error>? {
            if let positions {
                let start = chunk * chunkEvents
                guard start < positions.count else { return nil }
                let slice = Array(positions[start..<min(start + chunkEvents, positions.count)])
                return Task { [ledger] in DecodedBatch(records: try ledger.records(at: slice)) }
            }
            let next = UInt64(chunk) * UInt64(chunkEvents) + 1
            guard next <= total else { return nil }
            return Task { try await self.decodedBatch(from: next, limit: Int(min(UInt64(chunkEvents), total - next + 1))) }
        }
        var chunk = 0
        var done = 0
        var pending = decode(chunk)
        defer { pending?.cancel() }
        while let current = pending {
            let batch = try await current.value
            guard let last = batch.items.last?.record, last.position <= total else { break }
            chunk += 1
            pending = decode(chunk)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in indices {
                    group.addTask { [ledger] in try plan.apply(batch, index: index, buffer: plan.buffers[index], ledger: ledger) }
                }
                try await group.waitForAll()
            }
            done += batch.items.count
            if plan.buffers.reduce(0, { $0 + $1.approximateBytes }) > rebuildLimits.bufferBytes {
                try await writeOut(plan.buffers, tables: plan.tables)
            }
            progress(RebuildProgress(counted.before + UInt64(done), of: counted.of, total: plan.total))
        }
    }

    /// Folds the stream-partitioned targets `indices` a stream at a time: the streams, in key
    /// order, are cut into groups of whole streams, and each group is folded on a task of its
    /// own (one per core at a time) into buffers of its own. So each record is decoded once,
    /// each invoice's row is encoded once, and rows keyed by stream come out in key order.
    private func foldByStream(
        _ indices: [Int], deriving derivations: [(index: Int, source: Int)], layout: StreamLayout, plan: RebuildPlan,
        counted: (before: UInt64, of: UInt64), progress: (RebuildProgress) -> Void
    ) async throws {
        let groupEvents = max(1, min(rebuildLimits.chunkEvents, 10_000))
        let groups = layout.groups(ofAtMost: groupEvents)
        let groupCount = groups.count - 1
        // What the derived projections had written out before: their reads find it stored.
        let flushedBefore = Dictionary(uniqueKeysWithValues: derivations.map { ($0.index, plan.buffers[$0.index].flushedTables) })
        let ledger = self.ledger

        /// Folds group `group` into buffers of its own: the fold reads back only its own streams' rows.
        @Sendable func fold(_ group: Int) throws -> [Int: RowBuffer] {
            var positions: [UInt64] = []
            for stream in groups[group]..<groups[group + 1] { positions += layout.positions(of: stream) }
            var known = EventTypeNames()
            var scratches: [Int: RowBuffer] = [:]
            for index in indices { scratches[index] = RowBuffer(tables: plan.targets[index].tables.map(\.name)) }
            // The rows the derivations' sources hand over, by source (a stream folded in several
            // batches is handed over after each: the last one is final).
            var handed: [Int: [(key: String, row: SourceRow)]] = [:]
            var batches = 0
            // One stream longer than a group is folded a group's worth at a time, into the same
            // buffers (they read back what the last batch wrote).
            for batchStart in stride(from: 0, to: positions.count, by: groupEvents) {
                let slice = Array(positions[batchStart..<min(batchStart + groupEvents, positions.count)])
                var records = try ledger.records(at: slice)
                if let check = layout.check { try check.filter(&records, inOrder: layout.inOrderPositions, names: &known) }
                let batch = DecodedBatch(records: records)
                batches += 1
                for index in indices {
                    if derivations.contains(where: { $0.source == index }), let rows = try plan.applyHandingRows(batch, index: index, buffer: scratches[index]!, ledger: ledger) {
                        handed[index, default: []] += rows
                    } else {
                        try plan.apply(batch, index: index, buffer: scratches[index]!, ledger: ledger)
                    }
                }
            }
            // These streams' rows are final: derive from them.
            for (index, source) in derivations {
                guard let derivable = plan.targets[index] as? any DerivableProjection else { continue }
                let scratch = RowBuffer(tables: derivable.tables.map(\.name), flushed: flushedBefore[index] ?? [])
                let rows: [SourceRow]
                if let given = handed[source], let handing = plan.targets[source] as? any RowHandingProjection, handing.handedTable == derivable.derivedFrom.table {
                    // Each key once: its last row (only a stream folded in several batches repeats).
                    if batches == 1 {
                        rows = given.map(\.row)
                    } else {
                        var last: [String: Int] = [:]
                        for (offset, entry) in given.enumerated() { last[entry.key] = offset }
                        rows = last.values.sorted().map { given[$0].row }
                    }
                } else {
                    rows = scratches[source]!.rows(derivable.derivedFrom.table).map { SourceRow(bytes: $0) }
                }
                try ledger.read { txn in
                    try derivable.derive(fromRows: rows, to: ProjectionStore(transaction: txn, handles: plan.tables[index], buffer: scratch, ledger: ledger))
                }
                scratches[index] = scratch
            }
            return scratches
        }

        // One group per core at a time, each taken by the first task free (no core waits for
        // another at a round's end); the groups' rows join the rebuild's buffers in group order,
        // so they stay in key order. Past the memory budget, no group is started until what
        // runs is in and written out.
        var submitted = 0
        var joined = 0
        var done = 0
        while joined < groupCount {
            try await withThrowingTaskGroup(of: (Int, [Int: RowBuffer]).self) { tasks in
                var waiting: [Int: [Int: RowBuffer]] = [:]
                var pendingBytes = 0
                var full = false
                while submitted < groupCount && submitted - joined < rebuildLimits.streamParts {
                    let group = submitted
                    tasks.addTask { (group, try fold(group)) }
                    submitted += 1
                }
                while let (group, scratches) = try await tasks.next() {
                    waiting[group] = scratches
                    pendingBytes += scratches.values.reduce(0) { $0 + $1.approximateBytes }
                    while let ready = waiting.removeValue(forKey: joined) {
                        for (index, scratch) in ready {
                            pendingBytes -= scratch.approximateBytes
                            plan.buffers[index].absorb(scratch)
                        }
                        done += layout.events(of: groups[joined]..<groups[joined + 1])
                        joined += 1
                    }
                    progress(RebuildProgress(counted.before + UInt64(done), of: counted.of, total: plan.total))
                    full = full || plan.buffers.reduce(pendingBytes, { $0 + $1.approximateBytes }) > rebuildLimits.bufferBytes
                    if !full && submitted < groupCount {
                        let group = submitted
                        tasks.addTask { (group, try fold(group)) }
                        submitted += 1
                    }
                }
            }
            if joined < groupCount { try await writeOut(plan.buffers, tables: plan.tables) }
        }
    }

    /// Writes the buffers out in key order, a bounded number of rows per transaction. Each
    /// projection's buffer is sorted on a thread of its own, off the writer thread, and written as
    /// soon as it is sorted, while the others are still sorting.
    private func writeOut(
        _ buffers: [RowBuffer], tables: [[String: Table]], progress: (_ written: Int, _ rows: Int) -> Void = { _, _ in }
    ) async throws {
        let rowsPerTransaction = rebuildLimits.rowsPerTransaction
        // Rows to write: each buffer's changes until it is sorted, then its rows.
        var rowCounts = buffers.map(\.changeCount)
        var written = 0
        progress(0, rowCounts.reduce(0, +))
        try await withThrowingTaskGroup(of: (Int, [SortedRun]).self) { group in
            // Threads, not tasks: sorts on every thread of the task pool would keep this task
            // from handing the first sorted buffer to the writer until a second one is sorted.
            for index in buffers.indices {
                group.addTask {
                    await withCheckedContinuation { done in
                        Thread { done.resume(returning: (index, buffers[index].drain())) }.start()
                    }
                }
            }
            for try await (index, runs) in group {
                rowCounts[index] = runs.reduce(0) { $0 + $1.count }
                progress(written, rowCounts.reduce(0, +))
                var slices: [(run: SortedRun, range: Range<Int>)] = []
                for run in runs {
                    for start in stride(from: 0, to: run.count, by: rowsPerTransaction) {
                        slices.append((run, start..<min(start + rowsPerTransaction, run.count)))
                    }
                }
                // Whole slices, at most `rowsPerTransaction` rows per transaction (or one slice).
                var next = 0
                while next < slices.count {
                    var work: [(run: SortedRun, range: Range<Int>)] = []
                    var rows = 0
                    while next < slices.count && (work.isEmpty || rows + slices[next].range.count <= rowsPerTransaction) {
                        rows += slices[next].range.count
                        work.append(slices[next])
                        next += 1
                    }
                    try await ledger.performWrite { [work] txn in
                        for slice in work { try slice.run.write(slice.range, to: tables[index][slice.run.table]!, in: txn) }
                    }
                    written += work.reduce(0) { $0 + $1.range.count }
                    progress(written, rowCounts.reduce(0, +))
                }
            }
        }
    }

    /// Sets the building generations' checkpoints to `last`.
    private func setCheckpoints(of targets: [any Projection], through last: Record) async throws {
        try await ledger.performWrite { [self] txn in
            for projection in targets {
                guard var entry = try CatalogEntry.read(projection.name, building: true, table: catalog, in: txn) else { continue }
                entry.checkpoint = last.position
                entry.checkpointMicros = last.recordedMicros
                try entry.write(projection.name, building: true, table: catalog, in: txn)
            }
        }
    }

    /// Inside one write transaction: brings the targets' (building or active) generations to
    /// the transaction's head. Used for the last few records before a swap or comparison.
    private func catchUpInTransaction(_ targets: [any Projection], building: Bool, txn: Transaction) throws {
        let head = try ledger.headPosition(in: txn)
        while true {
            let checkpoints = try targets.compactMap { try CatalogEntry.read($0.name, building: building, table: catalog, in: txn)?.checkpoint }
            guard let lowest = checkpoints.min(), lowest < head else { return }
            let records = try ledger.records(from: lowest + 1, limit: Self.chunkEvents, in: txn)
            try apply(DecodedBatch(records: records), to: targets, building: building, in: txn)
        }
    }

    private func clearTables(of projection: any Projection, generation: Int, in txn: Transaction) throws {
        for spec in projection.tables {
            try txn.clear(txn.openTable(CatalogEntry.tableName(projection: projection.name, generation: generation, table: spec.name), flags: spec.flags.union(.create)))
        }
    }

    private func dropTables(of projection: any Projection, generation: Int, in txn: Transaction) throws {
        for spec in projection.tables {
            let table = try txn.openTable(CatalogEntry.tableName(projection: projection.name, generation: generation, table: spec.name), flags: spec.flags.union(.create))
            try txn.drop(table)
        }
    }

    /// Counts rows of `a` and reports the first key where `a` and `b` differ.
    static func compare(_ a: Table, _ b: Table, in txn: Transaction) throws -> (rows: Int, difference: String?) {
        try txn.withCursor(a) { left in
            try txn.withCursor(b) { right in
                var rows = 0
                var l = try left.first()
                var r = try right.first()
                while true {
                    switch (l, r) {
                    case (nil, nil): return (rows, nil)
                    case let (x?, nil): return (rows, "key \(hex(x.key)) only in the maintained rows")
                    case let (nil, y?): return (rows, "key \(hex(y.key)) only in the rebuilt rows")
                    case let (x?, y?):
                        guard x.key.elementsEqual(y.key) else {
                            return (rows, "key \(hex(x.key)) vs \(hex(y.key))")
                        }
                        guard x.value.elementsEqual(y.value) else {
                            return (rows, "key \(hex(x.key)): maintained \(x.value.count) bytes differ from rebuilt \(y.value.count) bytes")
                        }
                        rows += 1
                        l = try left.next()
                        r = try right.next()
                    }
                }
            }
        }
    }

    static func hex(_ bytes: UnsafeRawBufferPointer) -> String {
        let text = String(decoding: bytes, as: UTF8.self)
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) { return "\"\(text)\"" }
        return bytes.map { String(format: "%02x", $0) }.joined()
    }
}

