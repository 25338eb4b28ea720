import FapiaoDomain
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Ledger
@testable import Server

/// Live tests: a real server on a socket, read by a real SSE client.
@Suite struct StreamTests {
    static func registrations(_ range: Range<Int>) -> [String] {
        range.map { Build.line("system/live-\($0)", Build.registered("live-\($0)", owner: Fixture.ownerA), id: "live-\($0)") }
    }

    @Test func catchUpThenLiveThenResumeWithLastEventIDWithoutLossOrDuplicates() async throws {
        try await withServer(.live) { server, client in
            let port = try #require(client.port)
            _ = try await post(client, Fixture.lines) // positions 1-7
            let first = try await SSEClient.connect(port: port, path: "/v1/events?from=1", token: Fixture.token("subscriber"))
            #expect(first.status == 200)
            #expect(first.headers["content-type"]?.hasPrefix("text/event-stream") == true)
            var seen = try await first.events(7)
            #expect(seen.map(\.id) == (1...7).map { String($0) }, "catch-up")
            #expect(seen[2].event == "fapiao.invoice.issued")
            let cloudEvent = try #require(try JSONSerialization.jsonObject(with: Data(seen[2].data.utf8)) as? [String: Any])
            #expect(cloudEvent["id"] as? String == "iss-1")
            #expect(cloudEvent["ledgerposition"] as? Int == 3)
            #expect((cloudEvent["ledgerhash"] as? String)?.count == 64)

            _ = try await post(client, Self.registrations(0..<3)) // 8-10, while connected
            seen += try await first.events(3)
            #expect(seen.map(\.id) == (1...10).map { String($0) }, "live delivery")
            first.close()

            _ = try await post(client, Self.registrations(3..<5)) // 11-12, while disconnected
            let second = try await SSEClient.connect(port: port, path: "/v1/events", token: Fixture.token("subscriber"), lastEventID: 10)
            seen += try await second.events(2)
            _ = try await post(client, Self.registrations(5..<6)) // 13, live again
            seen += try await second.events(1)
            second.close()
            let ids = seen.compactMap { $0.id.flatMap { UInt64($0) } }
            #expect(ids == Array(1...13), "every position once, in order")
            #expect(try server.ledger.headPosition() == 13)
        }
    }

    @Test func aScopedSubscriberGetsOnlyItsEventsAndFiltersApply() async throws {
        try await withServer(.live) { _, client in
            let port = try #require(client.port)
            _ = try await post(client, Fixture.lines)
            // sys-a's stream (1), K1 delivered to sys-a (3, 4), K3 issued to sys-a's owner (7).
            let scoped = try await SSEClient.connect(port: port, path: "/v1/events?from=1", token: Fixture.token("subscriber-a"))
            let events = try await scoped.events(4)
            #expect(events.map(\.id) == ["1", "3", "4", "7"])
            #expect(try await scoped.next(timeout: 0.5) == nil, "nothing of sys-b")
            // The heartbeat moves the client past what it was not sent.
            let other = try await post(client, [Build.line("system/sys-b", .maintenanceStarted(MaintenanceStarted(system: "sys-b", reason: "x")), id: "m-b")])
            #expect(other.status == .ok, "\(text(other))")
            for _ in 0..<30 where scoped.lastEventID != "8" { _ = try await scoped.next(timeout: 0.1) }
            #expect(scoped.lastEventID == "8", "\(scoped.transcript)")
            scoped.close()

            let receipts = try await SSEClient.connect(port: port, path: "/v1/events?from=1&type=fapiao.receipt.", token: Fixture.token("subscriber"))
            #expect(try await receipts.events(2).map(\.id) == ["4", "6"])
            receipts.close()
            let k2 = try await SSEClient.connect(port: port, path: "/v1/events?from=1&subject=\(Fixture.k2)", token: Fixture.token("auditor"))
            #expect(try await k2.events(2).map(\.id) == ["5", "6"])
            k2.close()
        }
    }

    @Test func projectionChangesStreamAsTheyApply() async throws {
        try await withServer(.live) { _, client in
            let port = try #require(client.port)
            _ = try await post(client, Fixture.lines)
            let changes = try await SSEClient.connect(port: port, path: "/v1/projections/invoice_state/changes?from=1", token: Fixture.token("subscriber"))
            let events = try await changes.events(5)
            #expect(events.map(\.id) == ["3", "4", "5", "6", "7"])
            let change = try JSONDecoder().decode(ProjectionChangeBody.self, from: Data(events[0].data.utf8))
            #expect(change.keys == [Fixture.k1])
            changes.close()
            let unknown = try await SSEClient.connect(port: port, path: "/v1/projections/nothing/changes", token: Fixture.token("subscriber"))
            #expect(unknown.status == 404)
            unknown.close()
        }
    }

    @Test func beyondTheSubscriberLimitIs429() async throws {
        try await withServer(.live, configuration: ServerConfiguration(subscribersMax: 1, heartbeatSeconds: 0.2)) { server, client in
            let port = try #require(client.port)
            let first = try await SSEClient.connect(port: port, path: "/v1/events", token: Fixture.token("subscriber"))
            #expect(first.status == 200)
            let second = try await SSEClient.connect(port: port, path: "/v1/events", token: Fixture.token("subscriber"))
            #expect(second.status == 429)
            #expect(second.headers["retry-after"] == "5")
            second.close()
            first.close()
            // The slot comes back when the client goes away (noticed at the next write: a heartbeat).
            var status = 0
            for _ in 0..<50 where status != 200 {
                try await Task.sleep(for: .milliseconds(100))
                let again = try await SSEClient.connect(port: port, path: "/v1/events", token: Fixture.token("subscriber"))
                status = again.status
                again.close()
            }
            #expect(status == 200)
            #expect(server.subscribers.max == 1)
        }
    }

    @Test func aSlowClientDoesNotHoldUpAppendsOrOtherSubscribers() async throws {
        let configuration = ServerConfiguration(streamBufferBytesMax: 4_096, heartbeatSeconds: 0.2)
        try await withServer(.live, configuration: configuration) { server, client in
            let port = try #require(client.port)
            // Connected, never read: its socket and buffer fill.
            let slow = try await SSEClient.connect(port: port, path: "/v1/events?from=1", token: Fixture.token("subscriber"))
            let fast = try await SSEClient.connect(port: port, path: "/v1/events?from=1", token: Fixture.token("subscriber"))
            var expected = 0
            for round in 0..<20 {
                let lines = (0..<100).map { index in
                    Build.line("system/slow-\(round)-\(index)", .maintenanceStarted(MaintenanceStarted(
                        system: "slow-\(round)-\(index)", reason: String(repeating: "y", count: 500))), id: "slow-\(round)-\(index)")
                }
                let response = try await post(client, lines)
                #expect(response.status == .ok)
                expected += 100
            }
            #expect(try server.ledger.headPosition() == 2_000)
            let received = try await fast.events(expected, timeout: 30)
            #expect(received.count == expected)
            #expect(received.last?.id == "2000")
            slow.close()
            fast.close()
        }
    }
}

struct ProjectionChangeBody: Decodable {
    var position: UInt64
    var keys: [String]
    var projection: String
}
