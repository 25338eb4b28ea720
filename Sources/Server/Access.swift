import Crypto
import Foundation
import Hummingbird

/// What a token may do.
public enum Role: String, Codable, Sendable, CaseIterable {
    /// Appends events (`POST /v1/events`).
    case writer
    /// Queries: invoices, timelines, `why`, status lists.
    case reader
    /// Queries and streams: what an auditor reads, everything a reader does plus the log.
    case auditor
    /// Streams: the log and projection changes as Server-Sent Events.
    case subscriber
}

/// Which roles each kind of endpoint admits.
enum Roles {
    static let append: Set<Role> = [.writer]
    static let query: Set<Role> = [.reader, .auditor]
    static let stream: Set<Role> = [.subscriber, .auditor]
    static let operate: Set<Role> = Set(Role.allCases)
}

/// The part of the ledger a token may see. Nil limits are no limit; when both are given, an
/// invoice must satisfy both.
public struct Scope: Sendable, Equatable {
    /// Receiving systems: their system and user streams, and the invoices that concern them
    /// (an event names the system, or the buyer is the system's registered owner).
    public var systems: Set<String>?
    /// Sellers: invoices issued by these taxpayers.
    public var sellerTaxIds: Set<String>?

    public init(systems: Set<String>? = nil, sellerTaxIds: Set<String>? = nil) {
        self.systems = systems
        self.sellerTaxIds = sellerTaxIds
    }

    public static let unlimited = Scope()

    public var isUnlimited: Bool { systems == nil && sellerTaxIds == nil }

    /// A system, its stream and its users' streams: only with no limit, or a systems limit naming it.
    public func admits(system: String) -> Bool {
        if isUnlimited { return true }
        return systems?.contains(system) ?? false
    }

    /// An invoice, from what is known of it. `owners` are the owner tax IDs of the systems in
    /// the limit (registered with `fapiao.system.registered`).
    public func admits(_ facts: InvoiceFacts, owners: Set<String>) -> Bool {
        if let sellerTaxIds {
            guard let seller = facts.sellerTaxId, sellerTaxIds.contains(seller) else { return false }
        }
        if let systems {
            let named = !facts.systems.isDisjoint(with: systems)
            let owned = facts.buyerTaxId.map { owners.contains($0) } ?? false
            guard named || owned else { return false }
        }
        return true
    }
}

/// What decides whether an invoice is in a scope.
public struct InvoiceFacts: Sendable, Equatable {
    public var sellerTaxId: String?
    public var buyerTaxId: String?
    /// Systems named by the invoice's events (delivery, receipt, review).
    public var systems: Set<String>

    public init(sellerTaxId: String?, buyerTaxId: String?, systems: Set<String>) {
        self.sellerTaxId = sellerTaxId
        self.buyerTaxId = buyerTaxId
        self.systems = systems
    }
}

/// Who is asking: a token's name, role and scope; or everyone, when the server runs without
/// tokens (bound to 127.0.0.1 only).
public struct Principal: Sendable, Equatable {
    public var name: String
    /// Nil: every role (a server without tokens).
    public var role: Role?
    public var scope: Scope

    public static let local = Principal(name: "local", role: nil, scope: .unlimited)
}

/// One entry of the tokens file (a JSON array of these).
public struct TokenEntry: Codable, Sendable, Equatable {
    public var token: String
    public var role: Role
    public var systems: [String]?
    public var sellerTaxIds: [String]?
    public var name: String

    public init(token: String, role: Role, systems: [String]? = nil, sellerTaxIds: [String]? = nil, name: String) {
        self.token = token
        self.role = role
        self.systems = systems
        self.sellerTaxIds = sellerTaxIds
        self.name = name
    }
}

public struct TokenFileError: Error, CustomStringConvertible, Equatable {
    public var description: String
}

/// Bearer-token authentication. Tokens are kept only as SHA-256 digests and compared in
/// constant time: every entry is compared in full, whatever matches, so the time taken says
/// nothing about how much of a token was right.
public struct AccessControl: Sendable {
    struct Entry: Sendable {
        var digest: [UInt8]
        var principal: Principal
    }

