import Crypto
#if canImport(Glibc)
import Glibc
#endif

/// An event as an appender hands it to the ledger: a CloudEvent's attributes and its `data`
/// bytes, which the ledger stores byte-exact and never parses.
public struct NewEvent: Sendable, Hashable {
    /// The stream (CloudEvents `subject`): an invoice key, `system/<id>`, `system/<id>/user/<id>`.
    public var stream: String
    public var type: String
    public var source: String
    /// Unique within `source`; `(source, id)` is the idempotency key.
    public var id: String
    /// The CloudEvents `time` exactly as the source sent it (RFC 3339).
    public var time: String
    /// `time` as microseconds since the Unix epoch (UTC): the real-world clock of the event.
    public var occurredMicros: Int64
    public var dataContentType: String?
    /// The CloudEvents `data`, byte-exact.
    public var data: [UInt8]

    public init(
        stream: String, type: String, source: String, id: String, time: String, occurredMicros: Int64,
        dataContentType: String? = nil, data: [UInt8]
    ) {
        self.stream = stream
        self.type = type
        self.source = source
        self.id = id
        self.time = time
        self.occurredMicros = occurredMicros
        self.dataContentType = dataContentType
        self.data = data
    }

    /// Two events are the same content when everything but the ledger's own fields match,
    /// byte for byte as stored (canonically equal strings are not the same bytes).
    /// A retry of an append compares equal; a different event reusing `(source, id)` does not.
    func hasSameContent(as other: NewEvent) -> Bool {
        func same(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }
        return same(stream, other.stream) && same(type, other.type) && same(source, other.source)
            && same(id, other.id) && same(time, other.time) && occurredMicros == other.occurredMicros
            && dataContentType.map { Array($0.utf8) } == other.dataContentType.map { Array($0.utf8) }
            && data == other.data
    }

    func hasSameContent(as record: Record) -> Bool { hasSameContent(as: record.event) }
}

/// A stored event: what the appender sent plus the ledger's position, stream version,
/// recorded time and the previous record's hash.
public struct Record: Sendable, Hashable {
    public var position: UInt64
    public var streamVersion: UInt64
    /// When the ledger committed it: microseconds since the Unix epoch. Never decreases.
    public var recordedMicros: Int64
    public var previousHash: [UInt8]
    public var stream: String
    public var type: String
    public var source: String
    public var id: String
    public var time: String
    public var occurredMicros: Int64
    public var dataContentType: String?
    public var data: [UInt8]

    /// The event as its appender sent it.
    public var event: NewEvent {
        NewEvent(stream: stream, type: type, source: source, id: id, time: time, occurredMicros: occurredMicros,
                 dataContentType: dataContentType, data: data)
    }
}

/// The stored byte layout of a record (version 1). `docs/storage-format.md` is its contract.
///
///     offset  size  field
///     0       1     format version (1)
///     1       1     flags: bit 0 = datacontenttype present
///     2       8     position, big-endian
///     10      8     stream version, big-endian
///     18      8     recorded time, µs since epoch, big-endian two's complement
///     26      8     occurred time, µs since epoch, big-endian two's complement
///     34      32    previous record's hash (zeros before position 1)
///     66      2+n   stream (UTF-8), length-prefixed big-endian
///             2+n   type
///             2+n   source
///             2+n   id
///             2+n   time, as sent
///             2+n   datacontenttype (length 0 when absent)
///             4+n   data
///
/// The record hash is SHA-256 over all of these bytes, so it covers the previous hash: a chain.
public enum RecordCodec {
    public static let formatVersion: UInt8 = 1
    public static let hashBytes = 32
    static let fixedBytes = 66
    static let headerBytes = fixedBytes + 6 * 2 + 4
    public static let genesisHash = [UInt8](repeating: 0, count: hashBytes)

    /// Size of the encoding of `event`, without encoding it.
    static func encodedSize(of event: borrowing NewEvent) -> Int {
        headerBytes + event.stream.utf8.count + event.type.utf8.count + event.source.utf8.count
            + event.id.utf8.count + event.time.utf8.count + (event.dataContentType?.utf8.count ?? 0)
            + event.data.count
    }

