import Foundation

/// Rows touched by one batch, read once and written once: a batch often changes the same
/// invoice several times. Rows are encoded deterministically (`RowCodable`).
struct RowCache<Row: RowCodable> {
    /// Rows in first-touch order, found by key: read, changed and encoded in place (a row taken
    /// out of a dictionary is a copy, and a copy retains every string and array it holds).
    private var keys: [String] = []
    private var values: [Row] = []
    private var indices: [String: Int] = [:]

    /// The row for `key`: cached, else stored, else `make()`.
    mutating func row(_ key: String, in store: ProjectionStore, table: String, make: () -> Row) throws -> Row {
        values[try index(key, in: store, table: table, make: make)]
    }

    /// Changes the row for `key` (cached, else stored, else `make()`) in place: no copy of it
    /// is made, so appending to its arrays does not copy them either.
    mutating func update(_ key: String, in store: ProjectionStore, table: String, make: () -> Row, _ body: (inout Row) throws -> Void) throws {
        try body(&values[try index(key, in: store, table: table, make: make)])
    }

    private mutating func index(_ key: String, in store: ProjectionStore, table: String, make: () -> Row) throws -> Int {
        if let index = indices[key] { return index }
        let row = try store.get(table, key: Array(key.utf8)).map { try Row.fromRow($0) } ?? make()
        indices[key] = values.count
        keys.append(key)
        values.append(row)
        return values.count - 1
    }

    /// Changes every cached row in place (before `flush`).
    mutating func updateAll(_ body: (inout Row) -> Void) {
        for index in values.indices { body(&values[index]) }
    }

    /// Writes every touched row, in first-touch order.
    func flush(to store: ProjectionStore, table: String) throws {
        for index in values.indices {
            try store.put(table, key: Array(keys[index].utf8), value: values[index].rowBytes())
        }
    }

    /// `flush`, returning each row written with its value.
    func flushHandingRows(to store: ProjectionStore, table: String) throws -> [(key: String, row: SourceRow)] {
        var rows: [(key: String, row: SourceRow)] = []
        rows.reserveCapacity(values.count)
        for index in values.indices {
            let bytes = values[index].rowBytes()
            try store.put(table, key: Array(keys[index].utf8), value: bytes)
            rows.append((keys[index], SourceRow(bytes: bytes, value: values[index])))
        }
        return rows
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