    /// Nil: no tokens, everyone is `Principal.local`.
    let entries: [Entry]?

    public static let open = AccessControl(entries: nil)

    public var isOpen: Bool { entries == nil }

    /// The shortest token accepted: 128 bits of hex.
    public static let tokenCharactersMin = 32

    init(entries: [Entry]?) { self.entries = entries }

    public init(tokens: [TokenEntry]) throws {
        var seen = Set<String>()
        var entries: [Entry] = []
        for (index, entry) in tokens.enumerated() {
            let label = "entry \(index) (\(entry.name.isEmpty ? "unnamed" : entry.name))"
            guard !entry.name.isEmpty else { throw TokenFileError(description: "\(label): name is empty") }
            guard entry.token.count >= Self.tokenCharactersMin else {
                throw TokenFileError(description: "\(label): the token has \(entry.token.count) characters; at least \(Self.tokenCharactersMin) (e.g. `openssl rand -hex 32`)")
            }
            guard seen.insert(entry.token).inserted else { throw TokenFileError(description: "\(label): the same token appears twice") }
            if let systems = entry.systems, systems.isEmpty || systems.contains(where: \.isEmpty) {
                throw TokenFileError(description: "\(label): systems must list at least one system, or be left out for all")
            }
            if let sellers = entry.sellerTaxIds, sellers.isEmpty || sellers.contains(where: \.isEmpty) {
                throw TokenFileError(description: "\(label): sellerTaxIds must list at least one tax ID, or be left out for all")
            }
            let scope = Scope(systems: entry.systems.map(Set.init), sellerTaxIds: entry.sellerTaxIds.map(Set.init))
            entries.append(Entry(digest: Self.digest(entry.token), principal: Principal(name: entry.name, role: entry.role, scope: scope)))
        }
        guard !entries.isEmpty else { throw TokenFileError(description: "the tokens file lists no token") }
        self.entries = entries
    }

    /// Reads a tokens file: `[{"token": "...", "role": "reader", "systems": [...], "name": "..."}]`.
    public static func load(path: String) throws -> AccessControl {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TokenFileError(description: "cannot read the tokens file \(path)")
        }
        let tokens: [TokenEntry]
        do {
            tokens = try JSONDecoder().decode([TokenEntry].self, from: data)
        } catch {
            throw TokenFileError(description: "\(path) is not a JSON array of {token, role (writer|reader|auditor|subscriber), systems?, sellerTaxIds?, name}: \(error)")
        }
        do {
            return try AccessControl(tokens: tokens)
        } catch let error as TokenFileError {
            throw TokenFileError(description: "\(path): \(error.description)")
        }
    }

    static func digest(_ token: String) -> [UInt8] { Array(SHA256.hash(data: Array(token.utf8))) }

    /// Who presents `authorization` (the header's value), or a 401 problem.
    public func authenticate(authorization: String?) throws(Problem) -> Principal {
        guard let entries else { return .local }
        guard let authorization, !authorization.isEmpty else {
            throw Problem.unauthenticated("send the header Authorization: Bearer TOKEN", invalidToken: false)
        }
        let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw Problem.unauthenticated("the Authorization header must be `Bearer TOKEN`", invalidToken: true)
        }
        let presented = Self.digest(String(parts[1]).trimmingCharacters(in: .whitespaces))
        var found: Principal?
        for entry in entries {
            var difference: UInt8 = 0
            for (a, b) in zip(entry.digest, presented) { difference |= a ^ b }
            if difference == 0 { found = entry.principal }
        }
        guard let found else { throw Problem.unauthenticated("the token is not valid", invalidToken: true) }
        return found
    }

    /// The caller, if their token has one of `roles`; else 401 (no or bad token) or 403.
    public func authorize(_ request: Request, roles: Set<Role>) throws(Problem) -> Principal {
        let principal = try authenticate(authorization: request.headers[.authorization])
        guard let role = principal.role else { return principal }
        guard roles.contains(role) else {
            let allowed = roles.map(\.rawValue).sorted().joined(separator: " or ")
            throw Problem.forbidden("this needs the role \(allowed); the token \(principal.name) has the role \(role.rawValue)")
        }
        return principal
    }
}
