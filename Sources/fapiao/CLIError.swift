import ArgumentParser
import Foundation
import Ledger

/// Exit codes, from sysexits.h where one fits, so scripts can tell failures apart.
enum ExitCodes {
    static let problemFound: Int32 = 1
    static let dataError: Int32 = 65      // EX_DATAERR: the input was refused; nothing recorded
    static let noInput: Int32 = 66        // EX_NOINPUT: no ledger at the path
    static let software: Int32 = 70       // EX_SOFTWARE: a bug
    static let cannotCreate: Int32 = 73   // EX_CANTCREAT: map or disk full
    static let ioError: Int32 = 74        // EX_IOERR: storage error
    static let temporaryFailure: Int32 = 75 // EX_TEMPFAIL: overloaded, retry
}

/// Turns ledger errors into a message on stderr and a meaningful exit code.
enum CLIError {
    static func wrap<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as LedgerError {
            fail(error)
        }
    }

    static func exitCode(for error: LedgerError) -> Int32 {
        switch error {
        case .notFound: ExitCodes.noInput
        case .invalid, .expectationFailed, .idempotencyConflict: ExitCodes.dataError
        case .mapFull, .diskFull: ExitCodes.cannotCreate
        case .overloaded: ExitCodes.temporaryFailure
        case .incompatible, .corruptRecord, .storage, .closed, .readOnly: ExitCodes.ioError
        }
    }

    static func fail(_ error: LedgerError) -> Never {
        Terminal.error("\(error)")
        exit(exitCode(for: error))
    }
}

/// Writing to the terminal: colour only when stdout is a TTY and NO_COLOR is unset.
enum Terminal {
    static let isColourful: Bool = isatty(STDOUT_FILENO) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
    static let isStderrTTY: Bool = isatty(STDERR_FILENO) == 1

    static func error(_ message: String) {
        let prefix = isStderrTTY ? "\u{1B}[31merror:\u{1B}[0m " : "error: "
        FileHandle.standardError.write(Data((prefix + message + "\n").utf8))
    }

    static func note(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    static func bold(_ text: String) -> String { isColourful ? "\u{1B}[1m\(text)\u{1B}[0m" : text }
    static func dim(_ text: String) -> String { isColourful ? "\u{1B}[2m\(text)\u{1B}[0m" : text }
    static func green(_ text: String) -> String { isColourful ? "\u{1B}[32m\(text)\u{1B}[0m" : text }
    static func red(_ text: String) -> String { isColourful ? "\u{1B}[31m\(text)\u{1B}[0m" : text }

    /// Buffered stdout writing: one write per call, lines joined by the caller.
    static func write(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    static func write(bytes: [UInt8]) {
        FileHandle.standardOutput.write(Data(bytes))
    }
}

/// A progress line on stderr, only when stderr is a terminal: rate and ETA, redrawn at most
/// ten times a second.
final class ProgressBar: @unchecked Sendable {
    private let label: String
    private var total: UInt64?
    private let start = Date()
    private var lastDraw = Date.distantPast
    private let enabled: Bool

    init(_ label: String, total: UInt64?, enabled: Bool = Terminal.isStderrTTY) {
        self.label = label
        self.total = total
        self.enabled = enabled
    }

    private let lock = NSLock()

    /// `total`: a new total, when the work turned out larger or smaller than first told.
    func update(_ done: UInt64, total newTotal: UInt64? = nil, force: Bool = false) {
        guard enabled else { return }
        lock.lock()
        defer { lock.unlock() }
        if let newTotal { total = newTotal }
        let now = Date()
        guard force || now.timeIntervalSince(lastDraw) >= 0.1 else { return }
        lastDraw = now
        let elapsed = max(now.timeIntervalSince(start), 0.001)
        let rate = Double(done) / elapsed
        var line = "\r\(label) "
        if let total, total > 0 {
            let fraction = min(Double(done) / Double(total), 1)
            let width = 30
            let filled = Int(fraction * Double(width))
            line += "[" + String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled) + "] "
            line += String(format: "%3.0f%% %llu/%llu", fraction * 100, done, total)
            if rate > 0 && done < total { line += String(format: " ETA %.0fs", Double(total - done) / rate) }
        } else {
            line += "\(done)"
        }
        line += String(format: " %.0f/s ", rate)
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish(_ done: UInt64) {
        guard enabled else { return }
        update(done, force: true)
        FileHandle.standardError.write(Data("\n".utf8))
    }
}

/// One progress bar per phase of a long job (a new line when the phase changes), drawn on
/// stderr when it is a terminal.
final class PhasedProgressBars: @unchecked Sendable {
    private let lock = NSLock()
    private var label: String?
    private var bar: ProgressBar?
    private var last: UInt64 = 0

    /// `total`: nil when unknown; it may change within a phase.
    func show(_ label: String, done: UInt64, total: UInt64?) {
        lock.lock()
        defer { lock.unlock() }
        if self.label != label {
            bar?.finish(last)
            self.label = label
            bar = ProgressBar(label, total: total)
        }
        last = done
        bar?.update(done, total: total)
    }

    func finish() {
        lock.lock()
        defer { lock.unlock() }
        bar?.finish(last)
        bar = nil
    }
}