    /// Encodes into `buffer` (cleared first, capacity reused).
    static func encode(
        _ event: NewEvent, position: UInt64, streamVersion: UInt64, recordedMicros: Int64,
        previousHash: [UInt8], into buffer: inout [UInt8]
    ) {
        buffer.removeAll(keepingCapacity: true)
        appendTemplate(of: event, to: &buffer)
        buffer.withUnsafeMutableBytes { record in
            previousHash.withUnsafeBytes { previous in
                patch(record, position: position, streamVersion: streamVersion, recordedMicros: recordedMicros, previousHash: previous)
            }
        }
    }

    /// Appends the encoding of `event` with the writer's fields (position, stream version,
    /// recorded time, previous hash) left zero, for `patch` to fill in: everything that does
    /// not depend on the log's state, prepared before the request reaches the writer.
    static func appendTemplate(of event: NewEvent, to buffer: inout [UInt8]) {
        let start = buffer.count
        let size = encodedSize(of: event)
        buffer.append(contentsOf: repeatElement(0, count: size))
        buffer.withUnsafeMutableBytes { bytes in
            _ = writeTemplate(of: event, to: bytes.baseAddress! + start, end: bytes.baseAddress! + bytes.count)
        }
    }

    /// Writes what `appendTemplate` appends at `out`, which has room for `encodedSize(of:)`
    /// bytes before `end`; returns that size.
    static func writeTemplate(of event: borrowing NewEvent, to out: UnsafeMutableRawPointer, end: UnsafeMutableRawPointer) -> Int {
        precondition(out + headerBytes <= end, "no room for a record header")
        out.storeBytes(of: formatVersion, as: UInt8.self)
        out.storeBytes(of: event.dataContentType == nil ? 0 : 1, toByteOffset: 1, as: UInt8.self)
        (out + 2).initializeMemory(as: UInt8.self, repeating: 0, count: 24)
        out.storeBytes(of: UInt64(bitPattern: event.occurredMicros).bigEndian, toByteOffset: 26, as: UInt64.self)
        (out + 34).initializeMemory(as: UInt8.self, repeating: 0, count: hashBytes)
        var at = fixedBytes
        at += writeShort(event.stream, to: out + at, end: end)
        at += writeShort(event.type, to: out + at, end: end)
        at += writeShort(event.source, to: out + at, end: end)
        at += writeShort(event.id, to: out + at, end: end)
        at += writeShort(event.time, to: out + at, end: end)
        if let contentType = event.dataContentType {
            at += writeShort(contentType, to: out + at, end: end)
        } else {
            at += writeShort("", to: out + at, end: end)
        }
        let dataCount = event.data.count
        precondition(out + at + 4 + dataCount <= end, "no room for the record's data")
        out.storeBytes(of: UInt32(dataCount).bigEndian, toByteOffset: at, as: UInt32.self)
        at += 4
        event.data.withUnsafeBytes { data in
            if let base = data.baseAddress, dataCount > 0 { (out + at).copyMemory(from: base, byteCount: dataCount) }
        }
        return at + dataCount
    }

    /// Writes a string's UTF-8 bytes at `out` (room checked against `end`); returns their count.
    @inline(__always)
    static func writeUTF8(_ text: borrowing String, to out: UnsafeMutableRawPointer, end: UnsafeMutableRawPointer) -> Int {
        let count = text.utf8.count
        precondition(out + count <= end, "no room for a string")
        let copied: Void? = text.utf8.withContiguousStorageIfAvailable { bytes in
            if let base = bytes.baseAddress, count > 0 { out.copyMemory(from: base, byteCount: count) }
        }
        if copied == nil {
            var at = 0
            for byte in text.utf8 {
                out.storeBytes(of: byte, toByteOffset: at, as: UInt8.self)
                at += 1
            }
        }
        return count
    }

