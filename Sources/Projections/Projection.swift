import FapiaoDomain
import LMDB
import Ledger

/// A projection: a pure fold of the log into tables of the ledger's environment.
///
/// As the log grows, `apply` sees the records in log order, each once, in batches, with their
/// `data` decoded once for all projections. It may read and write only its own tables, through
/// the store, and must be deterministic: the same records give the same bytes however the log
/// is cut into batches. A rebuild may feed it otherwise, as its declarations allow: only its
/// `eventTypes`, a stream at a time (`StreamPartitionedProjection`), or not at all
/// (`DerivableProjection`); the rows must be the same bytes (`fapiao projections verify` and
/// the property tests compare them).
public protocol Projection: Sendable {
    /// Stable name; table names derive from it.
    var name: String { get }
    /// Bump when rows or the fold change: a stored projection of another version is rebuilt.
    var version: Int { get }
    /// Its tables, by logical name, with their LMDB flags.
    var tables: [ProjectionTableSpec] { get }
    /// Folds `batch` into the tables.
    func apply(_ batch: DecodedBatch, to store: ProjectionStore) throws
    /// The row keys an item changes (what change subscribers are told).
    func changedKeys(_ item: DecodedBatch.Item) -> [String]
    /// The only event types `apply` does anything with (nil: any). A rebuild reads and decodes
    /// only these for it, and `apply` must give the same rows without the others.
    var eventTypes: Set<EventType>? { get }
}

extension Projection {
    public var eventTypes: Set<EventType>? { nil }

    /// By default: the invoice key, for events on invoice streams.
    public func changedKeys(_ item: DecodedBatch.Item) -> [String] {
        item.isInvoiceEvent ? [item.record.stream] : []
    }
}

/// A projection whose rows a rebuild can compute from another projection's rebuilt rows
/// instead of folding every record: `status_views` from `invoice_state`'s.
///
/// When a rebuild builds both, and folds the source a stream at a time, it calls
/// `applyUnderived` (not `apply`) for the records of `underivedEventTypes`, first, then `derive`
/// with the source's final rows of each group of whole streams, as the source is folded. The
/// rows must be the ones `apply` gives, byte for byte: `projections verify` and the property tests
/// compare them with the incrementally maintained rows. Otherwise (rebuilt alone) it folds.
public protocol DerivableProjection: Projection {
    /// The projection and table whose rows `derive` reads.
    var derivedFrom: (projection: String, table: String) { get }
    /// Folds what is not derived from the source's rows (in a rebuild that builds both).
    func applyUnderived(_ batch: DecodedBatch, to store: ProjectionStore) throws
    /// The only event types `applyUnderived` does anything with (nil: any).
    var underivedEventTypes: Set<EventType>? { get }
    /// Adds the rows that `rows` (final rows of the source table, in no particular order, each
    /// once) give, after `applyUnderived` has seen every record.
    func derive(fromRows rows: [SourceRow], to store: ProjectionStore) throws
}

/// A final row of a derivation's source table: its bytes, and the value they encode when the
/// source's fold handed it over (`RowHandingProjection`), so that it need not be decoded again.
public struct SourceRow: @unchecked Sendable {
    public var bytes: [UInt8]
    /// Nil: decode `bytes`.
    public var value: Any?

    public init(bytes: [UInt8], value: Any? = nil) {
        self.bytes = bytes
        self.value = value
    }
}

/// A source of derivations whose fold can hand a rebuild the rows it wrote to the derived-from
/// table with the values they encode (`invoice_state`: each invoice's state).
public protocol RowHandingProjection: StreamPartitionedProjection {
    /// The table whose rows `applyHandingRows` returns.
    var handedTable: String { get }
    /// `apply`, returning the rows it put into `handedTable`, in the order put.
    func applyHandingRows(_ batch: DecodedBatch, to store: ProjectionStore) throws -> [(key: String, row: SourceRow)]
}

