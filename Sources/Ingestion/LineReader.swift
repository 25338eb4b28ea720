import Foundation

/// Reads a file as lines, in bounded chunks: memory stays at one chunk plus one line however
/// large the file is. Lines end with `\n` (a `\r` before it is dropped); a last line without
/// a newline counts. Line numbers are 1-based.
struct LineReader {
    static let chunkBytes = 1 << 20
    /// The longest line accepted; longer ones are reported, not loaded.
    static let lineBytesMax = 4 << 20

    enum Line {
        case text(number: Int, bytes: UnsafeRawBufferPointer)
        case tooLong(number: Int, bytes: Int)
    }

    private let fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0
    private var end = 0
    private var atEOF = false
    private(set) var lineNumber = 0
    /// Bytes consumed so far (for progress).
    private(set) var bytesRead: UInt64 = 0
    private var skippingLongLine = false
    private var longLineBytes = 0

    init(fileDescriptor: Int32) {
        self.fd = fileDescriptor
        buffer = [UInt8](repeating: 0, count: Self.chunkBytes)
    }

    /// Calls `body` for each line until it returns false or the file ends; `body` must not
    /// keep the buffer. Call again to go on after a stop. Returns false once the file is done.
    @discardableResult
    mutating func forEachLine(_ body: (Line, _ bytesRead: UInt64) throws -> Bool) throws -> Bool {
        while true {
            guard let newline = findNewline() else {
                if atEOF {
                    if skippingLongLine {
                        lineNumber += 1
                        skippingLongLine = false
                        let bytes = longLineBytes + end - start
                        longLineBytes = 0
                        start = end
                        _ = try body(.tooLong(number: lineNumber, bytes: bytes), bytesRead)
                    } else if end > start {
                        lineNumber += 1
                        let lineStart = start
                        start = end
                        _ = try emit(from: lineStart, to: end, body)
                    }
                    return false
                }
                try refill()
                continue
            }
            lineNumber += 1
            let lineStart = start
            start = newline + 1
            let goOn: Bool
            if skippingLongLine {
                longLineBytes += newline - lineStart
                skippingLongLine = false
                let bytes = longLineBytes
                longLineBytes = 0
                goOn = try body(.tooLong(number: lineNumber, bytes: bytes), bytesRead)
            } else {
                goOn = try emit(from: lineStart, to: newline, body)
            }
            if !goOn { return true }
        }
    }

    private func findNewline() -> Int? {
        buffer.withUnsafeBufferPointer { bytes in
            guard start < end else { return nil }
            let base = bytes.baseAddress! + start
            guard let found = memchr(base, 0x0A, end - start) else { return nil }
            return start + (UnsafeRawPointer(found) - UnsafeRawPointer(base))
        }
    }

    private func emit(from lineStart: Int, to lineEnd: Int, _ body: (Line, UInt64) throws -> Bool) throws -> Bool {
        var stop = lineEnd
        if stop > lineStart && buffer[stop - 1] == 0x0D { stop -= 1 }
        return try buffer.withUnsafeBytes { bytes in
            try body(.text(number: lineNumber, bytes: UnsafeRawBufferPointer(rebasing: bytes[lineStart..<stop])), bytesRead)
        }
    }

    /// Moves the unfinished line to the front and reads more. A line longer than the buffer
    /// grows it up to `lineBytesMax`; beyond that the line is skipped and reported.
    private mutating func refill() throws {
        if start > 0 {
            buffer.withUnsafeMutableBytes { bytes in
                _ = memmove(bytes.baseAddress!, bytes.baseAddress! + start, end - start)
            }
            end -= start
            start = 0
        }
        if end == buffer.count {
            if buffer.count < Self.lineBytesMax {
                buffer.append(contentsOf: [UInt8](repeating: 0, count: buffer.count))
            } else {
                skippingLongLine = true
                longLineBytes += end
                end = 0
            }
        }
        let count = buffer.withUnsafeMutableBytes { bytes in
            read(fd, bytes.baseAddress! + end, bytes.count - end)
        }
        if count < 0 {
            if errno == EINTR { return }
            throw ImportError.unreadable(reason: String(cString: strerror(errno)))
        }
        if count == 0 { atEOF = true }
        end += count
        bytesRead += UInt64(count)
    }
}

/// Lines copied out of the reader, to be parsed together (possibly on several cores).
struct LineBlock: Sendable {
    struct Entry: Sendable {
        var number: Int
        var range: Range<Int>
        /// Set for a line too long to load: its length.
        var tooLongBytes: Int?
    }

    var bytes: [UInt8] = []
    var lines: [Entry] = []

    var count: Int { lines.count }

    mutating func add(_ line: LineReader.Line) {
        switch line {
        case let .text(number, text):
            let start = bytes.count
            bytes.append(contentsOf: text)
            lines.append(Entry(number: number, range: start..<bytes.count))
        case let .tooLong(number, length):
            lines.append(Entry(number: number, range: bytes.count..<bytes.count, tooLongBytes: length))
        }
    }
}