    @inline(__always)
    private static func writeShort(_ text: borrowing String, to out: UnsafeMutableRawPointer, end: UnsafeMutableRawPointer) -> Int {
        let count = text.utf8.count
        precondition(count <= Int(UInt16.max) && out + 2 <= end, "field longer than 65535 bytes")
        out.storeBytes(of: UInt16(count).bigEndian, as: UInt16.self)
        return 2 + writeUTF8(text, to: out + 2, end: end)
    }

    /// Writes the writer's fields into an encoded record (see `appendTemplate`).
    @inline(__always)
    static func patch(
        _ record: UnsafeMutableRawBufferPointer, position: UInt64, streamVersion: UInt64, recordedMicros: Int64,
        previousHash: UnsafeRawBufferPointer
    ) {
        precondition(record.count >= headerBytes && previousHash.count == hashBytes, "a record header and a 32-byte previous hash")
        record.storeBytes(of: position.bigEndian, toByteOffset: 2, as: UInt64.self)
        record.storeBytes(of: streamVersion.bigEndian, toByteOffset: 10, as: UInt64.self)
        record.storeBytes(of: UInt64(bitPattern: recordedMicros).bigEndian, toByteOffset: 18, as: UInt64.self)
        UnsafeMutableRawBufferPointer(rebasing: record[34..<66]).copyMemory(from: previousHash)
    }

    /// Decodes stored bytes. Throws `LedgerError.corruptRecord` when they do not parse:
    /// every length is checked against the buffer before it is used.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(LedgerError) -> Record {
        var strings = RecordStrings()
        return try decode(bytes, strings: &strings)
    }

    /// Decodes stored bytes, taking the stream, type, source and content type from `strings`
    /// when a recent record had the same: records read together share most of them, and each
    /// `String` longer than 15 bytes is an allocation and a UTF-8 check.
    static func decode(_ bytes: UnsafeRawBufferPointer, strings: inout RecordStrings) throws(LedgerError) -> Record {
        var reader = Reader(bytes: bytes)
        guard bytes.count >= headerBytes, bytes[0] == formatVersion else {
            throw .corruptRecord(position: nil, reason: "unknown format version or short record (\(bytes.count) bytes)")
        }
        let flags = bytes[1]
        reader.offset = 2
        let position = reader.uint64()
        let streamVersion = reader.uint64()
        let recorded = Int64(bitPattern: reader.uint64())
        let occurred = Int64(bitPattern: reader.uint64())
        let previousHash = Array(UnsafeRawBufferPointer(rebasing: bytes[34..<66]))
        reader.offset = fixedBytes
        guard let stream = reader.short(&strings.streams), let type = reader.short(&strings.types),
            let source = reader.short(&strings.sources), let id = reader.short(), let time = reader.short(),
            let contentType = reader.short(&strings.contentTypes), let data = reader.long(), reader.offset == bytes.count
        else {
            throw .corruptRecord(position: position, reason: "field lengths do not match the record size")
        }
        return Record(
            position: position, streamVersion: streamVersion, recordedMicros: recorded,
            previousHash: previousHash, stream: stream, type: type, source: source, id: id, time: time,
            occurredMicros: occurred, dataContentType: flags & 1 == 1 ? contentType : nil, data: data)
    }

    /// The position, stream and type of a stored record, without decoding the rest (nil when
    /// the header does not parse).
    static func header(of bytes: UnsafeRawBufferPointer) -> (position: UInt64, stream: UnsafeRawBufferPointer, type: UnsafeRawBufferPointer)? {
        guard bytes.count >= headerBytes, bytes[0] == formatVersion else { return nil }
        let streamLength = Int(BigEndian.uint16(bytes, at: fixedBytes))
        let typeAt = fixedBytes + 2 + streamLength
        guard typeAt + 2 <= bytes.count else { return nil }
        let typeLength = Int(BigEndian.uint16(bytes, at: typeAt))
        guard typeAt + 2 + typeLength <= bytes.count else { return nil }
        return (
            BigEndian.uint64(bytes, at: 2),
            UnsafeRawBufferPointer(rebasing: bytes[(fixedBytes + 2)..<typeAt]),
            UnsafeRawBufferPointer(rebasing: bytes[(typeAt + 2)..<(typeAt + 2 + typeLength)]))
    }

    /// The position stored inside a record, without decoding the rest.
    static func position(of bytes: UnsafeRawBufferPointer) -> UInt64? {
        bytes.count >= headerBytes ? BigEndian.uint64(bytes, at: 2) : nil
    }

    /// The previous-hash field of a record, without decoding the rest.
    static func previousHash(of bytes: UnsafeRawBufferPointer) -> [UInt8]? {
        bytes.count >= headerBytes ? Array(UnsafeRawBufferPointer(rebasing: bytes[34..<66])) : nil
    }

    /// SHA-256 of the stored bytes: the record hash.
    public static func hash(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        Array(SHA256.hash(data: bytes))
    }

    /// SHA-256 of the stored bytes into an existing 32-byte array (no allocation).
    static func hash(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        let digest = SHA256.hash(data: bytes)
        out.withUnsafeMutableBytes { target in
            digest.withUnsafeBytes { source in target.copyMemory(from: source) }
        }
    }

    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var offset = 0

        mutating func uint64() -> UInt64 {
            defer { offset += 8 }
            return BigEndian.uint64(bytes, at: offset)
        }

        mutating func short() -> String? {
            guard offset + 2 <= bytes.count else { return nil }
            let length = Int(BigEndian.uint16(bytes, at: offset))
            return text(length: length, after: 2)
        }

        /// A short string, from `recent` when it holds the same bytes.
        mutating func short(_ recent: inout RecentStrings) -> String? {
            guard offset + 2 <= bytes.count else { return nil }
            let length = Int(BigEndian.uint16(bytes, at: offset))
            guard offset + 2 + length <= bytes.count else { return nil }
            let field = UnsafeRawBufferPointer(rebasing: bytes[(offset + 2)..<(offset + 2 + length)])
            if let known = recent.string(for: field) {
                offset += 2 + length
                return known
            }
            guard let text = text(length: length, after: 2) else { return nil }
            recent.remember(field, text)
            return text
        }

        mutating func long() -> [UInt8]? {
            guard offset + 4 <= bytes.count else { return nil }
            let length = Int(BigEndian.uint32(bytes, at: offset))
            guard offset + 4 + length <= bytes.count else { return nil }
            defer { offset += 4 + length }
            return Array(UnsafeRawBufferPointer(rebasing: bytes[(offset + 4)..<(offset + 4 + length)]))
        }

        private mutating func text(length: Int, after prefix: Int) -> String? {
            guard offset + prefix + length <= bytes.count else { return nil }
            defer { offset += prefix + length }
            return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(offset + prefix)..<(offset + prefix + length)]), as: UTF8.self)
        }
    }
}

