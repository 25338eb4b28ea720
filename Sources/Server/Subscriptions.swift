import Foundation
import Hummingbird
import LMDB
import Ledger

// Durable named subscriptions: a client names a subscription (its filters and a cursor kept
// in the ledger), reads it as Server-Sent Events from the cursor on, and acknowledges what it
// has processed. `GET /v1/subscriptions/{name}` tells how far behind it is.
//
// Stored in the ledger table `server_subscriptions`: name → JSON `StoredSubscription`.
// Every change is a read-modify-write in one write transaction on the writer thread
// (`Ledger.performWrite`), so concurrent acknowledgements never lose one another.

/// One subscription as kept in the ledger.
struct StoredSubscription: Codable, Sendable, Equatable {
    var name: String
    var typePrefix: String?
    var subject: String?
    /// The last position the client acknowledged; streams start after it.
    var cursor: UInt64
    /// RFC 3339, UTC: the last create, update or acknowledgement.
    var updatedAt: String
    /// The name of the token that created it (`local` without tokens): its scope is the
    /// subscription's, and only it (or an auditor) may use the subscription.
    var owner: String

    var filter: RecordFilter { RecordFilter(typePrefix: typePrefix, stream: subject) }
}

/// The answer of `GET`, `PUT` and `POST .../ack`.
struct SubscriptionStatus: Encodable {
    struct Filters: Encodable {
        var typePrefix: String?
        var subject: String?
    }

    var name: String
    var filters: Filters
    var owner: String
    var cursor: UInt64
    var head: UInt64
    /// Positions after the cursor, whether the filters match them or not.
    var lagEvents: UInt64
    /// Now minus the recorded time of the first position after the cursor; 0 when caught up.
    var lagSeconds: Double
    var updatedAt: String
}

enum SubscriptionStore {
    static let tableName = "server_subscriptions"
    static let nameCharactersMax = 128

    static func validName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= nameCharactersMax
            && name.unicodeScalars.allSatisfy { ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || "._-".unicodeScalars.contains($0) }
    }

    static func now() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date())
    }

    static func decode(_ bytes: [UInt8]) throws -> StoredSubscription {
        try JSONDecoder().decode(StoredSubscription.self, from: Data(bytes))
    }

    static func encode(_ subscription: StoredSubscription) throws -> [UInt8] {
        try ResponseJSON.encode(subscription, compact: true)
    }
}

/// The body of `PUT /v1/subscriptions/{name}`.
struct SubscriptionRequest: Decodable {
    var typePrefix: String?
    var subject: String?
    var from: UInt64?
}

/// The body of `POST /v1/subscriptions/{name}/ack`.
struct AcknowledgementRequest: Decodable {
    var position: UInt64
}

extension FapiaoServer {
    // MARK: Storage

    /// The stored subscription, or nil (also when no subscription was ever made).
    func storedSubscription(_ name: String) throws(Problem) -> StoredSubscription? {
        do {
            let table: Table
            do {
                table = try ledger.table(named: SubscriptionStore.tableName, create: false)
            } catch LMDBError.notFound {
                return nil
            }
            guard let bytes = try ledger.read({ txn in try txn.get(table, key: Array(name.utf8)) }) else { return nil }
            return try SubscriptionStore.decode(bytes)
        } catch {
            throw internalProblem(error)
        }
    }

    /// Runs a read-modify-write of one subscription in a write transaction. `change` gets the
    /// stored value (nil when absent) and the head, and answers the new value (nil: delete) or
    /// a problem, which leaves everything as it was.
    func modifySubscription(
        _ name: String,
        _ change: @escaping @Sendable (StoredSubscription?, UInt64) -> Result<StoredSubscription?, Problem>
    ) async throws(Problem) -> StoredSubscription? {
        let ledger = self.ledger
        let outcome: Result<StoredSubscription?, Problem>
        do {
            outcome = try await ledger.performWrite { txn in
                let table = try txn.openTable(SubscriptionStore.tableName, flags: .create)
                let key = Array(name.utf8)
                let current = try txn.get(table, key: key).map(SubscriptionStore.decode)
                let result = change(current, try ledger.headPosition(in: txn))
                switch result {
                case .success(let updated?):
                    try txn.put(table, key: key, value: SubscriptionStore.encode(updated), flags: [])
                case .success(nil):
                    try txn.delete(table, key: key)
                case .failure:
                    break
                }
                return result
            }
        } catch {
            throw internalProblem(error)
        }
        return try outcome.get()
    }

