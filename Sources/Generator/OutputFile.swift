#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file written with plain `write(2)`, or standard output for `-`.
public final class OutputFile {
    public let path: String
    private var fd: Int32

    public init(path: String) throws(OutputFileError) {
        self.path = path
        if path == "-" {
            fd = STDOUT_FILENO
            return
        }
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw OutputFileError(path: path, errno: errno) }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(OutputFileError) {
        var done = 0
        while done < bytes.count {
            let count = posixWrite(fd, bytes.baseAddress! + done, bytes.count - done)
            if count < 0 {
                if errno == EINTR { continue }
                throw OutputFileError(path: path, errno: errno)
            }
            done += count
        }
    }

    /// Closes the file (standard output stays open); a failed close is a failed write.
    public func close() throws(OutputFileError) {
        guard fd != STDOUT_FILENO, fd >= 0 else { return }
        let result = posixClose(fd)
        fd = -1
        if result != 0 { throw OutputFileError(path: path, errno: errno) }
    }

    deinit {
        if fd >= 0 && fd != STDOUT_FILENO { _ = posixClose(fd) }
    }
}

// The C functions, by names the class's own `write` and `close` do not shadow.
private func posixWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int { write(fd, bytes, count) }
private func posixClose(_ fd: Int32) -> Int32 { close(fd) }

public struct OutputFileError: Error, CustomStringConvertible {
    public var path: String
    public var errno: Int32

    public var description: String { "\(path == "-" ? "standard output" : path): \(String(cString: strerror(errno)))" }
}

extension DataGenerator {
    /// Generates into files (`-`: standard output for the events).
    public func write(eventsTo path: String, manifestTo manifestPath: String? = nil, progress: (Int, Int) -> Void = { _, _ in }) throws -> GenerationSummary {
        let events = try OutputFile(path: path)
        let manifest = try manifestPath.map { path throws(OutputFileError) in try OutputFile(path: path) }
        let summary = try generate(events: { try events.write($0) }, manifest: manifest.map { file in { try file.write($0) } }, progress: progress)
        try events.close()
        try manifest?.close()
        return summary
    }
}