/// The strings of a few recent records, by field (see `RecordCodec.decode(_:strings:)`).
struct RecordStrings {
    var streams = RecentStrings(capacity: 1)
    var types = RecentStrings(capacity: 24)
    var sources = RecentStrings(capacity: 16)
    var contentTypes = RecentStrings(capacity: 2)
}

/// Up to `capacity` strings, most recent first, compared by their UTF-8 bytes (no copy of
/// them is kept: a miss costs what decoding without this would).
struct RecentStrings {
    private var entries: [String] = []
    private let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        entries.reserveCapacity(capacity)
    }

    func string(for bytes: UnsafeRawBufferPointer) -> String? {
        for entry in entries where entry.utf8.count == bytes.count {
            let same = entry.utf8.withContiguousStorageIfAvailable { stored in
                bytes.isEmpty || memcmp(stored.baseAddress!, bytes.baseAddress!, bytes.count) == 0
            } ?? entry.utf8.elementsEqual(bytes)
            if same { return entry }
        }
        return nil
    }

    mutating func remember(_ bytes: UnsafeRawBufferPointer, _ string: String) {
        if capacity == 1 {
            if entries.isEmpty { entries.append(string) } else { entries[0] = string }
            return
        }
        if entries.count == capacity { entries.removeLast() }
        entries.insert(string, at: 0)
    }
}
