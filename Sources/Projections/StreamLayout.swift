import FapiaoDomain
import Ledger
#if canImport(Glibc)
import Glibc
#endif

/// The log grouped by stream, for a rebuild that folds a stream at a time: the streams in key
/// order, each with its positions in log order, all in one flat array (8 bytes a record, 8 a
/// stream), and the positions of the records the in-order folds read.
struct StreamLayout: Sendable {
    /// Stream `s`'s positions are `positions[offsets[s]..<offsets[s + 1]]`.
    private(set) var offsets: [Int] = [0]
    private(set) var positions: [UInt64] = []
    /// nil: every record.
    var inOrderPositions: [UInt64]?
    /// Set when the layout came from the `streams` index: the positions by stream may include
    /// records of types the folds do not read, which they skip as they read them.
    var check: StreamIndexLayout.Check?

    var streamCount: Int { offsets.count - 1 }
    var events: Int { positions.count }

    func events(of stream: Int) -> Int { offsets[stream + 1] - offsets[stream] }
    func events(of streams: Range<Int>) -> Int { offsets[streams.upperBound] - offsets[streams.lowerBound] }
    func positions(of stream: Int) -> ArraySlice<UInt64> { positions[offsets[stream]..<offsets[stream + 1]] }

    /// Cuts the streams into groups of whole streams of at most `events` records each (a longer
    /// stream is a group alone): group `g` is streams `bounds[g]..<bounds[g + 1]`.
    func groups(ofAtMost events: Int) -> [Int] {
        var bounds = [0]
        var taken = 0
        for stream in 0..<streamCount {
            let count = self.events(of: stream)
            if taken > 0 && taken + count > events {
                bounds.append(stream)
                taken = 0
            }
            taken += count
        }
        if bounds.last! < streamCount { bounds.append(streamCount) }
        return bounds
    }

    /// Joins parts scanned in log order: each stream's positions stay ascending.
    init(joining parts: [PartialStreamLayout], inOrderPositions: [UInt64]?) {
        self.inOrderPositions = inOrderPositions
        var names = StreamNames()
        var ids: [Int32] = []
        var scanned: [UInt64] = []
        ids.reserveCapacity(parts.reduce(0) { $0 + $1.ids.count })
        scanned.reserveCapacity(ids.capacity)
        if parts.count == 1 { names = parts[0].names }
        for part in parts {
            let global = parts.count == 1 ? (0..<part.names.count).map { Int32($0) } : (0..<part.names.count).map { local in part.names.withName(local) { names.intern($0) } }
            for (id, position) in zip(part.ids, part.positions) {
                ids.append(global[Int(id)])
                scanned.append(position)
            }
        }
        // Streams in key order (LMDB's: memcmp, shorter first), then each record in its place.
        let order = names.sortedByName()
        var rank = [Int32](repeating: 0, count: names.count)
        for (index, id) in order.enumerated() { rank[id] = Int32(index) }
        var counts = [Int](repeating: 0, count: names.count + 1)
        for id in ids { counts[Int(rank[Int(id)]) + 1] += 1 }
        for index in 0..<names.count { counts[index + 1] += counts[index] }
        offsets = counts
        var next = Array(counts.dropLast())
        positions = [UInt64](repeating: 0, count: scanned.count)
        for (id, position) in zip(ids, scanned) {
            let stream = Int(rank[Int(id)])
            positions[next[stream]] = position
            next[stream] += 1
        }
    }

    /// Joins parts read from the `streams` index: each part's streams interned in key order,
    /// every stream in one part only, and the parts in key order. Nothing to hash or sort.
    init(keyOrderedParts parts: [PartialStreamLayout], inOrderPositions: [UInt64]?) {
        self.inOrderPositions = inOrderPositions
        var first = [0]
        for part in parts { first.append(first.last! + part.names.count) }
        var counts = [Int](repeating: 0, count: first.last! + 1)
        for (index, part) in parts.enumerated() {
            for id in part.ids { counts[first[index] + Int(id) + 1] += 1 }
        }
        for stream in 0..<first.last! { counts[stream + 1] += counts[stream] }
        offsets = counts
        var next = Array(counts.dropLast())
        positions = [UInt64](repeating: 0, count: counts.last!)
        for (index, part) in parts.enumerated() {
            for (id, position) in zip(part.ids, part.positions) {
                let stream = first[index] + Int(id)
                positions[next[stream]] = position
                next[stream] += 1
            }
        }
    }

    init() {}
}

/// One part of the log as scanned: each record's stream (by id) and position, in log order.
struct PartialStreamLayout: Sendable {
    var names = StreamNames()
    var ids: [Int32] = []
    var positions: [UInt64] = []

