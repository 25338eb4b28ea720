import Foundation
@testable import Ledger

/// A fresh directory per test: LMDB environments must never be opened twice in one process.
struct TemporaryDirectory: ~Copyable {
    let path: String

    init(_ label: String = "ledger") {
        path = NSTemporaryDirectory() + "fapiao-test-\(label)-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    var ledgerPath: String { path + "/ledger" }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

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
