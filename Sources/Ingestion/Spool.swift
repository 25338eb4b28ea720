import Foundation
import Ledger

/// A temporary file of validated events between the two passes of an import: the file is
/// parsed once, and its events wait on disk, not in memory, until every line has passed.
///
/// Framing: groups of events appended together (an event and the flag the ledger adds beside
/// it): a count byte, then per event: stream, type, source, id, time, datacontenttype (each u16 length +
/// bytes; datacontenttype length 0xFFFF = absent), occurred µs (8 bytes), data (u32 length +
/// bytes), all little-endian: the file never leaves this process.
final class Spool {
    private let path: String
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private static let flushBytes = 1 << 20
    private(set) var count = 0

    init(directory: String = NSTemporaryDirectory()) throws {
        path = directory + "/fapiao-import-\(UUID().uuidString).spool"
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw ImportError.unreadable(reason: "cannot create a temporary file in \(directory)")
        }
        handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        buffer.reserveCapacity(Self.flushBytes + 65_536)
    }

    deinit {
        try? handle.close()
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Appends events that must be appended in one request.
    func append(group: [NewEvent]) throws {
        precondition(!group.isEmpty && group.count < 256, "a spool group holds 1 to 255 events")
        buffer.append(UInt8(group.count))
        for event in group { encode(event) }
        count += group.count
        if buffer.count >= Self.flushBytes { try flush() }
    }

    private func encode(_ event: NewEvent) {
        short(event.stream)
        short(event.type)
        short(event.source)
        short(event.id)
        short(event.time)
        if let contentType = event.dataContentType { short(contentType) } else { withUnsafeBytes(of: UInt16.max.littleEndian) { buffer.append(contentsOf: $0) } }
        withUnsafeBytes(of: event.occurredMicros.littleEndian) { buffer.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(event.data.count).littleEndian) { buffer.append(contentsOf: $0) }
        buffer.append(contentsOf: event.data)
    }

    private func short(_ text: String) {
        withUnsafeBytes(of: UInt16(text.utf8.count).littleEndian) { buffer.append(contentsOf: $0) }
        buffer.append(contentsOf: text.utf8)
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try handle.write(contentsOf: buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    /// Reads every event back in order, in batches of about `batchMax` (whole groups; the
    /// group index of each event tells which are the first of their group).
    func readBack(batchMax: Int, _ body: ([NewEvent], [Bool]) async throws -> Void) async throws {
        try flush()
        try handle.seek(toOffset: 0)
        var reader = SpoolReader(handle: handle)
        var batch: [NewEvent] = []
        var isFirstOfGroup: [Bool] = []
        batch.reserveCapacity(batchMax + 255)
        while let group = try reader.nextGroup() {
            batch.append(contentsOf: group)
            isFirstOfGroup.append(true)
            isFirstOfGroup.append(contentsOf: repeatElement(false, count: group.count - 1))
            if batch.count >= batchMax {
                try await body(batch, isFirstOfGroup)
                batch.removeAll(keepingCapacity: true)
                isFirstOfGroup.removeAll(keepingCapacity: true)
            }
        }
        if !batch.isEmpty { try await body(batch, isFirstOfGroup) }
    }
}

private struct SpoolReader {
    let handle: FileHandle
    var chunk: [UInt8] = []
    var offset = 0
    var atEnd = false

    mutating func nextGroup() throws -> [NewEvent]? {
        if try offset == chunk.count && !fill(atLeast: 1) { return nil }
        let count = Int(try integer(UInt8.self))
        return try (0..<count).map { _ in try next() }
    }

    private mutating func next() throws -> NewEvent {
        let stream = try text()
        let type = try text()
        let source = try text()
        let id = try text()
        let time = try text()
        let contentType = try optionalText()
        let occurred = Int64(littleEndian: try integer(Int64.self))
        let dataCount = Int(UInt32(littleEndian: try integer(UInt32.self)))
        let data = try bytes(dataCount)
        return NewEvent(stream: stream, type: type, source: source, id: id, time: time, occurredMicros: occurred,
                        dataContentType: contentType, data: data)
    }

    private mutating func fill(atLeast needed: Int) throws -> Bool {
        if chunk.count - offset >= needed { return true }
        chunk.removeFirst(offset)
        offset = 0
        while chunk.count < needed {
            guard let more = try handle.read(upToCount: max(1 << 20, needed)), !more.isEmpty else { return false }
            chunk.append(contentsOf: more)
        }
        return true
    }

    private mutating func bytes(_ count: Int) throws -> [UInt8] {
        guard try fill(atLeast: count) else { throw ImportError.unreadable(reason: "the import spool file is truncated") }
        defer { offset += count }
        return Array(chunk[offset..<(offset + count)])
    }

    private mutating func integer<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let raw = try bytes(MemoryLayout<T>.size)
        return raw.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
    }

    private mutating func text() throws -> String {
        let count = Int(UInt16(littleEndian: try integer(UInt16.self)))
        return String(decoding: try bytes(count), as: UTF8.self)
    }

    private mutating func optionalText() throws -> String? {
        let count = UInt16(littleEndian: try integer(UInt16.self))
        if count == UInt16.max { return nil }
        return String(decoding: try bytes(Int(count)), as: UTF8.self)
    }
}
