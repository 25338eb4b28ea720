import LMDB
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The hash of an index key's bytes (seeded per process, as Swift's `Hasher` is). Computed once
/// per key, on the appender's side when it can be, and kept beside the key.
@inline(__always)
func keyHash(_ bytes: UnsafeRawBufferPointer) -> Int {
    var hasher = Hasher()
    hasher.combine(bytes: bytes)
    return hasher.finalize()
}

/// The recent end of the `streams` and `idempotency` indexes, kept in memory.
///
/// Why: index keys arrive in random order (invoice keys, UUIDs). Inserting them into the
/// B-trees in every append transaction dirties a different 4 KiB page per key, and a 1,000-event
/// transaction writes megabytes instead of the log's few hundred KiB. So an append writes only
/// its record; the writer keeps the keys of records after `meta.indexed` here, and merges them
/// into the B-trees in one sorted pass every `indexMergeEventsMin` events, when idle, and at
/// close, where many keys share each page. The tail is derived from the log: after a crash it
/// is rebuilt by scanning the records after `meta.indexed`, and read-only processes build their
/// own the same way, so nothing acknowledged depends on memory.
///
/// Layout: one entry per record, in log order, with its keys' bytes in one arena (the stream
/// name, then `source ‖ 0 ‖ id`, exactly the idempotency B-tree's key) and their hashes; two
/// open-addressing tables map a stream to its latest entry (entries of one stream are chained
/// backwards) and an idempotency key to its entry. No allocation per key, no reference counting.
final class TailIndex: Sendable {
    struct StreamEntry: Sendable, Equatable {
        var version: UInt64
        var position: UInt64
    }

    struct Entry: Sendable {
        var streamOffset: UInt32
        var streamCount: UInt16
        var idCount: UInt16
        var previousOfStream: Int32
        var streamHash: Int
        var idHash: Int
        var version: UInt64

        var idOffset: UInt32 { streamOffset + UInt32(streamCount) }
    }

    struct State: Sendable {
        /// The B-trees hold every record through here (as far as this tail knows).
        var indexedThrough: UInt64 = 0
        /// The tail holds every record in (indexedThrough, coveredThrough]: `entries[i]` is the
        /// record at `indexedThrough + 1 + i`.
        var coveredThrough: UInt64 = 0
        private(set) var entries: [Entry] = []
        private(set) var arena: [UInt8] = []
        /// Entry indexes (-1: empty) by stream (latest entry) and by idempotency key.
        private var streamSlots: [Int32] = []
        private var idSlots: [Int32] = []

        var count: Int { Int(coveredThrough - indexedThrough) }

        func position(ofEntry index: Int) -> UInt64 { indexedThrough + 1 + UInt64(index) }

        // MARK: Adding and removing

        /// Adds a record's keys. Idempotent: a record already covered (a reader's scan got there
        /// first) is skipped. A gap is a programmer error.
        mutating func add(
            stream: UnsafeRawBufferPointer, streamHash: Int, idKey: UnsafeRawBufferPointer, idHash: Int, version: UInt64,
            position: UInt64
        ) {
            if position <= coveredThrough { return }
            precondition(position == coveredThrough + 1, "tail entries must arrive in log order")
            if (entries.count + 1) * 2 > streamSlots.count { grow() }
            let index = Int32(entries.count)
            var entry = Entry(
                streamOffset: UInt32(arena.count), streamCount: UInt16(stream.count), idCount: UInt16(idKey.count),
                previousOfStream: -1, streamHash: streamHash, idHash: idHash, version: version)
            arena.append(contentsOf: stream)
            arena.append(contentsOf: idKey)
            let streamSlot = findStreamSlot(stream, hash: streamHash)
            if streamSlots[streamSlot] >= 0 { entry.previousOfStream = streamSlots[streamSlot] }
            entries.append(entry)
            streamSlots[streamSlot] = index
            let idSlot = findIdSlot(idKey, hash: idHash)
            idSlots[idSlot] = index  // a key seen again (it cannot be appended twice) points at the newest
            coveredThrough = position
        }