/// A projection whose rows are folded per stream: the rows it writes for a stream's events are
/// keyed by that stream alone and depend on that stream's events alone, and `apply` reads no
/// row of another stream. So a rebuild may fold it a stream at a time instead of in log order:
/// each batch holds every event of some streams, each stream's in log order, and no row of
/// those streams is stored yet (`invoice_state` and `search`: an invoice's stream is its key).
public protocol StreamPartitionedProjection: Projection {}

public struct ProjectionTableSpec: Sendable {
    public var name: String
    public var flags: TableFlags

    public init(_ name: String, flags: TableFlags = []) {
        self.name = name
        self.flags = flags
    }
}

/// Records with their `data` decoded (nil when the type is not one of the contract's, or the
/// data does not decode: the ledger keeps such facts, projections skip them).
public struct DecodedBatch: Sendable {
    /// A class: every projection of a batch reads each item, and copying a struct of a dozen
    /// strings and arrays costs a retain for each.
    public final class Item: Sendable {
        public let record: Record
        public let event: DomainEvent?

        public init(record: Record, event: DomainEvent?) {
            self.record = record
            self.event = event
        }
    }

    public var items: [Item]

    /// Takes the records: each moves into its item (a copy would retain and release every
    /// string of it), when the caller hands over the only reference to the array.
    public init(records: consuming [Record]) {
        var records = records
        var items: [Item] = []
        items.reserveCapacity(records.count)
        while let record = records.popLast() {
            let event = EventType(rawValue: record.type).flatMap { type in
                try? DomainEvent.decode(type: type, dataBytes: record.data).get()
            }
            items.append(Item(record: record, event: event))
        }
        items.reverse()
        self.items = items
    }

    public var lastPosition: UInt64? { items.last?.record.position }
}

/// A projection's tables of one generation inside one transaction, or, during a rebuild, a
/// `RowBuffer` in memory over them (see `RowBuffer`): projections read and write the same way.
public final class ProjectionStore {
    /// For queries. A projection's `apply` reads and writes through `get`, `put`, `delete` and
    /// `keys` only: during a rebuild the transaction does not see the rows still in the buffer.
    public let transaction: Transaction
    private let handles: [String: Table]
    private let buffer: RowBuffer?
    private let ledger: Ledger?

    init(transaction: Transaction, handles: [String: Table], buffer: RowBuffer? = nil, ledger: Ledger? = nil) {
        self.transaction = transaction
        self.handles = handles
        self.buffer = buffer
        self.ledger = ledger
    }

    /// The record at `position` as this store's transaction sees the log (an `apply` may read
    /// records before the batch's: `search` reads an invoice's previous issue).
    public func record(at position: UInt64) throws -> Record? {
        guard let ledger else { return nil }
        return try ledger.records(from: position, limit: 1, in: transaction).first { $0.position == position }
    }

    public func table(_ name: String) -> Table {
        guard let table = handles[name] else { preconditionFailure("projection table \(name) is not declared") }
        return table
    }

    public func get(_ name: String, key: [UInt8]) throws -> [UInt8]? {
        if let buffer {
            switch buffer.lookup(name, key) {
            case let .row(value): return value
            case .deleted: return nil
            case .absent: if !buffer.hasFlushed(name) { return nil }
            }
        }
        return try transaction.get(table(name), key: key)
    }

    public func put(_ name: String, key: [UInt8], value: [UInt8]) throws {
        if let buffer { return buffer.put(name, key, value) }
        try transaction.put(table(name), key: key, value: value, flags: [])
    }

    public func delete(_ name: String, key: [UInt8]) throws {
        if let buffer { return buffer.delete(name, key) }
        try transaction.delete(table(name), key: key)
    }

    /// The keys of `name` that start with `prefix`, in key order.
    public func keys(_ name: String, withPrefix prefix: [UInt8]) throws -> [[UInt8]] {
        var stored: [[UInt8]] = []
        if buffer?.hasFlushed(name) ?? true {
            try transaction.withCursor(table(name)) { cursor in
                var entry = try cursor.seek(atLeast: prefix)
                while let current = entry, current.key.starts(with: prefix) {
                    stored.append(Array(current.key))
                    entry = try cursor.next()
                }
            }
        }
        guard let buffer else { return stored }
        return buffer.merge(name, prefix: prefix, stored: stored)
    }
}
