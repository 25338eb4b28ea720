import LMDB
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A string keyed by its UTF-8 bytes: hashing and equality byte for byte, as the indexes
/// compare (Swift's `String ==` would merge canonically equal names that are different keys).
struct ByteKey: Hashable, Sendable {
    let text: String

    init(_ text: String) {
        var text = text
        text.makeContiguousUTF8()
        self.text = text
    }

    func hash(into hasher: inout Hasher) {
        text.utf8.withContiguousStorageIfAvailable { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }

    static func == (a: ByteKey, b: ByteKey) -> Bool {
        let x = a.text.utf8
        let y = b.text.utf8
        guard x.count == y.count else { return false }
        if x.isEmpty { return true }
        return x.withContiguousStorageIfAvailable { left in
            y.withContiguousStorageIfAvailable { right in memcmp(left.baseAddress!, right.baseAddress!, left.count) == 0 }
        }.flatMap { $0 } ?? x.elementsEqual(y)
    }
}

/// `(source, id)`, hashed and compared by bytes.
struct IdKey: Hashable, Sendable {
    let source: ByteKey
    let id: ByteKey

    init(source: String, id: String) {
        self.source = ByteKey(source)
        self.id = ByteKey(id)
    }
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
final class TailIndex: Sendable {
    struct StreamEntry: Sendable, Equatable {
        var version: UInt64
        var position: UInt64
    }

    struct State: Sendable {
        /// The B-trees hold every record through here (as far as this tail knows).
        var indexedThrough: UInt64 = 0
        /// The tail holds every record in (indexedThrough, coveredThrough].
        var coveredThrough: UInt64 = 0
        var streams: [ByteKey: [StreamEntry]] = [:]
        var ids: [IdKey: UInt64] = [:]

        var count: Int { Int(coveredThrough - indexedThrough) }

        /// Adds a record's keys. Idempotent: a record already covered (a reader's scan got there
        /// first) is skipped. A gap is a programmer error.
        mutating func add(stream: String, version: UInt64, source: String, id: String, position: UInt64) {
            if position <= coveredThrough { return }
            precondition(position == coveredThrough + 1, "tail entries must arrive in log order")
            streams[ByteKey(stream), default: []].append(StreamEntry(version: version, position: position))
            ids[IdKey(source: source, id: id)] = position
            coveredThrough = position
        }

        /// Forgets entries after `position`: a batch whose transaction failed.
        mutating func truncate(after position: UInt64) {
            guard position < coveredThrough else { return }
            for (key, entries) in streams where entries.last.map({ $0.position > position }) ?? false {
                let kept = entries.filter { $0.position <= position }
                streams[key] = kept.isEmpty ? nil : kept
            }
            ids = ids.filter { $0.value <= position }
            coveredThrough = max(position, indexedThrough)
        }

        /// Forgets what the B-trees now hold.
        mutating func prune(through position: UInt64) {
            guard position > indexedThrough else { return }
            if position >= coveredThrough {
                streams.removeAll(keepingCapacity: true)
                ids.removeAll(keepingCapacity: true)
                coveredThrough = position
            } else {
                for (key, entries) in streams {
                    let kept = entries.filter { $0.position > position }
                    streams[key] = kept.isEmpty ? nil : kept
                }
                ids = ids.filter { $0.value > position }
            }
            indexedThrough = position
        }
    }

    let state = Mutex(State())

    /// Starts a tail whose B-trees hold everything through `indexed`.
    init(indexedThrough indexed: UInt64) {
        state.withLock {
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
    /// ends at `head`: prunes what the snapshot's B-trees hold, adds what the tail lacks.
    /// Returns false when the snapshot is older than the tail's last prune (a merge committed
    /// after the snapshot began): the caller must use a fresh snapshot.
    func synchronize(with txn: Transaction, tables: LedgerTables, indexed: UInt64, head: UInt64) throws -> Bool {
        try state.withLock { state in
            if indexed < state.indexedThrough { return false }
            state.prune(through: indexed)
            if head > state.coveredThrough {
                try Self.scan(txn, tables: tables, after: state.coveredThrough, through: head) { stream, version, source, id, position in
                    state.add(stream: stream, version: version, source: source, id: id, position: position)
                }
            }
            return true
        }
    }

    /// The latest version and position of `stream` in the tail, at or before `head`.
    func latest(of stream: ByteKey, atOrBefore head: UInt64) -> StreamEntry? {
        state.withLock { state in state.streams[stream]?.last { $0.position <= head } }
    }

    func position(of key: IdKey, atOrBefore head: UInt64) -> UInt64? {
        state.withLock { state in state.ids[key].flatMap { $0 <= head ? $0 : nil } }
    }

    /// The tail's entries of `stream` from `version` on, at or before `head`.
    func entries(of stream: ByteKey, fromVersion version: UInt64, atOrBefore head: UInt64) -> [StreamEntry] {
        state.withLock { state in
            (state.streams[stream] ?? []).filter { $0.version >= version && $0.position <= head }
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
