import LMDB
#if canImport(Glibc)
import Glibc
#endif

/// A row key, hashed and compared by its bytes in one call each (an `[UInt8]` hashes byte by
/// byte) and ordered as LMDB orders keys.
struct RowKey: Hashable, Sendable {
    let bytes: [UInt8]

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    static func == (a: RowKey, b: RowKey) -> Bool {
        a.bytes.count == b.bytes.count && compare(a.bytes, b.bytes) == 0
    }

    static func compare(_ a: [UInt8], _ b: [UInt8]) -> Int32 {
        a.withUnsafeBytes { x in b.withUnsafeBytes { y in compare(x, y) } }
    }

    /// LMDB's default key order.
    static func compare(_ x: UnsafeRawBufferPointer, _ y: UnsafeRawBufferPointer) -> Int32 {
        KeyOrder.compare(x, y)
    }
}

/// A rebuild's rows in memory, in front of the new generation's tables.
///
/// Why: a rebuild folds the whole log into empty tables that no reader sees until the swap.
/// Writing each row as it changes means a random B-tree put (and often a get and a delete)
/// per row change, on the writer thread. Instead the fold runs against this buffer, off the
/// writer thread, and the buffer is written out sorted: into empty tables with `MDB_APPEND`,
/// page after page. When it outgrows its budget it is written out the same way (plain puts
/// and deletes, still in key order, once something is stored) and emptied; reads then fall
/// through to the stored rows. The rows are the same bytes either way: the fold does not know.
final class RowBuffer: @unchecked Sendable {
    enum Entry {
        case row([UInt8])
        case deleted
    }

    enum Lookup {
        case row([UInt8])
        case deleted
        case absent
    }

    /// One table's changes: a log of them in order until the fold first reads the table after writing to it, then
    /// a map (most tables of a projection are only written: index entries, views).
    private struct TableChanges {
        var log = ChangeLog()
        var map: [RowKey: Entry]?

        var isEmpty: Bool { log.isEmpty && (map?.isEmpty ?? true) }

        mutating func indexed() -> [RowKey: Entry] {
            if let map { return map }
            var built = [RowKey: Entry](minimumCapacity: log.count)
            for index in log.indices { built[RowKey(bytes: log.key(index))] = log.entry(index) }
            log = ChangeLog()
            map = built
            return built
        }
    }

    /// The tables, by slot: a projection has a handful, so a linear search of their names (short
    /// strings, compared in a word or two) beats hashing the name on every put.
    private var names: [String] = []
    private var tables: [TableChanges] = []
    /// The tables something was written out to: keys absent here may be stored there.
    private var flushed: [Bool] = []
    /// A rough count of the memory the changes hold (keys, values and per-entry overhead).
    private(set) var approximateBytes = 0
    private static let entryOverhead = 96

    /// `flushed`: tables whose rows are already stored (reads fall through to them).
    init(tables names: [String], flushed: Set<String> = []) {
        for name in names + flushed.sorted() where !self.names.contains(name) {
            self.names.append(name)
            tables.append(TableChanges())
            self.flushed.append(flushed.contains(name))
        }
    }

    /// The slot of table `name`, added when it is new.
    private func slot(_ name: String) -> Int {
        if let slot = names.firstIndex(of: name) { return slot }
        names.append(name)
        tables.append(TableChanges())
        flushed.append(false)
        return names.count - 1
    }

    /// The tables something was written out to.
    var flushedTables: Set<String> { Set(names.indices.filter { flushed[$0] }.map { names[$0] }) }

    /// The rows `table` holds here (the last change of each key, deleted ones left out), in no
    /// particular order.
    func rows(_ table: String) -> [[UInt8]] {
        guard let slot = names.firstIndex(of: table) else { return [] }
        return tables[slot].indexed().values.compactMap { entry in
            if case let .row(value) = entry { return value }
            return nil
        }
    }

    /// Whether rows of `table` were written out: a key absent here may be stored.
    func hasFlushed(_ table: String) -> Bool { names.firstIndex(of: table).map { flushed[$0] } ?? false }

    func lookup(_ table: String, _ key: [UInt8]) -> Lookup {
        // Nothing changed yet: nothing to find, and no map to build (a fold that reads each
        // row before it writes any, as a row cache does, keeps the cheaper log).
        guard let slot = names.firstIndex(of: table), tables[slot].map != nil || !tables[slot].log.isEmpty else { return .absent }
        switch tables[slot].indexed()[RowKey(bytes: key)] {
        case let .row(value)?: return .row(value)
        case .deleted?: return .deleted
        case nil: return .absent
        }
    }

    func put(_ table: String, _ key: [UInt8], _ value: [UInt8]) {
        record(slot(table), key, .row(value))
        approximateBytes += key.count + value.count + Self.entryOverhead
    }

    func delete(_ table: String, _ key: [UInt8]) {
        record(slot(table), key, .deleted)
        approximateBytes += key.count + Self.entryOverhead
    }