    /// The caller of a subscription endpoint and the subscription's name.
    func subscriptionCaller(_ request: Request, _ context: some RequestContext) throws(Problem) -> (Principal, String) {
        let principal = try access.authorize(request, roles: Roles.stream)
        let name = try pathParameter("name", context)
        guard SubscriptionStore.validName(name) else {
            throw .badRequest("a subscription name is 1 to \(SubscriptionStore.nameCharactersMax) characters of A-Z, a-z, 0-9, '.', '_' and '-'",
                              problems: [Problem.Item(index: nil, attribute: "name", expected: "[A-Za-z0-9._-]{1,128}", got: name)])
        }
        return (principal, name)
    }

    /// 403 unless `principal` made the subscription, is an auditor, or the server has no tokens.
    static func mayUse(_ subscription: StoredSubscription, _ principal: Principal) -> Problem? {
        if principal.role == nil || principal.role == .auditor || principal.name == subscription.owner { return nil }
        return .forbidden("the subscription \(subscription.name) belongs to the token \(subscription.owner); the token \(principal.name) may not use it")
    }

    static func unknownSubscription(_ name: String) -> Problem {
        .notFound("no subscription named \(name); create it with PUT /v1/subscriptions/\(name)")
    }

    func status(of subscription: StoredSubscription) throws(Problem) -> SubscriptionStatus {
        do {
            let head = try ledger.headPosition()
            var lagSeconds = 0.0
            if subscription.cursor < head, let first = try ledger.record(at: subscription.cursor + 1) {
                let nowMicros = Int64(Date().timeIntervalSince1970 * 1_000_000)
                lagSeconds = max(0, Double(nowMicros - first.recordedMicros) / 1_000_000)
            }
            return SubscriptionStatus(
                name: subscription.name, filters: .init(typePrefix: subscription.typePrefix, subject: subscription.subject),
                owner: subscription.owner, cursor: subscription.cursor, head: head,
                lagEvents: head > subscription.cursor ? head - subscription.cursor : 0, lagSeconds: lagSeconds,
                updatedAt: subscription.updatedAt)
        } catch {
            throw internalProblem(error)
        }
    }

    func statusResponse(_ subscription: StoredSubscription, status: HTTPResponse.Status = .ok) throws(Problem) -> Response {
        let answer = try self.status(of: subscription)
        do { return try ResponseJSON.response(answer, status: status) } catch { throw internalProblem(error) }
    }