        /// Adds a record's keys from its field values (reads and the rebuild at open).
        mutating func add(stream: String, version: UInt64, source: String, id: String, position: UInt64) {
            if position <= coveredThrough { return }
            var stream = stream
            let idKey = LedgerKeys.idempotency(source: source, id: id)
            stream.withUTF8 { streamBytes in
                idKey.withUnsafeBytes { idBytes in
                    let streamBytes = UnsafeRawBufferPointer(streamBytes)
                    add(
                        stream: streamBytes, streamHash: keyHash(streamBytes), idKey: idBytes, idHash: keyHash(idBytes),
                        version: version, position: position)
                }
            }
        }

        /// Adds a stored record's keys, read from its bytes.
        mutating func add(record bytes: UnsafeRawBufferPointer, position: UInt64, keyBuffer: inout [UInt8]) throws(LedgerError) {
            if position <= coveredThrough { return }
            let fields = try RecordCodec.indexKeyFields(bytes)
            let stream = UnsafeRawBufferPointer(rebasing: bytes[fields.stream])
            keyBuffer.removeAll(keepingCapacity: true)
            keyBuffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[fields.source]))
            keyBuffer.append(0)
            keyBuffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[fields.id]))
            keyBuffer.withUnsafeBytes { idKey in
                add(
                    stream: stream, streamHash: keyHash(stream), idKey: idKey, idHash: keyHash(idKey), version: fields.streamVersion,
                    position: position)
            }
        }

        /// Removes the newest entry (a refused request's planned appends, a failed batch).
        private mutating func removeLast() {
            let index = Int32(entries.count - 1)
            let entry = entries[Int(index)]
            let streamSlot = slot(holding: index, hash: entry.streamHash, in: streamSlots)!
            if entry.previousOfStream >= 0 {
                streamSlots[streamSlot] = entry.previousOfStream
            } else {
                let entries = self.entries
                Self.delete(streamSlot, from: &streamSlots) { entries[Int($0)].streamHash }
            }
            if let idSlot = slot(holding: index, hash: entry.idHash, in: idSlots) {
                let entries = self.entries
                Self.delete(idSlot, from: &idSlots) { entries[Int($0)].idHash }
            }
            arena.removeSubrange(Int(entry.streamOffset)...)
            entries.removeLast()
            coveredThrough -= 1
        }

        /// Forgets entries after `position`: a refused request, or a batch whose transaction failed.
        mutating func truncate(after position: UInt64) {
            while coveredThrough > max(position, indexedThrough) { removeLast() }
        }

        /// Forgets what the B-trees now hold.
        mutating func prune(through position: UInt64) {
            guard position > indexedThrough else { return }
            if position >= coveredThrough {
                entries.removeAll(keepingCapacity: true)
                arena.removeAll(keepingCapacity: true)
                for i in streamSlots.indices { streamSlots[i] = -1 }
                for i in idSlots.indices { idSlots[i] = -1 }
                indexedThrough = position
                coveredThrough = position
                return
            }
            // Keep the entries after `position` and rebuild the tables around them.
            let dropped = Int(position - indexedThrough)
            let kept = Array(entries[dropped...])
            let shift = kept[0].streamOffset
            entries.removeAll(keepingCapacity: true)
            arena.removeSubrange(0..<Int(shift))
            for i in streamSlots.indices { streamSlots[i] = -1 }
            for i in idSlots.indices { idSlots[i] = -1 }
            indexedThrough = position
            coveredThrough = position
            for var entry in kept {
                entry.streamOffset -= shift
                let index = Int32(entries.count)
                let streamSlot = withKey(of: entry, stream: true) { findStreamSlot($0, hash: entry.streamHash) }
                entry.previousOfStream = streamSlots[streamSlot]
                streamSlots[streamSlot] = index
                let idSlot = withKey(of: entry, stream: false) { findIdSlot($0, hash: entry.idHash) }
                idSlots[idSlot] = index
                entries.append(entry)
                coveredThrough += 1
            }
        }

        // MARK: Looking up

        /// The index of the newest entry of `stream`, if any.
        func latestEntry(ofStream stream: UnsafeRawBufferPointer, hash: Int) -> Int? {
            guard !streamSlots.isEmpty else { return nil }
            let value = streamSlots[findStreamSlot(stream, hash: hash)]
            return value >= 0 ? Int(value) : nil
        }

        /// The index of the entry of idempotency key `key` (`source ‖ 0 ‖ id`), if any.
        func entry(ofIdKey key: UnsafeRawBufferPointer, hash: Int) -> Int? {
            guard !idSlots.isEmpty else { return nil }
            let value = idSlots[findIdSlot(key, hash: hash)]
            return value >= 0 ? Int(value) : nil
        }

        func entry(at index: Int) -> Entry { entries[index] }

        /// Calls `body` with the entry's stream name or idempotency key bytes.
        func withKey<T>(of entry: Entry, stream: Bool, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
            try arena.withUnsafeBytes { all in
                let start = Int(stream ? entry.streamOffset : entry.idOffset)
                let count = Int(stream ? entry.streamCount : entry.idCount)
                return try body(UnsafeRawBufferPointer(rebasing: all[start..<(start + count)]))
            }
        }

        // MARK: The tables

        private func findStreamSlot(_ key: UnsafeRawBufferPointer, hash: Int) -> Int {
            findSlot(key, hash: hash, in: streamSlots) { entry in (entry.streamHash, Int(entry.streamOffset), Int(entry.streamCount)) }
        }

        private func findIdSlot(_ key: UnsafeRawBufferPointer, hash: Int) -> Int {
            findSlot(key, hash: hash, in: idSlots) { entry in (entry.idHash, Int(entry.idOffset), Int(entry.idCount)) }
        }

        /// The slot holding `key`, or the empty slot where it would go.
        @inline(__always)
        private func findSlot(
            _ key: UnsafeRawBufferPointer, hash: Int, in slots: [Int32], _ fields: (Entry) -> (hash: Int, offset: Int, count: Int)
        ) -> Int {
            let mask = slots.count - 1
            var slot = hash & mask
            return entries.withUnsafeBufferPointer { entries in
                arena.withUnsafeBytes { arena in
                    slots.withUnsafeBufferPointer { slots in
                        while true {
                            let value = slots[slot]
                            if value < 0 { return slot }
                            let (entryHash, offset, count) = fields(entries[Int(value)])
                            if entryHash == hash && count == key.count
                                && (count == 0 || memcmp(arena.baseAddress! + offset, key.baseAddress!, count) == 0)
                            {
                                return slot
                            }
                            slot = (slot + 1) & mask
                        }
                    }
                }
            }
        }

        /// The slot whose value is `index`, probing from `hash` (nil when a newer entry of the same
        /// key took its place).
        private func slot(holding index: Int32, hash: Int, in slots: [Int32]) -> Int? {
            let mask = slots.count - 1
            var slot = hash & mask
            while slots[slot] != index {
                if slots[slot] < 0 { return nil }
                slot = (slot + 1) & mask
            }
            return slot
        }

        /// Empties `slot` and moves later entries of its probe run back (linear probing's deletion).
        private static func delete(_ slot: Int, from slots: inout [Int32], hashOf: (Int32) -> Int) {
            let mask = slots.count - 1
            var hole = slot
            var next = (hole + 1) & mask
            while slots[next] >= 0 {
                let home = hashOf(slots[next]) & mask
                // Move `next` into the hole unless its home lies cyclically in (hole, next].
                let stays = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next)
                if !stays {
                    slots[hole] = slots[next]
                    hole = next
                }
                next = (next + 1) & mask
            }
            slots[hole] = -1
        }

        /// Doubles both tables (at most half full) and reinserts every entry.
        private mutating func grow() {
            rehash(capacity: max(1024, streamSlots.count * 2))
        }

        /// Makes room for `count` entries without growing: a writer's tail fills to a merge's
        /// worth and more in every merge cycle, and each doubling rehashes every entry on the
        /// writer's path.
        mutating func reserve(entries count: Int) {
            var capacity = 1024
            while capacity < count * 2 { capacity *= 2 }
            if capacity > streamSlots.count { rehash(capacity: capacity) }
            entries.reserveCapacity(count)
            arena.reserveCapacity(count * 64)
        }

        private mutating func rehash(capacity: Int) {
            streamSlots = [Int32](repeating: -1, count: capacity)
            idSlots = [Int32](repeating: -1, count: capacity)
            for index in entries.indices {
                let entry = entries[index]
                let streamSlot = withKey(of: entry, stream: true) { findStreamSlot($0, hash: entry.streamHash) }
                // Entries come oldest first, so the last one placed is the stream's newest.
                streamSlots[streamSlot] = Int32(index)
                let idSlot = withKey(of: entry, stream: false) { findIdSlot($0, hash: entry.idHash) }
                idSlots[idSlot] = Int32(index)
            }
        }
    }

    let state = Mutex(State())
    /// Whether `synchronize` prunes what a reader's snapshot of the B-trees holds. Only in a
    /// process without a writer: the writer prunes its own tail, after a merge, when its next
    /// batch takes a fresh snapshot of the index; a reader pruning on its newer snapshot could
    /// take keys away that the writer's current snapshot lacks.
    let readersPrune: Bool

    /// Starts a tail whose B-trees hold everything through `indexed`.
    init(indexedThrough indexed: UInt64, readersPrune: Bool = true, reserving expected: Int = 0) {
        self.readersPrune = readersPrune
        state.withLock {
            if expected > 0 { $0.reserve(entries: expected) }
            $0.indexedThrough = indexed
            $0.coveredThrough = indexed
        }
    }

    /// Reads the keys of records (from, through] out of `txn`'s log, without copying data.
    static func scan(
        _ txn: Transaction, tables: LedgerTables, after from: UInt64, through: UInt64,
        _ visit: (_ stream: String, _ version: UInt64, _ source: String, _ id: String, _ position: UInt64) throws -> Void
    ) throws {
        guard through > from else { return }
        try txn.withCursor(tables.log) { cursor in
            var entry = try cursor.seek(atLeast: BigEndian.bytes(from + 1))
            while let current = entry {
                let position = BigEndian.uint64(current.key)
                guard position <= through else { break }
                let keys = try RecordCodec.indexKeys(current.value)
                try visit(keys.stream, keys.streamVersion, keys.source, keys.id, position)
                entry = try cursor.next()
            }
        }
    }

    /// Brings the tail in line with a snapshot whose `meta.indexed` is `indexed` and whose log
    /// ends at `head`: prunes what the snapshot's B-trees hold (when `readersPrune`; otherwise
    /// the tail may overlap the snapshot's B-trees, which answers the same), adds what the tail
    /// lacks. Returns false when the snapshot is older than the tail's last prune (a merge
    /// committed after the snapshot began): the caller must use a fresh snapshot.
    func synchronize(with txn: Transaction, tables: LedgerTables, indexed: UInt64, head: UInt64) throws -> Bool {
        try state.withLock { state in
            if indexed < state.indexedThrough { return false }
            if readersPrune { state.prune(through: indexed) }
            if head > state.coveredThrough {
                var keyBuffer: [UInt8] = []
                try txn.withCursor(tables.log) { cursor in
                    var entry = try cursor.seek(atLeast: BigEndian.bytes(state.coveredThrough + 1))
                    while let current = entry {
                        let position = BigEndian.uint64(current.key)
                        guard position <= head else { break }
                        try state.add(record: current.value, position: position, keyBuffer: &keyBuffer)
                        entry = try cursor.next()
                    }
                }
            }
            return true
        }
    }

    /// The latest version and position of `stream` in the tail, at or before `head`.
    func latest(of stream: String, atOrBefore head: UInt64) -> StreamEntry? {
        var stream = stream
        return stream.withUTF8 { bytes in
            let bytes = UnsafeRawBufferPointer(bytes)
            let hash = keyHash(bytes)
            return state.withLock { state in
                var index = state.latestEntry(ofStream: bytes, hash: hash)
                while let current = index {
                    let position = state.position(ofEntry: current)
                    let entry = state.entry(at: current)
                    if position <= head { return StreamEntry(version: entry.version, position: position) }
                    index = entry.previousOfStream >= 0 ? Int(entry.previousOfStream) : nil
                }
                return nil
            }
        }
    }

    func position(source: String, id: String, atOrBefore head: UInt64) -> UInt64? {
        let key = LedgerKeys.idempotency(source: source, id: id)
        return key.withUnsafeBytes { bytes in
            let hash = keyHash(bytes)
            return state.withLock { state in
                state.entry(ofIdKey: bytes, hash: hash).map { state.position(ofEntry: $0) }.flatMap { $0 <= head ? $0 : nil }
            }
        }
    }

    /// The tail's entries of `stream` from `version` on, at or before `head`, oldest first.
    func entries(of stream: String, fromVersion version: UInt64, atOrBefore head: UInt64) -> [StreamEntry] {
        var stream = stream
        return stream.withUTF8 { bytes in
            let bytes = UnsafeRawBufferPointer(bytes)
            let hash = keyHash(bytes)
            return state.withLock { state in
                var out: [StreamEntry] = []
                var index = state.latestEntry(ofStream: bytes, hash: hash)
                while let current = index {
                    let entry = state.entry(at: current)
                    if entry.version < version { break }
                    let position = state.position(ofEntry: current)
                    if position <= head { out.append(StreamEntry(version: entry.version, position: position)) }
                    index = entry.previousOfStream >= 0 ? Int(entry.previousOfStream) : nil
                }
                return out.reversed()
            }
        }
    }
}

