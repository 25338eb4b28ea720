import Foundation
import LMDB
import Synchronization

/// A Bloom filter over key hashes (`keyHash`), blocked: a key's bits lie in one 64-bit word, so
/// a look-up costs one cache miss. At 16 bits per key about 1% of absent keys test positive.
struct KeyFilter: Sendable {
    private(set) var words: [UInt64]
    private let shift: UInt64
    /// Keys inserted (a key inserted twice counts twice).
    private(set) var count = 0

    /// A filter sized for `capacity` keys at 16 bits each.
    init(capacity: Int) {
        var wordCount = 1
        var bits: UInt64 = 0
        while wordCount < max(capacity / 4, 1024) {
            wordCount *= 2
            bits += 1
        }
        words = [UInt64](repeating: 0, count: wordCount)
        shift = 64 - bits
    }

    var capacity: Int { words.count * 4 }

    @inline(__always)
    private func locate(_ hash: Int) -> (word: Int, mask: UInt64) {
        let mixed = UInt64(bitPattern: Int64(hash)) &* 0x9E37_79B9_7F4A_7C15
        let word = Int(truncatingIfNeeded: mixed >> shift)
        let mask = (1 as UInt64) << (mixed & 63) | (1 as UInt64) << ((mixed >> 6) & 63)
            | (1 as UInt64) << ((mixed >> 12) & 63) | (1 as UInt64) << ((mixed >> 18) & 63)
        return (word, mask)
    }

    @inline(__always)
    mutating func insert(_ hash: Int) {
        let (word, mask) = locate(hash)
        words[word] |= mask
        count += 1
    }

    @inline(__always)
    func mayContain(_ hash: Int) -> Bool {
        let (word, mask) = locate(hash)
        return words[word] & mask == mask
    }

    mutating func formUnion(_ other: KeyFilter) {
        precondition(other.words.count == words.count, "filters of different sizes")
        for index in words.indices { words[index] |= other.words[index] }
        count += other.count
    }
}

/// What the `streams` and `idempotency` B-trees may hold, so the writer looks a key up in them
/// only when it may be there (the tail answers for newer keys). Most appends are new ids on new
/// or recent streams: without the filter each costs two B-tree searches.
///
/// Owned by the writer thread. It starts incomplete: the writer inserts every key it merges,
/// and a background thread scans the B-trees of a snapshot taken after that; the union of the
/// two covers every key (B-tree keys are never removed). Until the scan is in, every look-up
/// answers "maybe" and the writer searches the B-trees as before. When the filter fills past 8
/// bits per key it is rebuilt the same way at four times the size.
final class IndexFilters: @unchecked Sendable {
    private(set) var streams: KeyFilter
    private(set) var ids: KeyFilter
    private(set) var isComplete = false
    private var build: Build?
    /// Scans that failed (a storage error): after three the writer keeps searching the B-trees.
    private var failures = 0
    private let tables: LedgerTables

    private static let minimumCapacity = 1 << 18

    /// A background scan; its result is taken by the writer.
    private final class Build: Sendable {
        let cancelled = Atomic<Bool>(false)
        let result = Mutex<(streams: KeyFilter, ids: KeyFilter)?>(nil)
        let finished = DispatchSemaphore(value: 0)
    }

    init(tables: LedgerTables, capacity: Int) {
        self.tables = tables
        streams = KeyFilter(capacity: max(capacity, Self.minimumCapacity))
        ids = KeyFilter(capacity: max(capacity, Self.minimumCapacity))
    }

    /// Whether the `streams` B-tree may hold versions of a stream with this name hash.
    @inline(__always)
    func mayHoldStream(_ hash: Int) -> Bool { !isComplete || streams.mayContain(hash) }

    /// Whether the `idempotency` B-tree may hold a key with this hash.
    @inline(__always)
    func mayHoldID(_ hash: Int) -> Bool { !isComplete || ids.mayContain(hash) }

    /// Notes keys about to be merged into the B-trees.
    func insert(streamHash: Int, idHash: Int) {
        streams.insert(streamHash)
        ids.insert(idHash)
    }

    /// Called by the writer between batches: starts the scan when none ran yet, takes its
    /// result when it is in, and starts a bigger filter when this one is full.
    func maintain() {
        if let build {
            guard build.finished.wait(timeout: .now()) == .success else { return }  // still scanning
            self.build = nil
            if let result = build.result.withLock({ $0 }) {
                streams.formUnion(result.streams)
                ids.formUnion(result.ids)
                isComplete = true
            } else {
                failures += 1
            }
        } else if !isComplete {
            if failures < 3 { start() }
        } else if streams.count > 2 * streams.capacity || ids.count > 2 * ids.capacity {
            let capacity = 4 * max(streams.count, ids.count)
            streams = KeyFilter(capacity: capacity)
            ids = KeyFilter(capacity: capacity)
            isComplete = false
            start()
        }
    }

    /// Stops a running scan and waits for its thread (before the environment closes).
    func stop() {
        guard let build else { return }
        build.cancelled.store(true, ordering: .relaxed)
        build.finished.wait()
        self.build = nil
    }

    private func start() {
        let build = Build()
        self.build = build
        let environment = tables.index
        let tables = tables
        let empty = (streams: KeyFilter(capacity: streams.capacity), ids: KeyFilter(capacity: ids.capacity))
        let thread = Thread {
            defer { build.finished.signal() }
            var filters = empty
            do {
                let complete = try environment.read { txn in
                    try Self.scan(txn, tables: tables, into: &filters, cancelled: build.cancelled)
                }
                if complete { build.result.withLock { $0 = filters } }
            } catch {
                // Left incomplete: the writer keeps searching the B-trees. A later filter may try again.
            }
        }
        thread.name = "fapiao-index-filter"
        thread.start()
    }

    /// Inserts every key of the snapshot's B-trees; false when cancelled.
    private static func scan(
        _ txn: Transaction, tables: LedgerTables, into filters: inout (streams: KeyFilter, ids: KeyFilter), cancelled: borrowing Atomic<Bool>
    ) throws -> Bool {
        var seen = 0
        for slot in try txn.indexRuns(tables: tables) {
            let complete = try txn.withCursor(tables.streamRuns[slot]) { cursor in
                var entry = try cursor.first()
                var previous: UnsafeRawBufferPointer?
                while let current = entry {
                    // stream ‖ 0 ‖ version: one insert per stream (its versions are adjacent).
                    let name = UnsafeRawBufferPointer(rebasing: current.key[0..<max(current.key.count - 9, 0)])
                    if previous.map({ !$0.elementsEqual(name) }) ?? true {
                        filters.streams.insert(keyHash(name))
                        previous = name
                    }
                    seen += 1
                    if seen & 4095 == 0 && cancelled.load(ordering: .relaxed) { return false }
                    entry = try cursor.next()
                }
                return true
            }
            guard complete else { return false }
            let idsComplete = try txn.withCursor(tables.idRuns[slot]) { cursor in
                var entry = try cursor.first()
                while let current = entry {
                    filters.ids.insert(keyHash(current.key))
                    seen += 1
                    if seen & 4095 == 0 && cancelled.load(ordering: .relaxed) { return false }
                    entry = try cursor.next()
                }
                return true
            }
            guard idsComplete else { return false }
        }
        return true
    }
}