    mutating func add(stream: UnsafeRawBufferPointer, position: UInt64) {
        ids.append(names.intern(stream))
        positions.append(position)
    }

    /// Adds a record of a stream already interned in `names`.
    mutating func add(stream id: Int32, position: UInt64) {
        ids.append(id)
        positions.append(position)
    }
}

/// What a layout read from the `streams` index (`ProjectionEngine.indexLayout`) assumes, and
/// the check of it as the folds read the records.
enum StreamIndexLayout {
    /// A record the layout did not expect: an in-order fold's type in a stream named like an
    /// invoice key. The rebuild starts again from a scan of every header.
    struct Mismatch: Error {
        var position: UInt64
    }

    /// Named like an invoice key: ASCII digits and '-' only. Such streams hold invoice events
    /// (the event contract ties a subject's form to its event types).
    static func isInvoiceLike(_ stream: UnsafeRawBufferPointer) -> Bool {
        !stream.isEmpty && stream.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
    }

    struct Check: Sendable {
        /// nil: every type.
        var streamTypes: Set<EventType>?
        var inOrderTypes: Set<EventType>

        /// Drops the records of types the folds by stream do not read; throws `Mismatch` at
        /// one an in-order fold reads that is not among `inOrder` (ascending).
        func filter(_ records: inout [Record], inOrder: [UInt64]?, names: inout ProjectionEngine.EventTypeNames) throws {
            var kept = 0
            for index in records.indices {
                let record = records[index]
                var name = record.type
                let type = name.withUTF8 { names.eventType(UnsafeRawBufferPointer($0)) }
                if let type, inOrderTypes.contains(type), !Self.contains(inOrder ?? [], record.position) {
                    throw Mismatch(position: record.position)
                }
                guard streamTypes.map({ type.map($0.contains) ?? false }) ?? true else { continue }
                if kept != index { records.swapAt(kept, index) }
                kept += 1
            }
            if kept < records.count { records.removeSubrange(kept...) }
        }

        private static func contains(_ sorted: [UInt64], _ position: UInt64) -> Bool {
            var low = 0
            var high = sorted.count
            while low < high {
                let middle = (low + high) / 2
                if sorted[middle] < position { low = middle + 1 } else { high = middle }
            }
            return low < sorted.count && sorted[low] == position
        }
    }
}

/// Stream names, each kept once: the bytes in one arena, found by hash with open addressing
/// (no allocation per look-up, unlike a dictionary keyed by arrays).
struct StreamNames: Sendable {
    private var arena: [UInt8] = []
    private var spans: [(offset: Int, count: Int)] = []
    private var hashes: [Int] = []
    private var slots = [Int32](repeating: -1, count: 1 << 10)

    var count: Int { spans.count }

    /// The id of `name`, added when new.
    mutating func intern(_ name: UnsafeRawBufferPointer) -> Int32 {
        var hasher = Hasher()
        hasher.combine(bytes: name)
        let hash = hasher.finalize()
        let mask = slots.count - 1
        var slot = hash & mask
        while slots[slot] >= 0 {
            let id = Int(slots[slot])
            if hashes[id] == hash && withName(id, { $0.count == name.count && (name.isEmpty || memcmp($0.baseAddress!, name.baseAddress!, name.count) == 0) }) {
                return Int32(id)
            }
            slot = (slot + 1) & mask
        }
        let id = Int32(spans.count)
        spans.append((arena.count, name.count))
        arena.append(contentsOf: name)
        hashes.append(hash)
        slots[slot] = id
        if spans.count * 2 > slots.count { grow() }
        return id
    }

    func withName<T>(_ id: Int, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        let span = spans[id]
        return try arena.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[span.offset..<(span.offset + span.count)])) }
    }

    /// The ids, ordered by name as LMDB orders keys.
    func sortedByName() -> [Int] {
        arena.withUnsafeBytes { arena in
            func name(_ id: Int) -> UnsafeRawBufferPointer {
                let span = spans[id]
                return UnsafeRawBufferPointer(rebasing: arena[span.offset..<(span.offset + span.count)])
            }
            return (0..<spans.count).sorted { RowKey.compare(name($0), name($1)) < 0 }
        }
    }

    private mutating func grow() {
        slots = [Int32](repeating: -1, count: slots.count * 2)
        let mask = slots.count - 1
        for (id, hash) in hashes.enumerated() {
            var slot = hash & mask
            while slots[slot] >= 0 { slot = (slot + 1) & mask }
            slots[slot] = Int32(id)
        }
    }
}
