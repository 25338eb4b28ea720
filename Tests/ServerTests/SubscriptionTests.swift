import FapiaoDomain
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import Ledger
@testable import Server

/// Durable named subscriptions: `PUT/GET/DELETE /v1/subscriptions/{name}`, `.../ack`, `.../events`.
@Suite struct SubscriptionTests {
    struct Status: Decodable, Equatable {
        struct Filters: Decodable, Equatable {
            var typePrefix: String?
            var subject: String?
        }

        var name: String
        var filters: Filters
        var owner: String
        var cursor: UInt64
        var head: UInt64
        var lagEvents: UInt64
        var lagSeconds: Double
    }

    static func put(_ client: some TestClientProtocol, _ name: String, _ body: String, as token: String = "subscriber") async throws -> TestResponse {
        try await client.execute(uri: "/v1/subscriptions/\(name)", method: .put, headers: headers(token, contentType: "application/json"), body: ByteBuffer(string: body))
    }

    static func ack(_ client: some TestClientProtocol, _ name: String, _ position: UInt64, as token: String = "subscriber") async throws -> TestResponse {
        try await client.execute(uri: "/v1/subscriptions/\(name)/ack", method: .post, headers: headers(token, contentType: "application/json"),
                                 body: ByteBuffer(string: #"{"position": \#(position)}"#))
    }

    static func delete(_ client: some TestClientProtocol, _ name: String, as token: String = "subscriber") async throws -> TestResponse {
        try await client.execute(uri: "/v1/subscriptions/\(name)", method: .delete, headers: headers(token))
    }

    @Test func createUpdateAcknowledgeAndLag() async throws {
        try await withServer { server, client in
            try await seed(server, client) // positions 1-7, recorded in 2025 by the stepping clock
            let created = try await Self.put(client, "billing", #"{"from": 1}"#)
            #expect(created.status == .created, "\(text(created))")
            var status = try decode(Status.self, created)
            #expect(status == Status(name: "billing", filters: .init(), owner: "subscriber", cursor: 0, head: 7, lagEvents: 7, lagSeconds: status.lagSeconds))
            #expect(status.lagSeconds > 0)

            // An update changes the filters and keeps the cursor, whatever `from` says.
            let updated = try await Self.put(client, "billing", #"{"typePrefix": "fapiao.invoice.", "from": 6}"#)
            #expect(updated.status == .ok)
            status = try decode(Status.self, updated)
            #expect(status.cursor == 0)
            #expect(status.filters == .init(typePrefix: "fapiao.invoice.", subject: nil))

            let acked = try await Self.ack(client, "billing", 3)
            #expect(acked.status == .ok, "\(text(acked))")
            status = try decode(Status.self, acked)
            #expect(status.cursor == 3 && status.lagEvents == 4 && status.lagSeconds > 0)
            // Acknowledgements never move the cursor back.
            status = try decode(Status.self, try await Self.ack(client, "billing", 2))
            #expect(status.cursor == 3)
            // Beyond the head: refused.
            let beyond = try await Self.ack(client, "billing", 8)
            #expect(beyond.status == .badRequest)
            #expect(try problem(beyond).problems?.first?.attribute == "position")

            status = try decode(Status.self, try await Self.ack(client, "billing", 7))
            #expect(status.cursor == 7 && status.lagEvents == 0 && status.lagSeconds == 0)
            let shown = try await get(client, "/v1/subscriptions/billing", as: "subscriber")
            #expect(shown.status == .ok)
            #expect(try decode(Status.self, shown) == status)

            // Without `from`: only new events.
            let fresh = try await Self.put(client, "fresh", "")
            #expect(fresh.status == .created, "\(text(fresh))")
            #expect(try decode(Status.self, fresh).cursor == 7)
            #expect(try await Self.put(client, "far", #"{"from": 9}"#).status == .badRequest)
        }
    }

    @Test func unknownForbiddenAndMalformed() async throws {
        try await withServer { server, client in
            try await seed(server, client)
            #expect(try await get(client, "/v1/subscriptions/nothing", as: "subscriber").status == .notFound)
            #expect(try await Self.ack(client, "nothing", 1).status == .notFound)
            #expect(try await Self.delete(client, "nothing").status == .notFound)
            #expect(try await get(client, "/v1/subscriptions/nothing", as: nil).status == .unauthorized)
            #expect(try await Self.put(client, "mine", "{}", as: "reader").status == .forbidden)
            #expect(try await Self.put(client, "mine", "{}", as: "writer").status == .forbidden)
            #expect(try await Self.put(client, "bad%20name", "{}").status == .badRequest)
            #expect(try await Self.put(client, "mine", "[1]").status == .badRequest)

            #expect(try await Self.put(client, "scoped", #"{"from": 1}"#, as: "subscriber-a").status == .created)
            // Another token may not see, acknowledge, change or delete it; an auditor may.
            let other = try await get(client, "/v1/subscriptions/scoped", as: "subscriber")
            #expect(other.status == .forbidden)
            #expect(try problem(other).detail.contains("subscriber-a"))
            #expect(try await Self.ack(client, "scoped", 1).status == .forbidden)
            #expect(try await Self.put(client, "scoped", "{}").status == .forbidden)
            #expect(try await Self.delete(client, "scoped").status == .forbidden)
            #expect(try await get(client, "/v1/subscriptions/scoped", as: "auditor").status == .ok)
            let malformedAck = try await client.execute(uri: "/v1/subscriptions/scoped/ack", method: .post,
                                                        headers: headers("subscriber-a", contentType: "application/json"), body: ByteBuffer(string: #"{"position": -1}"#))
            #expect(malformedAck.status == .badRequest)

            #expect(try await Self.delete(client, "scoped", as: "subscriber-a").status == .noContent)
            #expect(try await get(client, "/v1/subscriptions/scoped", as: "subscriber-a").status == .notFound)
        }
    }

    /// The cursor survives a restart of the server on the same ledger; the stream starts after
    /// it, with the stored filters, and `Last-Event-ID` moves it on only when later.
    @Test func eventsStartAtTheStoredCursorAfterARestart() async throws {
        let directory = TemporaryDirectory()
        try await withLiveServer(at: directory.ledgerPath) { _, client in
            _ = try await post(client, Fixture.lines) // 1-7
            #expect(try await Self.put(client, "invoices", #"{"typePrefix": "fapiao.invoice.", "from": 1}"#).status == .created)
            #expect(try await Self.ack(client, "invoices", 3).status == .ok)
            #expect(try await Self.put(client, "scoped", #"{"from": 1}"#, as: "subscriber-a").status == .created)
        }
        try await withLiveServer(at: directory.ledgerPath) { _, client in
            let port = try #require(client.port)
            let status = try decode(Status.self, try await get(client, "/v1/subscriptions/invoices", as: "subscriber"))
            #expect(status.cursor == 3 && status.lagEvents == 4)

            // Issued invoices after 3: K2 (5) and K3 (7); then live.
            let stream = try await SSEClient.connect(port: port, path: "/v1/subscriptions/invoices/events", token: Fixture.token("subscriber"))
            #expect(stream.status == 200)
            #expect(try await stream.events(2).map(\.id) == ["5", "7"])
            let k4 = "24112000000015300004"
            _ = try await post(client, [
                Build.line("system/sys-c", Build.registered("sys-c", owner: Fixture.ownerA), id: "reg-c"),
                Build.line(k4, Build.issued(k4, seller: "北京云栈科技有限公司", sellerTaxId: Fixture.sellerS1, buyer: "甲公司", buyerTaxId: Fixture.ownerA), id: "iss-4"),
            ]) // 8, 9
            #expect(try await stream.events(1).map(\.id) == ["9"], "live, filtered")
            stream.close()

            let later = try await SSEClient.connect(port: port, path: "/v1/subscriptions/invoices/events", token: Fixture.token("subscriber"), lastEventID: 5)
            #expect(try await later.events(2).map(\.id) == ["7", "9"])
            later.close()
            let earlier = try await SSEClient.connect(port: port, path: "/v1/subscriptions/invoices/events", token: Fixture.token("subscriber"), lastEventID: 1)
            #expect(try await earlier.events(1).map(\.id) == ["5"], "never before the cursor")
            earlier.close()

            // A scoped token's subscription sees its scope, even read by an auditor.
            let scoped = try await SSEClient.connect(port: port, path: "/v1/subscriptions/scoped/events", token: Fixture.token("auditor"))
            #expect(try await scoped.events(4).map(\.id) == ["1", "3", "4", "7"])
            scoped.close()
            let foreign = try await SSEClient.connect(port: port, path: "/v1/subscriptions/scoped/events", token: Fixture.token("subscriber"))
            #expect(foreign.status == 403)
            foreign.close()
            let unknown = try await SSEClient.connect(port: port, path: "/v1/subscriptions/nothing/events", token: Fixture.token("subscriber"))
            #expect(unknown.status == 404)
            unknown.close()
        }
    }

    /// A started live server over the ledger at `path` (opened for the call, closed after).
    func withLiveServer(at path: String, _ body: @escaping @Sendable (FapiaoServer, any TestClientProtocol) async throws -> Void) async throws {
        try await withLedger(at: path) { ledger in
            let server = try FapiaoServer(ledger: ledger, access: Fixture.access, configuration: ServerConfiguration(heartbeatSeconds: 0.2))
            try await server.start()
            defer { server.stop() }
            try await server.application().test(.live) { client in try await body(server, client) }
        }
    }
}