    func decodeJSONBody<T: Decodable>(_ type: T.Type, _ request: Request, emptyAs empty: String? = nil, expected: String) async throws(Problem) -> T {
        var bytes = try await collectBody(request)
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }), let empty { bytes = Array(empty.utf8) }
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch {
            throw .badRequest("the body must be \(expected)", problems: [Problem.Item(
                index: nil, attribute: "", expected: expected, got: String(decoding: bytes.prefix(200), as: UTF8.self))])
        }
    }

    // MARK: PUT /v1/subscriptions/{name}

    func putSubscription(_ request: Request, _ context: some RequestContext) async throws(Problem) -> Response {
        let (principal, name) = try subscriptionCaller(request, context)
        let body = try await decodeJSONBody(SubscriptionRequest.self, request, emptyAs: "{}",
                                            expected: #"a JSON object {"typePrefix"?: string, "subject"?: string, "from"?: position}"#)
        let typePrefix = body.typePrefix.flatMap { $0.isEmpty ? nil : $0 }
        let subject = body.subject.flatMap { $0.isEmpty ? nil : $0 }
        let from = body.from
        let updatedAt = SubscriptionStore.now()
        let created = SharedFlag()
        let stored = try await modifySubscription(name) { current, head in
            if let current {
                if let refused = Self.mayUse(current, principal) { return .failure(refused) }
                var updated = current
                updated.typePrefix = typePrefix
                updated.subject = subject
                updated.updatedAt = updatedAt
                return .success(updated)
            }
            var cursor = head
            if let from {
                guard from <= head + 1 else {
                    return .failure(.badRequest("from is beyond the head (\(head)) plus one", problems: [Problem.Item(
                        index: nil, attribute: "from", expected: "a position from 1 to \(head + 1)", got: "\(from)")]))
                }
                cursor = from == 0 ? 0 : from - 1
            }
            created.set()
            return .success(StoredSubscription(name: name, typePrefix: typePrefix, subject: subject, cursor: cursor,
                                               updatedAt: updatedAt, owner: principal.name))
        }
        guard let stored else { throw internalError("the subscription \(name) was not stored") }
        return try statusResponse(stored, status: created.value ? .created : .ok)
    }

    // MARK: GET /v1/subscriptions/{name}

    func getSubscription(_ request: Request, _ context: some RequestContext) async throws(Problem) -> Response {
        let (principal, name) = try subscriptionCaller(request, context)
        guard let stored = try storedSubscription(name) else { throw Self.unknownSubscription(name) }
        if let refused = Self.mayUse(stored, principal) { throw refused }
        return try statusResponse(stored)
    }

    // MARK: POST /v1/subscriptions/{name}/ack

    func acknowledge(_ request: Request, _ context: some RequestContext) async throws(Problem) -> Response {
        let (principal, name) = try subscriptionCaller(request, context)
        let body = try await decodeJSONBody(AcknowledgementRequest.self, request, expected: #"a JSON object {"position": position}"#)
        let updatedAt = SubscriptionStore.now()
        let stored = try await modifySubscription(name) { current, head in
            guard var current else { return .failure(Self.unknownSubscription(name)) }
            if let refused = Self.mayUse(current, principal) { return .failure(refused) }
            guard body.position <= head else {
                return .failure(.badRequest("position \(body.position) is beyond the head (\(head))", problems: [Problem.Item(
                    index: nil, attribute: "position", expected: "a position up to \(head)", got: "\(body.position)")]))
            }
            current.cursor = max(current.cursor, body.position)
            current.updatedAt = updatedAt
            return .success(current)
        }
        guard let stored else { throw internalError("the subscription \(name) was not stored") }
        return try statusResponse(stored)
    }

    // MARK: DELETE /v1/subscriptions/{name}

    func deleteSubscription(_ request: Request, _ context: some RequestContext) async throws(Problem) -> Response {
        let (principal, name) = try subscriptionCaller(request, context)
        // Nothing stored yet: do not create the table just to find nothing in it.
        guard try storedSubscription(name) != nil else { throw Self.unknownSubscription(name) }
        _ = try await modifySubscription(name) { current, _ in
            guard let current else { return .failure(Self.unknownSubscription(name)) }
            if let refused = Self.mayUse(current, principal) { return .failure(refused) }
            return .success(nil)
        }
        return Response(status: .noContent)
    }

    // MARK: GET /v1/subscriptions/{name}/events

    func subscriptionEvents(_ request: Request, _ context: some RequestContext) async throws(Problem) -> Response {
        let (principal, name) = try subscriptionCaller(request, context)
        guard let stored = try storedSubscription(name) else { throw Self.unknownSubscription(name) }
        if let refused = Self.mayUse(stored, principal) { throw refused }
        // Last-Event-ID (or from) only when it is later than the cursor.
        let start = max(stored.cursor + 1, try Self.startPosition(request, default: stored.cursor + 1))
        // The subscription sees its creator's scope; an auditor reading it sees no more than that.
        var viewer = principal
        if principal.name != stored.owner {
            guard let owner = access.principal(named: stored.owner) else {
                throw .forbidden("the token \(stored.owner) that made the subscription \(name) is no longer known; its scope cannot be decided")
            }
            viewer = owner
        }
        return try logStream(from: start, filter: stored.filter, principal: viewer,
                             comment: "subscription \(name) from position \(start)")
    }

    func internalError(_ detail: String) -> Problem {
        logger.error("request failed", metadata: ["error": "\(detail)"])
        return .internalError(detail)
    }
}

/// A flag set inside a `performWrite` closure and read after it.
final class SharedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    func set() { lock.withLock { flag = true } }
    var value: Bool { lock.withLock { flag } }
}

extension AccessControl {
    /// The principal of the token named `name` (`local` for a server without tokens).
    func principal(named name: String) -> Principal? {
        guard let entries else { return .local }
        return entries.first { $0.principal.name == name }?.principal
    }
}
