// Data of the system-stream (`system/<id>`) and user-stream (`system/<id>/user/<id>`) events.

public struct SystemRegistered: Sendable, Hashable, EventData {
    public var system: String
    public var name: String
    /// The buyer this system keeps books for: invoices to anyone else are wrong recipients.
    public var ownerTaxId: String
    public var requiresReview: Bool
    /// The statuses its default view shows, often only `approved`.
    public var visibleStatuses: [VisibleStatus]

    public init(system: String, name: String, ownerTaxId: String, requiresReview: Bool, visibleStatuses: [VisibleStatus]) {
        self.system = system
        self.name = name
        self.ownerTaxId = ownerTaxId
        self.requiresReview = requiresReview
        self.visibleStatuses = visibleStatuses
    }

    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> SystemRegistered? {
        let system = reader.identifier(fields, "system")
        let name = reader.text(fields, "name")
        let ownerTaxId = reader.text(fields, "ownerTaxId")
        let requiresReview = reader.required(fields, "requiresReview", Field.bool, expected: "true or false")
        let statuses = reader.required(fields, "visibleStatuses", Field.choices(VisibleStatus.self, countMax: statusesMax), expected: "an array of statuses")
        guard let system, let name, let ownerTaxId, let requiresReview, let statuses else { return nil }
        return SystemRegistered(system: system, name: name, ownerTaxId: ownerTaxId, requiresReview: requiresReview, visibleStatuses: statuses)
    }

    var jsonFields: [(String, JSONValue?)] {
        [
            ("system", .string(system)), ("name", .string(name)), ("ownerTaxId", .string(ownerTaxId)),
            ("requiresReview", .bool(requiresReview)), ("visibleStatuses", .makeArray(visibleStatuses.map { .string($0.rawValue) })),
        ]
    }
}

/// Status lists are short; the bound only stops abuse.
let statusesMax = 16

public struct MaintenanceStarted: Sendable, Hashable, EventData {
    public var system: String
    public var reason: String

    public init(system: String, reason: String) {
        self.system = system
        self.reason = reason
    }

    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> MaintenanceStarted? {
        let system = reader.identifier(fields, "system")
        let reason = reader.text(fields, "reason")
        guard let system, let reason else { return nil }
        return MaintenanceStarted(system: system, reason: reason)
    }

    var jsonFields: [(String, JSONValue?)] { [("system", .string(system)), ("reason", .string(reason))] }
}

public struct MaintenanceEnded: Sendable, Hashable, EventData {
    public var system: String

    public init(system: String) { self.system = system }

    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> MaintenanceEnded? {
        reader.identifier(fields, "system").map(MaintenanceEnded.init)
    }

    var jsonFields: [(String, JSONValue?)] { [("system", .string(system))] }
}

// MARK: - Access

/// What a grant covers: every invoice in the system, or those of some sellers.
public enum AccessScope: Sendable, Hashable {
    case all
    case sellerTaxIds([String])

    public static let sellerTaxIdsMax = 10_000

    /// Whether an invoice from this seller is covered.
    public func covers(sellerTaxId: String?) -> Bool {
        switch self {
        case .all: true
        case .sellerTaxIds(let ids): sellerTaxId.map(ids.contains) ?? false
        }
    }

    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> AccessScope? {
        let hasAll = fields.node("all") != nil
        let hasSellers = fields.node("sellerTaxIds") != nil
        guard hasAll != hasSellers else {
            reader.record(fields.path, expected: "exactly one of {\"all\": true} or {\"sellerTaxIds\": [...]}", got: hasAll ? "both" : "neither")
            return nil
        }
        if hasSellers {
            return reader.required(fields, "sellerTaxIds", Field.strings(countMax: sellerTaxIdsMax), expected: "an array of taxpayer IDs").map(AccessScope.sellerTaxIds)
        }
        guard let all = reader.required(fields, "all", Field.bool, expected: "true") else { return nil }
        guard all else {
            reader.record(fields.path("all"), expected: "true (to grant nothing, send no grant)", got: "false")
            return nil
        }
        return .all
    }

