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

    /// Calls `body` for each line; `body` must not keep the buffer.
    mutating func forEachLine(_ body: (Line, _ bytesRead: UInt64) throws -> Void) throws {
        while true {
            guard let newline = findNewline() else {
                if atEOF {
                    if skippingLongLine {
                        lineNumber += 1
                        try body(.tooLong(number: lineNumber, bytes: longLineBytes + end - start), bytesRead)
                        skippingLongLine = false; longLineBytes = 0
                    } else if end > start {
                        lineNumber += 1
                        try emit(from: start, to: end, body)
                        start = end
                    }
                    return
                }
                try refill()
                continue
            }
            lineNumber += 1
            if skippingLongLine {
                longLineBytes += newline - start
                try body(.tooLong(number: lineNumber, bytes: longLineBytes), bytesRead)
                skippingLongLine = false; longLineBytes = 0
            } else {
                try emit(from: start, to: newline, body)
            }
            start = newline + 1
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

    private func emit(from lineStart: Int, to lineEnd: Int, _ body: (Line, UInt64) throws -> Void) throws {
        var stop = lineEnd
        if stop > lineStart && buffer[stop - 1] == 0x0D { stop -= 1 }
        try buffer.withUnsafeBytes { bytes in
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
