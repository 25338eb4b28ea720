// ledger-torture: appends to a ledger until killed, printing each acknowledged position.
//
// The crash test starts this, reads its output, SIGKILLs it mid-stream, reopens the ledger and
// checks that every position printed here (acknowledged = committed) is present and intact.
//
// usage: ledger-torture LEDGER_DIR [CONCURRENT_APPENDERS] [EVENTS_PER_APPEND]
// prints: "ack POSITION SOURCE_ID" per event, after its commit returned.
import Foundation
import Ledger

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: ledger-torture LEDGER_DIR [APPENDERS] [EVENTS_PER_APPEND]\n".utf8))
    exit(64)
}
let path = arguments[1]
let appenders = arguments.count > 2 ? Int(arguments[2]) ?? 8 : 8
let perAppend = arguments.count > 3 ? Int(arguments[3]) ?? 3 : 3

let ledger = try Ledger.open(at: path)
let run = UUID().uuidString.prefix(8)
await withThrowingTaskGroup(of: Void.self) { group in
    for appender in 0..<appenders {
        group.addTask {
            var n = 0
            while true {
                n += 1
                let entries = (0..<perAppend).map { i in
                    let id = "\(run)-\(appender)-\(n)-\(i)"
                    return AppendEntry(NewEvent(
                        stream: "torture/\(appender % 4)", type: "fapiao.test.torture", source: "urn:fapiao:torture",
                        id: id, time: "2024-12-31T16:59:26+08:00", occurredMicros: 1_735_635_566_000_000,
                        dataContentType: "application/json", data: Array(#"{"appender":\#(appender),"n":\#(n),"i":\#(i)}"#.utf8)))
                }
                let result = try await ledger.append(entries)
                var lines = ""
                for (entry, position) in zip(entries, result.positions) { lines += "ack \(position) \(entry.event.id)\n" }
                FileHandle.standardOutput.write(Data(lines.utf8))
            }
        }
    }
    try? await group.waitForAll()
}