    private func record(_ slot: Int, _ key: [UInt8], _ entry: Entry) {
        if tables[slot].map != nil {
            tables[slot].map![RowKey(bytes: key)] = entry
        } else {
            tables[slot].log.append(key, entry)
        }
    }

    /// Moves `other`'s changes after this buffer's (a rebuild's per-batch buffers into the
    /// one that is written out), leaving `other` empty.
    func absorb(_ other: RowBuffer) {
        for (otherSlot, name) in other.names.enumerated() where !other.tables[otherSlot].isEmpty {
            let changes = other.tables[otherSlot]
            other.tables[otherSlot] = TableChanges()
            let slot = slot(name)
            if let map = changes.map {
                for (key, entry) in map { record(slot, key.bytes, entry) }
            } else if tables[slot].map == nil {
                tables[slot].log.append(contentsOf: changes.log)
            } else {
                for index in changes.log.indices { record(slot, changes.log.key(index), changes.log.entry(index)) }
            }
        }
        approximateBytes += other.approximateBytes
        other.approximateBytes = 0
    }

    /// `stored` (keys of the table with `prefix`, in order) overlaid with this buffer's
    /// changes under the same prefix, in key order.
    func merge(_ table: String, prefix: [UInt8], stored: [[UInt8]]) -> [[UInt8]] {
        var keys = Set(stored.map { RowKey(bytes: $0) })
        for (key, entry) in tables[slot(table)].indexed() where key.bytes.starts(with: prefix) {
            switch entry {
            case .row: keys.insert(key)
            case .deleted: keys.remove(key)
            }
        }
        return keys.map(\.bytes).sorted { RowKey.compare($0, $1) < 0 }
    }

    /// The changes held: the rows `drain` gives, and more when a key changed more than once.
    var changeCount: Int {
        tables.reduce(0) { $0 + ($1.map?.count ?? $1.log.count) }
    }

    /// Empties the buffer into sorted runs, one per table, for `write`: the last change of
    /// each key, in key order.
    func drain() -> [SortedRun] {
        var runs: [SortedRun] = []
        for (slot, name) in names.enumerated().sorted(by: { $0.element < $1.element }) {
            let changes = tables[slot]
            guard !changes.isEmpty else { continue }
            tables[slot] = TableChanges()
            var log = changes.log
            if let map = changes.map {
                log = ChangeLog()
                for (key, entry) in map { log.append(key.bytes, entry) }
            }
            runs.append(SortedRun(table: name, log: log, order: log.lastChangesPerKey(), intoEmptyTable: !flushed[slot]))
            flushed[slot] = true
        }
        approximateBytes = 0
        return runs
    }
}

/// Changes in the order made, every key and value in one array (no allocation per change).
///
/// Why one array: writing out reads the changes in key order, that is in no order in memory,
/// and a change that was a span, an entry and a value array of its own cost three or four cache
/// misses on LMDB's single writer thread, most of its time. Here a change is its key and value
/// side by side, and the sort hands the writer their places in key order.
struct ChangeLog {
    /// Where one change's key and then its value are in its segment's `bytes`.
    struct Change {
        var offset: Int
        var keyCount: Int32
        /// Negative: the key is deleted.
        var valueCount: Int32
    }

    /// Changes made one after another. A log appended to another hands its segments over, so a
    /// rebuild's per-group buffers join the large ones without copying their bytes.
    struct Segment {
        var bytes: [UInt8] = []
        var changes: [Change] = []
    }

    private(set) var segments: [Segment] = []
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    /// Every change's index, in the order made. An index is `segment << 32 | change`, so
    /// indices order the changes as made.
    var indices: [Int] {
        var out: [Int] = []
        out.reserveCapacity(count)
        for (number, segment) in segments.enumerated() {
            for local in segment.changes.indices { out.append(number << 32 | local) }
        }
        return out
    }

    mutating func append(_ key: [UInt8], _ entry: RowBuffer.Entry) {
        if segments.isEmpty || segments[segments.count - 1].changes.count == Int(UInt32.max) { segments.append(Segment()) }
        let last = segments.count - 1
        let offset = segments[last].bytes.count
        segments[last].bytes.append(contentsOf: key)
        switch entry {
        case let .row(value):
            segments[last].bytes.append(contentsOf: value)
            segments[last].changes.append(Change(offset: offset, keyCount: Int32(key.count), valueCount: Int32(value.count)))
        case .deleted:
            segments[last].changes.append(Change(offset: offset, keyCount: Int32(key.count), valueCount: -1))
        }
        count += 1
    }

    /// Appends `other`'s changes after these: its segments are handed over, not copied.
    mutating func append(contentsOf other: ChangeLog) {
        segments.append(contentsOf: other.segments.lazy.filter { !$0.changes.isEmpty })
        count += other.count
    }

    func change(_ index: Int) -> Change {
        segments[index >> 32].changes[index & 0xFFFF_FFFF]
    }

    func key(_ index: Int) -> [UInt8] {
        withKey(index) { Array($0) }
    }

