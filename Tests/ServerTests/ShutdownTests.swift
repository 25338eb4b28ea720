import FapiaoDomain
import Foundation
import Hummingbird
import ServiceLifecycle
import Synchronization
import Testing
@testable import Ledger
@testable import Server

@Suite struct ShutdownTests {
    /// Clients keep appending while the server shuts down gracefully: every request answered
    /// 200 is in the ledger (checked after reopening it), requests in flight finish, later ones
    /// are refused at the door, and open streams end instead of holding the shutdown up.
    @Test func aGracefulShutdownLosesNothingAcknowledged() async throws {
        let directory = TemporaryDirectory()
        let port = try SSEClient.freePort()
        let acknowledged = Acknowledged()
        try await withLedger(at: directory.ledgerPath) { ledger in
            let server = try FapiaoServer(ledger: ledger, access: .open, configuration: ServerConfiguration(port: port, heartbeatSeconds: 0.2))
            try await server.start()
            defer { server.stop() }
            let group = ServiceGroup(configuration: .init(services: [server.application()], logger: server.logger))
            let running = Task { try await group.run() }
            var healthy = false
            for _ in 0..<200 where !healthy {
                healthy = (try? await OneShotHTTP.request(port: port, method: "GET", path: "/healthz"))?.status == 200
                if !healthy { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(healthy)
            let stream = try await SSEClient.connect(port: port, path: "/v1/events?from=1", token: nil)
            #expect(stream.status == 200)

            await withTaskGroup(of: Void.self) { clients in
                for client in 0..<2 {
                    clients.addTask {
                        for round in 0..<2_000 {
                            let ids = (0..<20).map { "shut-\(client)-\(round)-\($0)" }
                            let lines = ids.map { id in
                                Build.line("system/shut-\(client)", .maintenanceStarted(MaintenanceStarted(system: "shut-\(client)", reason: "drill")), id: id)
                            }
                            let body = Array(("[" + lines.joined(separator: ",") + "]").utf8)
                            guard let answer = try? await OneShotHTTP.request(
                                port: port, method: "POST", path: "/v1/events", headers: ["Content-Type": "application/cloudevents-batch+json"], body: body)
                            else { return } // refused at the door: the server is going away
                            if answer.status != 200 { return }
                            guard let decoded = try? JSONDecoder().decode(AppendAnswer.self, from: Data(answer.body)) else {
                                Issue.record("a 200 without an answer: \(String(decoding: answer.body, as: UTF8.self))")
                                return
                            }
                            acknowledged.list.withLock { $0 += zip(ids, decoded.positions).map { ($0, $1) } }
                        }
                    }
                }
                clients.addTask {
                    try? await Task.sleep(for: .milliseconds(300))
                    await group.triggerGracefulShutdown()
                }
            }
            try await running.value
            stream.close()
        }
        let acks = acknowledged.list.withLock { $0 }
        #expect(acks.count > 0)
        try await withLedger(at: directory.ledgerPath) { ledger in
            for (id, position) in acks {
                let record = try ledger.record(at: position)
                #expect(record?.id == id, "acknowledged \(id) at \(position)")
            }
            #expect(try ledger.headPosition() >= UInt64(acks.count))
        }
    }
}

final class Acknowledged: Sendable {
    let list = Mutex<[(id: String, position: UInt64)]>([])
}
