import Foundation
import LMDB
import Ledger

/// Where each projection stands, kept in the `projections` table beside the log and updated
/// in the same transaction as the projection's rows: rows and checkpoint never disagree.
///
/// Key: the projection's name (the generation readers use), or `name#building` (a rebuild in
/// progress). Value: JSON `{"generation","version","checkpoint","checkpointMicros"}`.
public struct CatalogEntry: Codable, Sendable, Equatable {
    /// Rebuilds write a new generation of tables and swap it in; readers follow the catalog.
    public var generation: Int
    public var version: Int
    /// The last log position applied.
    public var checkpoint: UInt64
    /// The recorded time of that record (µs since the epoch), 0 before any.
    public var checkpointMicros: Int64

    static let tableName = "projections"

    static func key(_ name: String, building: Bool = false) -> [UInt8] {
        Array((building ? name + "#building" : name).utf8)
    }

    static func read(_ name: String, building: Bool = false, table: Table, in txn: Transaction) throws -> CatalogEntry? {
        guard let bytes = try txn.get(table, key: key(name, building: building)) else { return nil }
        return try JSONDecoder().decode(CatalogEntry.self, from: Data(bytes))
    }

    func write(_ name: String, building: Bool = false, table: Table, in txn: Transaction) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try txn.put(table, key: Self.key(name, building: building), value: Array(try encoder.encode(self)), flags: [])
    }

    static func remove(_ name: String, building: Bool, table: Table, in txn: Transaction) throws {
        try txn.delete(table, key: key(name, building: building))
    }

    /// The physical name of a projection's table in a generation: `p.<projection>.<generation>.<table>`.
    static func tableName(projection: String, generation: Int, table: String) -> String {
        "p.\(projection).\(generation).\(table)"
    }
}
