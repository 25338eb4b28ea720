import Foundation

/// Renders stored records as CloudEvents 1.0 JSON (structured mode) with the ledger's
/// extension attributes (`ledgerposition`, `ledgertime`, `ledgerhash`, `ledgerprevhash`).
/// `data` is written byte-exact as it was appended.
public enum CloudEventRendering {
    /// One JSON object on one line, no trailing newline. `hash` is the record's own hash.
    public static func jsonLine(_ record: Record, hash: [UInt8]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(record.data.count + 512)
        out.append(contentsOf: #"{"specversion":"1.0","id":"#.utf8)
        appendString(record.id, to: &out)
        field("source", record.source, &out)
        field("type", record.type, &out)
        field("subject", record.stream, &out)
        field("time", record.time, &out)
        if let contentType = record.dataContentType { field("datacontenttype", contentType, &out) }
        out.append(contentsOf: #","ledgerposition":"#.utf8)
        out.append(contentsOf: String(record.position).utf8)
        field("ledgertime", formatRFC3339UTC(micros: record.recordedMicros), &out)
        field("ledgerhash", hash.hex, &out)
        field("ledgerprevhash", record.previousHash.hex, &out)
        out.append(contentsOf: #","data":"#.utf8)
        out.append(contentsOf: record.data)
        out.append(UInt8(ascii: "}"))
        return out
    }

    private static func field(_ name: String, _ value: String, _ out: inout [UInt8]) {
        out.append(contentsOf: ",\"\(name)\":".utf8)
        appendString(value, to: &out)
    }

    /// A JSON string literal with the escapes RFC 8259 requires.
    public static func appendString(_ value: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case 0x0A: out.append(contentsOf: #"\n"#.utf8)
            case 0x0D: out.append(contentsOf: #"\r"#.utf8)
            case 0x09: out.append(contentsOf: #"\t"#.utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xf)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// RFC 3339 in UTC with microseconds, e.g. `2024-12-31T09:00:05.123456Z`.
    public static func formatRFC3339UTC(micros: Int64) -> String {
        formatRFC3339(micros: micros, offsetSeconds: 0, fractionDigits: 6)
    }

    /// RFC 3339 at a UTC offset (China Standard Time is +08:00 = 28,800 s), with 0, 3 or 6
    /// fraction digits, e.g. `2024-12-31T17:00:05+08:00`.
    public static func formatRFC3339(micros: Int64, offsetSeconds: Int, fractionDigits: Int = 0) -> String {
        let local = micros + Int64(offsetSeconds) * 1_000_000
        let seconds = local.floorDiv(1_000_000)
        let fraction = local - seconds * 1_000_000
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        let date = String(format: "%04d-%02d-%02dT%02d:%02d:%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                          Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
        var text = date
        switch fractionDigits {
        case 6: text += String(format: ".%06d", Int(fraction))
        case 3: text += String(format: ".%03d", Int(fraction / 1000))
        default: break
        }
        if offsetSeconds == 0 { return text + "Z" }
        let sign = offsetSeconds < 0 ? "-" : "+"
        let minutes = abs(offsetSeconds) / 60
        return text + sign + String(format: "%02d:%02d", minutes / 60, minutes % 60)
    }
}

extension Int64 {
    /// Division rounding toward negative infinity (times before 1970 stay correct).
    func floorDiv(_ divisor: Int64) -> Int64 {
        let quotient = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? quotient - 1 : quotient
    }
}

extension Ledger {
    /// Records from `position` with each one's own hash (the next record's previous-hash, or
    /// computed for the last), for export and display.
    public func recordsWithHashes(from position: UInt64, limit: Int) throws -> [(record: Record, hash: [UInt8])] {
        let limit = min(max(limit, 0), options.readEventsMax)
        guard limit > 0 else { return [] }
        return try environment.read { txn in
            try txn.withCursor(tables.log) { cursor in
                var out: [(Record, [UInt8])] = []
                var entry = try cursor.seek(atLeast: BigEndian.bytes(max(position, 1)))
                while let current = entry, out.count < limit {
                    out.append((try RecordCodec.decode(current.value), RecordCodec.hash(current.value)))
                    entry = try cursor.next()
                }
                return out
            }
        }
    }
}
