import FapiaoDomain
import LMDB
import Ledger

/// A projection: a pure fold of the log into tables of the ledger's environment.
///
/// `apply` sees records in log order, each once, with its `data` decoded once for all
/// projections. It may read and write only its own tables, through the store, and must be
/// deterministic: the same records give the same bytes, whether applied one batch at a time
/// as they are appended or all at once in a rebuild (`fapiao projections verify` proves it).
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
}

extension Projection {
    /// By default: the invoice key, for events on invoice streams.
    public func changedKeys(_ item: DecodedBatch.Item) -> [String] {
        item.isInvoiceEvent ? [item.record.stream] : []
    }
}

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
    public struct Item: Sendable {
        public var record: Record
        public var event: DomainEvent?
    }

    public var items: [Item]

    public init(records: [Record]) {
        items = records.map { record in
            let event = EventType(rawValue: record.type).flatMap { type in
                try? DomainEvent.decode(type: type, dataBytes: record.data).get()
            }
            return Item(record: record, event: event)
        }
    }

    public var lastPosition: UInt64? { items.last?.record.position }
}

/// A projection's tables of one generation inside one transaction.
public final class ProjectionStore {
    public let transaction: Transaction
    private let handles: [String: Table]

    init(transaction: Transaction, handles: [String: Table]) {
        self.transaction = transaction
        self.handles = handles
    }

    public func table(_ name: String) -> Table {
        guard let table = handles[name] else { preconditionFailure("projection table \(name) is not declared") }
        return table
    }

    public func get(_ name: String, key: [UInt8]) throws -> [UInt8]? {
        try transaction.get(table(name), key: key)
    }

    public func put(_ name: String, key: [UInt8], value: [UInt8]) throws {
        try transaction.put(table(name), key: key, value: value, flags: [])
    }

    public func delete(_ name: String, key: [UInt8]) throws {
        try transaction.delete(table(name), key: key)
    }
}