    func entry(_ index: Int) -> RowBuffer.Entry {
        let change = change(index)
        guard change.valueCount >= 0 else { return .deleted }
        let start = change.offset + Int(change.keyCount)
        return .row(Array(segments[index >> 32].bytes[start..<(start + Int(change.valueCount))]))
    }

    func withKey<T>(_ index: Int, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        let change = change(index)
        return try segments[index >> 32].bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[change.offset..<(change.offset + Int(change.keyCount))])) }
    }

    /// The last change of each key, in key order, each with its segment.
    func lastChangesPerKey() -> [(segment: Int, change: Change)] {
        lastChangePerKey().map { ($0 >> 32, change($0)) }
    }

    /// The indices of the last change of each key, in key order (LMDB's: bytes, then the shorter
    /// first).
    ///
    /// A multikey sort: the changes are sorted by their first 24 key bytes, taken as three
    /// integers; each run of changes whose 24 bytes are equal is sorted by the next 24, and so on.
    /// Index keys share long beginnings (a field name, a date, a company's name), and comparing
    /// them byte by byte from the start was most of a write-out's sorting.
    func lastChangePerKey() -> [Int] {
        struct Item {
            /// The key's bytes in the window being sorted by, zero past its end.
            var words: (UInt64, UInt64, UInt64)
            var keyCount: Int
            var index: Int
        }
        let window = 24
        do {
            func words(_ index: Int, level: Int) -> (UInt64, UInt64, UInt64) {
                let change = change(index)
                let from = change.offset + level * window
                let to = change.offset + min(Int(change.keyCount), (level + 1) * window)
                var padded: (UInt64, UInt64, UInt64) = (0, 0, 0)
                if from < to {
                    segments[index >> 32].bytes.withUnsafeBytes { bytes in
                        withUnsafeMutableBytes(of: &padded) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[from..<to])) }
                    }
                }
                return (UInt64(bigEndian: padded.0), UInt64(bigEndian: padded.1), UInt64(bigEndian: padded.2))
            }
            var items = indices.map { Item(words: words($0, level: 0), keyCount: Int(change($0).keyCount), index: $0) }
            // A change superseded by a later one to the same key.
            var superseded = [Bool](repeating: false, count: items.count)
            var pending: [(range: Range<Int>, level: Int)] = [(0..<items.count, 0)]
            while let (range, level) = pending.popLast() {
                if level > 0 {
                    for position in range { items[position].words = words(items[position].index, level: level) }
                }
                items[range].sort { $0.words < $1.words }
                var start = range.lowerBound
                while start < range.upperBound {
                    var end = start + 1
                    while end < range.upperBound && items[end].words == items[start].words { end += 1 }
                    if end - start > 1 {
                        if items[start..<end].contains(where: { $0.keyCount > (level + 1) * window }) {
                            pending.append((start..<end, level + 1))
                        } else {
                            // Every key ends in this window and the bytes are equal: shorter keys
                            // first, and the changes to one key in the order made.
                            items[start..<end].sort { ($0.keyCount, $0.index) < ($1.keyCount, $1.index) }
                            for position in start..<(end - 1) where items[position].keyCount == items[position + 1].keyCount {
                                superseded[position] = true
                            }
                        }
                    }
                    start = end
                }
            }
            var out: [Int] = []
            out.reserveCapacity(items.count)
            for position in items.indices where !superseded[position] { out.append(items[position].index) }
            return out
        }
    }
}

/// One table's buffered changes in key order.
struct SortedRun: @unchecked Sendable {
    var table: String
    var log: ChangeLog
    /// The last change of each key, in key order (places in `log`'s segments).
    var order: [(segment: Int, change: ChangeLog.Change)]
    /// The table is empty: rows can be appended (`MDB_APPEND`, which also checks the order).
    var intoEmptyTable: Bool

    var count: Int { order.count }

    /// Writes the changes `order[range]` into `table`.
    /// Rows are put through one cursor: in key order, LMDB finds each key's place from where
    /// the last one went, without a descent from the root.
    func write(_ range: Range<Int>, to table: Table, in txn: Transaction) throws {
        try txn.withCursor(table) { cursor in
            try order.withUnsafeBufferPointer { order in
                for (segment, change) in order[range] {
                    try log.segments[segment].bytes.withUnsafeBytes { bytes in
                        let valueStart = change.offset + Int(change.keyCount)
                        let key = UnsafeRawBufferPointer(rebasing: bytes[change.offset..<valueStart])
                        if change.valueCount >= 0 {
                            let value = UnsafeRawBufferPointer(rebasing: bytes[valueStart..<(valueStart + Int(change.valueCount))])
                            try cursor.put(key: key, value: value, flags: intoEmptyTable ? [.append] : [])
                        } else if !intoEmptyTable, try cursor.seek(exactly: key) != nil {
                            try cursor.deleteCurrent()
                        }
                    }
                }
            }
        }
    }
}
