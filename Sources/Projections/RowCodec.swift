import Foundation

/// How a projection row is stored. Rows on hot paths (one per invoice, rewritten on every
/// event of it; one per system user) use a compact binary form; rare rows (systems) use JSON,
/// readable with `mdb_dump`.
/// Both are deterministic: equal rows are equal bytes, which `projections verify` relies on.
public protocol RowCodable {
    func rowBytes() -> [UInt8]
    static func fromRow(_ bytes: [UInt8]) throws -> Self
}

public struct RowDecodingError: Error, CustomStringConvertible {
    public var description: String
}

extension RowCodable where Self: Codable {
    public func rowBytes() -> [UInt8] { Array((try? RowEncoding.encoder.encode(self)) ?? Data()) }
    public static func fromRow(_ bytes: [UInt8]) throws -> Self { try RowEncoding.decode(Self.self, bytes) }
}

extension SystemRow: RowCodable {}

/// Binary: a rebuild writes one row per system user, and JSON through Foundation's encoder was
/// most of the time of the fold in log order (about 4 µs a row).
extension AccessRow: RowCodable {
    static let rowFormat: UInt8 = 1

    public func rowBytes() -> [UInt8] {
        var w = ByteWriter(capacity: 64 + changes.count * 16)
        w.u8(Self.rowFormat)
        w.string(system)
        w.string(user)
        w.array(changes) { w, change in
            w.varint(change.position)
            w.int(change.at)
            w.u8(change.granted ? 1 : 0)
            w.optional(change.sellerTaxIds) { w, ids in w.array(ids) { $0.string($1) } }
        }
        return w.bytes
    }

    public static func fromRow(_ bytes: [UInt8]) throws -> AccessRow {
        var r = ByteReader(bytes)
        guard try r.u8() == rowFormat else { throw RowDecodingError(description: "access row of an unknown format") }
        var row = AccessRow(system: try r.string(), user: try r.string())
        row.changes = try r.array { r in
            Change(position: try r.varint(), at: try r.int(), granted: try r.u8() == 1, sellerTaxIds: try r.optional { r in try r.array { try $0.string() } })
        }
        guard r.offset == bytes.count else { throw RowDecodingError(description: "access row has \(bytes.count - r.offset) bytes after its end") }
        return row
    }
}

/// Little-endian varints and length-prefixed strings.
struct ByteWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    mutating func u8(_ value: UInt8) { bytes.append(value) }

    mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7f) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    mutating func int(_ value: Int64) { varint(UInt64(bitPattern: (value << 1) ^ (value >> 63))) }
    mutating func int(_ value: Int) { int(Int64(value)) }

    mutating func string(_ value: String) {
        varint(UInt64(value.utf8.count))
        bytes.append(contentsOf: value.utf8)
    }

    mutating func optional<T>(_ value: T?, _ write: (inout ByteWriter, T) -> Void) {
        guard let value else { return u8(0) }
        u8(1)
        write(&self, value)
    }

    mutating func array<T>(_ values: [T], _ write: (inout ByteWriter, T) -> Void) {
        varint(UInt64(values.count))
        for value in values { write(&self, value) }
    }
}

struct ByteReader {
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func u8() throws -> UInt8 {
        guard offset < bytes.count else { throw RowDecodingError(description: "row ends early at byte \(offset)") }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func varint() throws -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try u8()
            value |= UInt64(byte & 0x7f) << shift
            if byte < 0x80 { return value }
            shift += 7
            guard shift < 64 else { throw RowDecodingError(description: "varint too long at byte \(offset)") }
        }
    }

    mutating func int() throws -> Int64 {
        let raw = try varint()
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    mutating func string() throws -> String {
        let count = Int(try varint())
        guard offset + count <= bytes.count else { throw RowDecodingError(description: "string runs past the row at byte \(offset)") }
        defer { offset += count }
        return String(decoding: bytes[offset..<(offset + count)], as: UTF8.self)
    }

    mutating func optional<T>(_ read: (inout ByteReader) throws -> T) throws -> T? {
        try u8() == 0 ? nil : try read(&self)
    }

    mutating func array<T>(_ read: (inout ByteReader) throws -> T) throws -> [T] {
        let count = Int(try varint())
        guard count <= bytes.count else { throw RowDecodingError(description: "array count \(count) exceeds the row") }
        var out: [T] = []
        out.reserveCapacity(count)
        for _ in 0..<count { out.append(try read(&self)) }
        return out
    }
}

/// Positions packed as 8-byte big-endian integers (the `views` values: a row's evidence).
enum PositionList {
    static func encode(_ positions: [UInt64]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(positions.count * 8)
        for position in positions { withUnsafeBytes(of: position.bigEndian) { out.append(contentsOf: $0) } }
        return out
    }

    static func decode(_ bytes: [UInt8]) -> [UInt64] {
        stride(from: 0, to: bytes.count - bytes.count % 8, by: 8).map { start in
            bytes[start..<(start + 8)].reduce(0) { $0 << 8 | UInt64($1) }
        }
    }
}

extension InvoiceState: RowCodable {
    static let rowFormat: UInt8 = 1

