@_exported import TestSupport
import Foundation
import Synchronization



/// Where SwiftPM put the package's executables: beside the test bundle (the test target depends
/// on them), else `.build/debug` of the package this file is in.
enum BuiltProducts {
    static func executable(named name: String) throws -> URL {
        var directories: [URL] = []
        let running = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        directories.append(running.deletingLastPathComponent())
        if let main = Bundle.main.executableURL { directories.append(main.resolvingSymlinksInPath().deletingLastPathComponent()) }
        directories.append(Bundle.main.bundleURL.deletingLastPathComponent())
        // Tests/EndToEndTests/ChildProcess.swift -> the package root.
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        directories.append(packageRoot.appendingPathComponent(".build/debug"))
        for directory in directories {
            let candidate = directory.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw TestFailure("no built \(name) in \(directories.map(\.path)); run `swift build` first")
    }
}

/// A child process whose standard output is collected line by line on a thread of its own,
/// so the test can wait for a number of lines (bounded) and then kill the child.
final class ChildProcess: @unchecked Sendable {
    let process = Process()
    private let output = Pipe()
    private let state = Mutex<(lines: [String], partial: [UInt8], ended: Bool)>((lines: [], partial: [], ended: false))

    init(_ executable: URL, _ arguments: [String]) {
        process.executableURL = executable
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
    }

    func start() throws {
        try process.run()
        let handle = output.fileHandleForReading
        let reader = Thread { [self] in
            while true {
                let data = handle.availableData  // blocks; empty at end of file (the child is gone)
                if data.isEmpty { break }
                state.withLock { state in
                    state.partial += data
                    while let newline = state.partial.firstIndex(of: UInt8(ascii: "\n")) {
                        state.lines.append(String(decoding: state.partial[..<newline], as: UTF8.self))
                        state.partial.removeSubrange(...newline)
                    }
                }
            }
            state.withLock { $0.ended = true }
        }
        reader.name = "child-stdout"
        reader.start()
    }

    /// Complete lines read so far.
    var lines: [String] { state.withLock { $0.lines } }

    /// Waits until `count` lines have arrived, the child's output ended, or `timeout` passed.
    /// Returns whether the lines arrived. The timeout only keeps a broken run from hanging.
    func waitForLines(_ count: Int, timeout: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let (have, ended) = state.withLock { ($0.lines.count, $0.ended) }
            if have >= count { return true }
            if ended { return false }
            try await Task.sleep(for: .milliseconds(5))
        }
        return false
    }

    /// SIGKILL, then wait for the child to be reaped.
    func kill() {
        if process.isRunning { _ = Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}
