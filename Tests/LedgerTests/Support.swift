@_exported import TestSupport
import Foundation
import Synchronization
@testable import Ledger


enum Fixture {
    /// A small event with deterministic content; `id` doubles as the idempotency id.
    static func event(stream: String = "24112000000015301234", id: String, source: String = "urn:fapiao:test",
                      type: String = "fapiao.test.happened", data: String? = nil) -> NewEvent {
        NewEvent(
            stream: stream, type: type, source: source, id: id, time: "2024-12-31T16:59:26+08:00",
            occurredMicros: 1_735_635_566_000_000, dataContentType: "application/json",
            data: Array((data ?? #"{"n":"\#(id)"}"#).utf8))
    }

    static func entry(stream: String = "24112000000015301234", id: String, expecting: StreamExpectation = .any) -> AppendEntry {
        AppendEntry(event(stream: stream, id: id), expecting: expecting)
    }
}

// MARK: Opening and closing for real

/// Opens a ledger, runs `body`, closes it and waits until it is released (`Ledger.using`).
func withLedger<T>(
    at path: String, options: LedgerOptions = LedgerOptions(), clock: @escaping @Sendable () -> Int64 = Ledger.systemClockMicros,
    _ body: (Ledger) async throws -> T
) async throws -> T {
    try await Ledger.using(at: path, options: options, clock: clock, body)
}

/// The error an append threw, or nil when it succeeded.
func appendError(_ ledger: Ledger, _ entries: [AppendEntry]) async -> LedgerError? {
    do {
        _ = try await ledger.append(entries)
        return nil
    } catch {
        return error
    }
}

/// The reason of an `invalid` error, or nil for any other outcome.
func invalidReason(_ error: LedgerError?) -> String? {
    if case let .invalid(reason) = error { return reason }
    return nil
}

/// A clock for the writer that can hold it inside its first batch: the writer reads the clock
/// at the start of each batch, so while the gate is shut the queue fills deterministically.
final class GatedClock: @unchecked Sendable {
    private let state = Mutex<(shut: Bool, calls: Int)>((shut: true, calls: 0))
    private let gate = DispatchSemaphore(value: 0)
    static let micros: Int64 = 1_735_635_600_000_000

    var now: @Sendable () -> Int64 {
        { [self] in
            let mustWait = state.withLock { state -> Bool in
                state.calls += 1
                return state.shut
            }
            if mustWait { gate.wait() }
            return Self.micros
        }
    }

    /// How many batches the writer has begun.
    var calls: Int { state.withLock { $0.calls } }

    func open() {
        let wasShut = state.withLock { state -> Bool in
            defer { state.shut = false }
            return state.shut
        }
        if wasShut { gate.signal() }
    }

    /// Waits (bounded) until `condition` holds; true when it did.
    static func eventually(_ condition: () -> Bool) async throws -> Bool {
        for _ in 0..<20_000 {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(1))
        }
        return condition()
    }
}

// MARK: Files on disk

/// Flips one byte inside the only occurrence of `marker` in `file` (the byte at `offset` in
/// the marker). Fails when the marker is absent or not unique: the patch must be unambiguous.
func flipByte(of marker: String, at offset: Int = 0, in file: String) throws {
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: file)))
    let needle = Array(marker.utf8)
    var found: [Int] = []
    if bytes.count >= needle.count {
        for start in 0...(bytes.count - needle.count) where bytes[start] == needle[0] {
            if bytes[start..<(start + needle.count)].elementsEqual(needle) { found.append(start) }
        }
    }
    // LMDB is copy-on-write: a freed page may still hold an old copy of the record. Flip
    // every copy, so the live one is surely changed.
    guard !found.isEmpty else {
        throw TestFailure("marker \(marker) does not occur in \(file)")
    }
    for start in found { bytes[start + offset] ^= 0x20 }
    try Data(bytes).write(to: URL(fileURLWithPath: file))
}


/// Runs a program to its end; returns its exit status and standard output.
func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}