    var json: JSONValue {
        switch self {
        case .all: .makeObject([("all", .bool(true))])
        case .sellerTaxIds(let ids): .makeObject([("sellerTaxIds", .makeArray(ids.map(JSONValue.string)))])
        }
    }
}

/// `fapiao.access.granted` and `fapiao.access.revoked` carry the same fields.
public struct AccessChange: Sendable, Hashable, EventData {
    public var system: String
    public var user: String
    public var scope: AccessScope

    public init(system: String, user: String, scope: AccessScope) {
        self.system = system
        self.user = user
        self.scope = scope
    }

    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> AccessChange? {
        let system = reader.identifier(fields, "system")
        let user = reader.identifier(fields, "user")
        let scope = reader.object(fields, "scope", expected: "a scope object", AccessScope.decode)
        guard let system, let user, let scope else { return nil }
        return AccessChange(system: system, user: user, scope: scope)
    }

    var jsonFields: [(String, JSONValue?)] { [("system", .string(system)), ("user", .string(user)), ("scope", scope.json)] }
}

public typealias AccessGranted = AccessChange
public typealias AccessRevoked = AccessChange

// MARK: - Queries

/// What a user searched for. `number` is kept exactly as typed: a full-width or swapped
/// number is the evidence `why` needs.
public struct QueryCriteria: Sendable, Hashable {
    public var number: String?
    public var issuedFrom: CalendarDate?
    /// Inclusive.
    public var issuedTo: CalendarDate?
    public var buyerName: String?
    public var sellerName: String?
    public var statuses: [VisibleStatus]?

    public init(number: String? = nil, issuedFrom: CalendarDate? = nil, issuedTo: CalendarDate? = nil, buyerName: String? = nil, sellerName: String? = nil, statuses: [VisibleStatus]? = nil) {
        self.number = number
        self.issuedFrom = issuedFrom
        self.issuedTo = issuedTo
        self.buyerName = buyerName
        self.sellerName = sellerName
        self.statuses = statuses
    }

    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> QueryCriteria? {
        let number = reader.optionalText(fields, "number")
        let issuedFrom = reader.optional(fields, "issuedFrom", Field.date)
        let issuedTo = reader.optional(fields, "issuedTo", Field.date)
        let buyerName = reader.optionalText(fields, "buyerName")
        let sellerName = reader.optionalText(fields, "sellerName")
        let statuses = reader.optional(fields, "statuses", Field.choices(VisibleStatus.self, countMax: statusesMax))
        guard let number, let issuedFrom, let issuedTo, let buyerName, let sellerName, let statuses else { return nil }
        return QueryCriteria(number: number, issuedFrom: issuedFrom, issuedTo: issuedTo, buyerName: buyerName, sellerName: sellerName, statuses: statuses)
    }

    var json: JSONValue {
        .makeObject([
            ("number", number.json), ("issuedFrom", issuedFrom.map { .string($0.description) }),
            ("issuedTo", issuedTo.map { .string($0.description) }), ("buyerName", buyerName.json),
            ("sellerName", sellerName.json), ("statuses", statuses.map { .makeArray($0.map { .string($0.rawValue) }) }),
        ])
    }
}

public struct QueryExecuted: Sendable, Hashable, EventData {
    public var system: String
    public var user: String
    public var criteria: QueryCriteria
    public var resultCount: Int

    public init(system: String, user: String, criteria: QueryCriteria, resultCount: Int) {
        self.system = system
        self.user = user
        self.criteria = criteria
        self.resultCount = resultCount
    }

    static func decode(_ fields: ObjectFields, _ reader: inout DataReader) -> QueryExecuted? {
        let system = reader.identifier(fields, "system")
        let user = reader.identifier(fields, "user")
        let criteria = reader.object(fields, "criteria", expected: "a criteria object", QueryCriteria.decode)
        let resultCount = reader.required(fields, "resultCount", Field.integer(minimum: 0), expected: "an integer ≥ 0")
        guard let system, let user, let criteria, let resultCount else { return nil }
        return QueryExecuted(system: system, user: user, criteria: criteria, resultCount: resultCount)
    }

    var jsonFields: [(String, JSONValue?)] {
        [("system", .string(system)), ("user", .string(user)), ("criteria", criteria.json), ("resultCount", .integer(resultCount))]
    }
}
