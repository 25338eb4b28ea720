import Foundation

/// Rows touched by one batch, read once and written once: a batch often changes the same
/// invoice several times. Rows are encoded deterministically (`RowCodable`).
struct RowCache<Row: RowCodable> {
    private var rows: [String: Row] = [:]
    private var order: [String] = []

    /// The row for `key`: cached, else stored, else `make()`.
    mutating func row(_ key: String, in store: ProjectionStore, table: String, make: () -> Row) throws -> Row {
        if let row = rows[key] { return row }
        let row = try store.get(table, key: Array(key.utf8)).map { try Row.fromRow($0) } ?? make()
        rows[key] = row
        order.append(key)
        return row
    }

    /// Changes the row for `key` (cached, else stored, else `make()`) in place: no copy of it
    /// is made, so appending to its arrays does not copy them either.
    mutating func update(_ key: String, in store: ProjectionStore, table: String, make: () -> Row, _ body: (inout Row) throws -> Void) throws {
        if rows[key] == nil {
            rows[key] = try store.get(table, key: Array(key.utf8)).map { try Row.fromRow($0) } ?? make()
            order.append(key)
        }
        try body(&rows[key]!)
    }

    /// Changes every cached row in place (before `flush`).
    mutating func updateAll(_ body: (inout Row) -> Void) {
        for key in order { body(&rows[key]!) }
    }

    /// Writes every touched row, in first-touch order.
    func flush(to store: ProjectionStore, table: String) throws {
        for key in order {
            guard let row = rows[key] else { continue }
            try store.put(table, key: Array(key.utf8), value: row.rowBytes())
        }
    }
}

enum RowEncoding {
    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    static func decode<Row: Decodable>(_ type: Row.Type, _ bytes: [UInt8]) throws -> Row {
        try JSONDecoder().decode(type, from: Data(bytes))
    }
}
