import Foundation
import LMDB
import Ledger

/// How a rebuild cuts its work (see `ProjectionEngine.rebuild`).
public struct RebuildLimits: Sendable {
    /// Records decoded and folded at a time.
    public var chunkEvents: Int
    /// Memory the folded rows may fill before they are written out (see `RowBuffer`).
    public var bufferBytes: Int
    /// Rows written per transaction when they are.
    public var rowsPerTransaction: Int

    public init(chunkEvents: Int = ProjectionEngine.rebuildChunkEvents, bufferBytes: Int = 1 << 30, rowsPerTransaction: Int = 500_000) {
        self.chunkEvents = max(1, chunkEvents)
        self.bufferBytes = bufferBytes
        self.rowsPerTransaction = max(1, rowsPerTransaction)
    }
}

/// Progress of a rebuild: records applied of the head when it started.
public struct RebuildProgress: Sendable {
    public var applied: UInt64
    public var total: UInt64
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

    /// Creates a fresh generation for each target (discarding a crashed rebuild's) and fills it
    /// from the log: the records are decoded a chunk ahead, every projection folds each chunk
    /// into its own `RowBuffer` on a task of its own (not on the writer thread, so appends go
    /// on), and the buffers are written out sorted when they outgrow their budget and
    /// at the end (`rebuildLimits`).
    private func buildNewGenerations(_ targets: [any Projection], progress: @Sendable (RebuildProgress) -> Void) async throws {
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
        let buffers = targets.map { projection in RowBuffer(tables: projection.tables.map(\.name)) }
        // Projections this rebuild derives from another target's rows instead of folding.
        var derivations: [(index: Int, source: Int)] = []
        for (index, projection) in targets.enumerated() {
            guard let derivable = projection as? any DerivableProjection,
                  let source = targets.firstIndex(where: { $0.name == derivable.derivedFrom.projection && !($0 is any DerivableProjection) })
            else { continue }
            derivations.append((index, source))
        }
        let derived = Set(derivations.map(\.index))
        var folded: Record?
        // Decode the next chunk while the projections fold this one. Chunks end at the head the
        // rebuild began with; what was appended since is caught up in the swap's transaction.
        let chunkEvents = UInt64(rebuildLimits.chunkEvents)
        func decode(from next: UInt64) -> Task<DecodedBatch, any Error>? {
            guard next <= total else { return nil }
            return Task { try await self.decodedBatch(from: next, limit: Int(min(chunkEvents, total - next + 1))) }
        }
        var pending = decode(from: 1)
        defer { pending?.cancel() }
        while let current = pending {
            let batch = try await current.value
            guard let last = batch.items.last?.record, last.position <= total else { break }
            pending = decode(from: last.position + 1)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in targets.indices {
                    group.addTask { [ledger] in
                        try ledger.read { txn in
                            let store = ProjectionStore(transaction: txn, handles: tables[index], buffer: buffers[index])
                            if derived.contains(index), let derivable = targets[index] as? any DerivableProjection {
                                try derivable.applyUnderived(batch, to: store)
                            } else {
                                try targets[index].apply(batch, to: store)
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            folded = last
            if buffers.reduce(0, { $0 + $1.approximateBytes }) > rebuildLimits.bufferBytes {
                try await writeOut(buffers, of: targets, tables: tables, through: last)
            }
            progress(RebuildProgress(applied: min(last.position, total), total: total))
        }
        guard let folded else { return }
        try await writeOut(buffers, of: targets, tables: tables, through: folded)
        for (index, source) in derivations {
            guard let derivable = targets[index] as? any DerivableProjection,
                  let sourceTable = tables[source][derivable.derivedFrom.table] else { continue }
            try await derive(derivable, buffer: buffers[index], tables: tables[index], from: sourceTable, through: folded)
        }
    }

    /// Fills `projection`'s buffer from the source table's rows, a bounded run of them per read
    /// transaction, and writes it out (also whenever it outgrows the budget).
    private func derive(_ projection: any DerivableProjection, buffer: RowBuffer, tables: [String: Table], from source: Table, through last: Record) async throws {
        let rowsPerRead = 20_000
        var after: [UInt8]?
        while true {
            let next: [UInt8]? = try ledger.read { txn in
                var rows: [[UInt8]] = []
                var lastKey: [UInt8]?
                try txn.withCursor(source) { cursor in
                    var entry = try after.map { try cursor.seek(atLeast: $0) } ?? cursor.first()
                    if let current = entry, let after, current.key.elementsEqual(after) { entry = try cursor.next() }
                    while let current = entry, rows.count < rowsPerRead {
                        rows.append(Array(current.value))
                        lastKey = Array(current.key)
                        entry = try cursor.next()
                    }
                }
                try projection.derive(fromRows: rows, to: ProjectionStore(transaction: txn, handles: tables, buffer: buffer))
                return rows.count < rowsPerRead ? nil : lastKey
            }
            if next == nil || buffer.approximateBytes > rebuildLimits.bufferBytes {
                try await writeOut([buffer], of: [projection], tables: [tables], through: last)
            }
            guard let next else { return }
            after = next
        }
    }

    /// Writes the buffers out in key order, a bounded number of rows per transaction, then sets
    /// the building generations' checkpoints to `last`. Each projection's buffer is sorted on a
    /// task of its own, off the writer thread, and written as soon as it is sorted, while the
    /// others are still sorting.
    private func writeOut(_ buffers: [RowBuffer], of targets: [any Projection], tables: [[String: Table]], through last: Record) async throws {
        let rowsPerTransaction = rebuildLimits.rowsPerTransaction
        try await withThrowingTaskGroup(of: (Int, [SortedRun]).self) { group in
            for index in buffers.indices { group.addTask { (index, buffers[index].drain()) } }
            for try await (index, runs) in group {
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
                }
            }
        }
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