extension RecordCodec {
    struct IndexKeys {
        var stream: String
        var streamVersion: UInt64
        var source: String
        var id: String
    }

    struct IndexKeyFields {
        var stream: Range<Int>
        var source: Range<Int>
        var id: Range<Int>
        var streamVersion: UInt64
    }

    /// Where the fields the indexes need lie in a stored record.
    static func indexKeyFields(_ bytes: UnsafeRawBufferPointer) throws(LedgerError) -> IndexKeyFields {
        guard bytes.count >= headerBytes else {
            throw .corruptRecord(position: nil, reason: "a record of \(bytes.count) bytes is shorter than its header")
        }
        var offset = fixedBytes
        func field() throws(LedgerError) -> Range<Int> {
            guard offset + 2 <= bytes.count else { throw .corruptRecord(position: position(of: bytes), reason: "field lengths do not match the record size") }
            let length = Int(BigEndian.uint16(bytes, at: offset))
            guard offset + 2 + length <= bytes.count else { throw .corruptRecord(position: position(of: bytes), reason: "field lengths do not match the record size") }
            defer { offset += 2 + length }
            return (offset + 2)..<(offset + 2 + length)
        }
        let stream = try field()
        _ = try field()  // type
        let source = try field()
        let id = try field()
        return IndexKeyFields(stream: stream, source: source, id: id, streamVersion: BigEndian.uint64(bytes, at: 10))
    }

    /// The fields the indexes need, read without decoding the rest of the record.
    static func indexKeys(_ bytes: UnsafeRawBufferPointer) throws(LedgerError) -> IndexKeys {
        guard bytes.count >= headerBytes else {
            throw .corruptRecord(position: nil, reason: "a record of \(bytes.count) bytes is shorter than its header")
        }
        var offset = fixedBytes
        func text() throws(LedgerError) -> String {
            guard offset + 2 <= bytes.count else { throw .corruptRecord(position: position(of: bytes), reason: "field lengths do not match the record size") }
            let length = Int(BigEndian.uint16(bytes, at: offset))
            guard offset + 2 + length <= bytes.count else { throw .corruptRecord(position: position(of: bytes), reason: "field lengths do not match the record size") }
            defer { offset += 2 + length }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(offset + 2)..<(offset + 2 + length)]), as: UTF8.self)
        }
        let stream = try text()
        _ = try text()  // type
        let source = try text()
        let id = try text()
        return IndexKeys(stream: stream, streamVersion: BigEndian.uint64(bytes, at: 10), source: source, id: id)
    }
}