    public func rowBytes() -> [UInt8] {
        var w = ByteWriter(capacity: 512)
        w.u8(Self.rowFormat)
        w.string(key)
        w.string(issuer.status)
        w.optional(issuer.since) { $0.int($1) }
        w.optional(issuer.position) { $0.varint($1) }
        w.optional(issuer.issueFailedReason) { $0.string($1) }
        w.optional(issuer.voidedBy) { $0.string($1) }
        w.optional(issuer.voidReason) { $0.string($1) }
        w.optional(invoice) { w, s in
            w.string(s.number); w.optional(s.code) { $0.string($1) }; w.string(s.kind); w.string(s.issuedAt); w.int(s.issuedAtMicros)
            w.string(s.issueDate); w.string(s.seller.name); w.optional(s.seller.taxId) { $0.string($1) }
            w.string(s.buyer.name); w.optional(s.buyer.taxId) { $0.string($1) }
            w.string(s.totalAmount); w.string(s.totalTax); w.string(s.totalWithTax); w.int(s.lineCount)
        }
        w.optional(redLetter) { w, r in
            w.array(r.forms) { w, f in w.string(f.id); w.string(f.requestedBy); w.int(f.requestedAt); w.optional(f.confirmedAt) { $0.int($1) } }
            w.array(r.reversals) { $0.string($1) }
            w.string(r.reversedAmount)
        }
        w.optional(verification) { w, v in w.string(v.provider); w.string(v.result); w.int(v.at); w.varint(v.position) }
        w.array(systems.keys.sorted()) { w, name in
            let v = systems[name]!
            w.string(name)
            w.string(v.delivery); w.int(v.deliveryAttempts); w.int(v.deliveryFailures)
            w.optional(v.lastFailureReason) { $0.string($1) }; w.optional(v.lastFailureDetail) { $0.string($1) }; w.optional(v.deliverySince) { $0.int($1) }
            w.string(v.receipt); w.optional(v.receiptRule) { $0.string($1) }; w.optional(v.receiptDetail) { $0.string($1) }; w.optional(v.receiptSince) { $0.int($1) }
            w.string(v.review); w.optional(v.reviewBy) { $0.string($1) }; w.optional(v.reviewReason) { $0.string($1) }; w.optional(v.reviewSince) { $0.int($1) }
            w.array(v.positions) { $0.varint($1) }
        }
        w.array(flags) { $0.string($1) }
        w.array(lineage) { $0.varint($1) }
        w.varint(lastPosition)
        return w.bytes
    }

    public static func fromRow(_ bytes: [UInt8]) throws -> InvoiceState {
        var r = ByteReader(bytes)
        guard try r.u8() == rowFormat else { throw RowDecodingError(description: "unknown invoice row format") }
        var state = InvoiceState(key: try r.string())
        state.issuer.status = try r.string()
        state.issuer.since = try r.optional { try $0.int() }
        state.issuer.position = try r.optional { try $0.varint() }
        state.issuer.issueFailedReason = try r.optional { try $0.string() }
        state.issuer.voidedBy = try r.optional { try $0.string() }
        state.issuer.voidReason = try r.optional { try $0.string() }
        state.invoice = try r.optional { r in
            let number = try r.string(), code = try r.optional { try $0.string() }, kind = try r.string(), issuedAt = try r.string()
            let micros = try r.int(), date = try r.string()
            let seller = Party(name: try r.string(), taxId: try r.optional { try $0.string() })
            let buyer = Party(name: try r.string(), taxId: try r.optional { try $0.string() })
            return Summary(number: number, code: code, kind: kind, issuedAt: issuedAt, issuedAtMicros: micros, issueDate: date,
                           seller: seller, buyer: buyer, totalAmount: try r.string(), totalTax: try r.string(),
                           totalWithTax: try r.string(), lineCount: Int(try r.int()))
        }
        state.redLetter = try r.optional { r in
            var red = RedLetter()
            red.forms = try r.array { r in
                RedLetter.Form(id: try r.string(), requestedBy: try r.string(), requestedAt: try r.int(), confirmedAt: try r.optional { try $0.int() })
            }
            red.reversals = try r.array { try $0.string() }
            red.reversedAmount = try r.string()
            return red
        }
        state.verification = try r.optional { r in
            Verification(provider: try r.string(), result: try r.string(), at: try r.int(), position: try r.varint())
        }
        let systems: [(String, SystemView)] = try r.array { r in
            let name = try r.string()
            var v = SystemView()
            v.delivery = try r.string(); v.deliveryAttempts = Int(try r.int()); v.deliveryFailures = Int(try r.int())
            v.lastFailureReason = try r.optional { try $0.string() }; v.lastFailureDetail = try r.optional { try $0.string() }
            v.deliverySince = try r.optional { try $0.int() }
            v.receipt = try r.string(); v.receiptRule = try r.optional { try $0.string() }; v.receiptDetail = try r.optional { try $0.string() }
            v.receiptSince = try r.optional { try $0.int() }
            v.review = try r.string(); v.reviewBy = try r.optional { try $0.string() }; v.reviewReason = try r.optional { try $0.string() }
            v.reviewSince = try r.optional { try $0.int() }
            v.positions = try r.array { try $0.varint() }
            return (name, v)
        }
        state.systems = Dictionary(uniqueKeysWithValues: systems)
        state.flags = try r.array { try $0.string() }
        state.lineage = try r.array { try $0.varint() }
        state.lastPosition = try r.varint()
        return state
    }
}
