import FapiaoDomain
import Foundation
import LMDB
import Ledger

/// The built-in projections.
public enum BuiltInProjections {
    public static var all: [any Projection] {
        [InvoiceStateProjection(), StatusViewsProjection(), SearchProjection(), AccessProjection(), SystemsProjection()]
    }
}

/// Keys used in the invoice-level tables: invoice events carry their key as the stream.
extension DecodedBatch.Item {
    public var isInvoiceEvent: Bool { event.map { $0.type.streamKind == .invoice } ?? false }
}

// MARK: - invoice_state

/// Per invoice key: the current state as each observer saw it (`InvoiceState`, JSON).
public struct InvoiceStateProjection: RowHandingProjection {
    public static let name = "invoice_state"
    public var name: String { Self.name }
    /// 2: rows say which position set the issuer status.
    public var version: Int { 4 }
    public var tables: [ProjectionTableSpec] { [ProjectionTableSpec("rows")] }

    public init() {}

    /// Events of invoice streams' types (`isInvoiceEvent`).
    public var eventTypes: Set<EventType>? { Set(EventType.allCases.filter { $0.streamKind == .invoice }) }

    public func apply(_ batch: DecodedBatch, to store: ProjectionStore) throws {
        try fold(batch, in: store).flush(to: store, table: "rows")
    }

    public var handedTable: String { "rows" }

    public func applyHandingRows(_ batch: DecodedBatch, to store: ProjectionStore) throws -> [(key: String, row: SourceRow)] {
        try fold(batch, in: store).flushHandingRows(to: store, table: "rows")
    }

    private func fold(_ batch: DecodedBatch, in store: ProjectionStore) throws -> RowCache<InvoiceState> {
        var cache = RowCache<InvoiceState>()
        for item in batch.items where item.isInvoiceEvent {
            guard let event = item.event else { continue }
            let key = item.record.stream
            try cache.update(key, in: store, table: "rows", make: { InvoiceState(key: key) }) { state in
                InvoiceFold.apply(event, record: item.record, to: &state)
            }
        }
        return cache
    }

    public static func row(_ key: String, in snapshot: ProjectionSnapshot) throws -> InvoiceState? {
        guard let (store, _) = try snapshot.store(name), let bytes = try store.get("rows", key: Array(key.utf8)) else { return nil }
        return try InvoiceState.fromRow(bytes)
    }
}

// MARK: - systems

/// Per receiving system: its registration and maintenance windows.
public struct SystemRow: Codable, Sendable, Equatable {
    public struct Maintenance: Codable, Sendable, Equatable {
        public var start: Int64
        public var end: Int64?
        public var reason: String
        public var positions: [UInt64]
    }

    public var system: String
    public var name: String?
    public var ownerTaxId: String?
    public var requiresReview: Bool = false
    public var visibleStatuses: [String] = []
    public var registeredAt: UInt64?
    public var maintenance: [Maintenance] = []

    public static let maintenanceWindowsMax = 1000

    /// The events a system's row is folded from.
    static let eventTypes = Set(EventType.allCases.filter { $0.streamKind == .system })
}

public struct SystemsProjection: Projection {
    public static let name = "systems"
    public var name: String { Self.name }
    public var version: Int { 1 }
    public var tables: [ProjectionTableSpec] { [ProjectionTableSpec("rows")] }

    public init() {}

    public var eventTypes: Set<EventType>? { SystemRow.eventTypes }

    public func apply(_ batch: DecodedBatch, to store: ProjectionStore) throws {
        var cache = RowCache<SystemRow>()
        for item in batch.items {
            guard let event = item.event, let system = event.system, event.type.streamKind == .system else { continue }
            try cache.update(system, in: store, table: "rows", make: { SystemRow(system: system) }) { row in
                Self.fold(event, record: item.record, into: &row)
            }
        }
        try cache.flush(to: store, table: "rows")
    }

    public func changedKeys(_ item: DecodedBatch.Item) -> [String] {
        guard let event = item.event, event.type.streamKind == .system, let system = event.system else { return [] }
        return [system]
    }

    public static func fold(_ event: DomainEvent, record: Record, into row: inout SystemRow) {
        switch event {
        case let .systemRegistered(registered):
            row.name = registered.name
            row.ownerTaxId = registered.ownerTaxId
            row.requiresReview = registered.requiresReview
            row.visibleStatuses = registered.visibleStatuses.map(\.rawValue)
            row.registeredAt = row.registeredAt ?? record.position
        case let .maintenanceStarted(started):
            if row.maintenance.count < SystemRow.maintenanceWindowsMax {
                row.maintenance.append(.init(start: record.occurredMicros, end: nil, reason: started.reason, positions: [record.position]))
            }
        case .maintenanceEnded:
            if let index = row.maintenance.lastIndex(where: { $0.end == nil }) {
                row.maintenance[index].end = record.occurredMicros
                row.maintenance[index].positions.append(record.position)
            }
        default:
            break
        }
    }

    public static func row(_ system: String, in snapshot: ProjectionSnapshot) throws -> SystemRow? {
        guard let (store, _) = try snapshot.store(name), let bytes = try store.get("rows", key: Array(system.utf8)) else { return nil }
        return try RowEncoding.decode(SystemRow.self, bytes)
    }
}

// MARK: - status_views

/// Per receiving system and status, the invoices in it, ordered by issue date (CST):
/// `views`: system ‖ 0 ‖ status ‖ 0 ‖ YYYY-MM-DD ‖ 0 ‖ key → the positions that put it there.
/// `current`: key ‖ 0 ‖ system → its `views` key, to move it when its status changes.
/// `state` and `systems` are this projection's own copies of what it folds from: of each
/// invoice's state only what places it in views and what a list shows (`keptForViews`).
public struct StatusViewsProjection: DerivableProjection {
    public static let name = "status_views"
    public var name: String { Self.name }
    /// 2: voided and red-lettered views cite the void or reversal; a registration re-places
    /// the system's invoices. 5: `state` keeps only what the views and lists need. 6: a
    /// registration re-places only the invoices `current` places in the system.
    public var version: Int { 6 }
    public var tables: [ProjectionTableSpec] {
        [ProjectionTableSpec("views"), ProjectionTableSpec("current"), ProjectionTableSpec("state"), ProjectionTableSpec("systems")]
    }

    public init() {}

    public func apply(_ batch: DecodedBatch, to store: ProjectionStore) throws {
        var states = RowCache<InvoiceState>()
        var systems = RowCache<SystemRow>()
        var touched: [String: [String]] = [:]
        var reconfigured: Set<String> = []
        for item in batch.items {
            guard let event = item.event else { continue }
            if event.type.streamKind == .system, let system = event.system {
                try systems.update(system, in: store, table: "systems", make: { SystemRow(system: system) }) { row in
                    let requiredReview = row.requiresReview
                    SystemsProjection.fold(event, record: item.record, into: &row)
                    if row.requiresReview != requiredReview { reconfigured.insert(system) }
                }
                continue
            }
            guard item.isInvoiceEvent else { continue }
            let key = item.record.stream
            var affected: [String] = []
            try states.update(key, in: store, table: "state", make: { InvoiceState(key: key) }) { state in
                InvoiceFold.apply(event, record: item.record, to: &state)
                // Voids and red letters move the invoice in every system; others in theirs.
                affected = event.system.map { [$0] } ?? Array(state.systems.keys)
            }
            for system in affected where !(touched[key]?.contains(system) ?? false) { touched[key, default: []].append(system) }
        }
        try systems.flush(to: store, table: "systems")
        // Where an accepted, unreviewed invoice belongs depends on the system's registration,
        // which may come after the invoice (its stream imported later): re-place what the
        // system holds, so the views do not depend on how the log was cut into batches.
        for system in reconfigured.sorted() {
            for key in try keysInViews(of: system, store: store) where !(touched[key]?.contains(system) ?? false) {
                touched[key, default: []].append(system)
            }
        }
        for key in touched.keys.sorted() {
            let state = try states.row(key, in: store, table: "state") { InvoiceState(key: key) }
            for system in touched[key]!.sorted() {
                let requiresReview = try systems.row(system, in: store, table: "systems") { SystemRow(system: system) }.requiresReview
                try place(state, in: system, requiresReview: requiresReview, store: store)
            }
        }
        states.updateAll { $0 = $0.keptForViews() }
        try states.flush(to: store, table: "state")
    }

    /// Every invoice's views are those its final state gives: an event changes what places the
    /// invoice in a system (issuer status and position, issue date, that system's receipt,
    /// review and positions) only when it is the system's own event or one of the issuer's,
    /// and either places it anew there; a registration that changes `requiresReview` re-places
    /// what the system holds, and what it does not hold has no accepted receipt, which no
    /// registration changes.
    public var derivedFrom: (projection: String, table: String) { (InvoiceStateProjection.name, "rows") }

    public var underivedEventTypes: Set<EventType>? { SystemRow.eventTypes }

    /// Only the systems' rows: views and states come from `invoice_state`'s rows.
    public func applyUnderived(_ batch: DecodedBatch, to store: ProjectionStore) throws {
        var systems = RowCache<SystemRow>()
        for item in batch.items {
            guard let event = item.event, event.type.streamKind == .system, let system = event.system else { continue }
            try systems.update(system, in: store, table: "systems", make: { SystemRow(system: system) }) { row in
                SystemsProjection.fold(event, record: item.record, into: &row)
            }
        }
        try systems.flush(to: store, table: "systems")
    }

    public func derive(fromRows rows: [SourceRow], to store: ProjectionStore) throws {
        var requiresReview: [String: Bool] = [:]
        for row in rows {
            let state = try (row.value as? InvoiceState) ?? InvoiceState.fromRow(row.bytes)
            let keyBytes = Array(state.key.utf8)
            try store.put("state", key: keyBytes, value: state.keptForViews().rowBytes())
            for system in state.systems.keys.sorted() {
                let review: Bool
                if let known = requiresReview[system] {
                    review = known
                } else {
                    review = try store.get("systems", key: Array(system.utf8)).map { try SystemRow.fromRow($0) }?.requiresReview ?? false
                    requiresReview[system] = review
                }
                guard let placed = Self.placement(state, in: system, requiresReview: review) else { continue }
                try store.put("views", key: placed.viewKey, value: placed.lineage)
                try store.put("current", key: Self.currentKey(key: keyBytes, system: system), value: placed.viewKey)
            }
        }
    }

    /// Where `state` belongs in `system`'s views, and the positions that put it there.
    private static func placement(_ state: InvoiceState, in system: String, requiresReview: Bool) -> (viewKey: [UInt8], lineage: [UInt8])? {
        guard let status = state.viewStatus(in: system, requiresReview: requiresReview) else { return nil }
        let viewKey = viewKey(system: system, status: status.rawValue, date: state.invoice?.issueDate ?? "0000-00-00", key: state.key)
        var lineage = state.systems[system]?.positions ?? []
        // Voided and red-lettered are the issuer's doing: cite that event too.
        if status == .voided || status == .redLettered, let position = state.issuer.position, !lineage.contains(position) {
            lineage.append(position)
            lineage.sort()
        }
        return (viewKey, PositionList.encode(lineage))
    }

    private static func currentKey(key: [UInt8], system: String) -> [UInt8] {
        var currentKey = [UInt8]()
        currentKey.reserveCapacity(key.count + system.utf8.count + 1)
        currentKey.append(contentsOf: key)
        currentKey.append(0)
        currentKey.append(contentsOf: system.utf8)
        return currentKey
    }

    private func place(_ state: InvoiceState, in system: String, requiresReview: Bool, store: ProjectionStore) throws {
        let currentKey = Self.currentKey(key: Array(state.key.utf8), system: system)
        let old = try store.get("current", key: currentKey)
        guard let placed = Self.placement(state, in: system, requiresReview: requiresReview) else {
            if let old {
                try store.delete("views", key: old)
                try store.delete("current", key: currentKey)
            }
            return
        }
        if let old, old != placed.viewKey { try store.delete("views", key: old) }
        try store.put("views", key: placed.viewKey, value: placed.lineage)
        if old != placed.viewKey { try store.put("current", key: currentKey, value: placed.viewKey) }
    }

    /// The invoice keys in `system`'s views, any status.
    private func keysInViews(of system: String, store: ProjectionStore) throws -> [String] {
        let prefix = Array(system.utf8) + [0]
        var keys: [String] = []
        for viewKey in try store.keys("views", withPrefix: prefix) {
            // system ‖ 0 ‖ status ‖ 0 ‖ date ‖ 0 ‖ key. Kept only when `current` says this is the
            // invoice's place in `system`: ids hold no NUL (the contract refuses control
            // characters), but a ledger may hold events from before that rule.
            let rest = viewKey[prefix.count...].split(separator: 0, maxSplits: 2, omittingEmptySubsequences: false)
            guard rest.count == 3 else { continue }
            let key = Array(rest[2])
            if try store.get("current", key: Self.currentKey(key: key, system: system)) == viewKey {
                keys.append(String(decoding: key, as: UTF8.self))
            }
        }
        return keys
    }

    static func viewKey(system: String, status: String, date: String, key: String) -> [UInt8] {
        SearchProjection.entry(field: system, value: status, date: date, key: key)
    }

    static func prefix(system: String, status: String) -> [UInt8] {
        Array(system.utf8) + [0] + Array(status.utf8) + [0]
    }
}

// MARK: - search

/// Lookups by what people type: `index` keys are field ‖ 0 ‖ value ‖ 0 ‖ YYYY-MM-DD ‖ 0 ‖ key.
/// Fields: `number`, `code`, `seller_tax_id`, `buyer_tax_id`, `seller_name`, `buyer_name`
/// (names normalised: full-width to half-width, brackets, spaces, case), `issue_date`, and
/// `alias` (the legacy code and number printed on a digital paper invoice, undated).
/// `entries`: key → the position (8 bytes) of the event that issued it: if it is issued again,
/// that event gives the index keys to take out. "Did you mean" looks candidate keys up here (see
/// `NearMiss`).
public struct SearchProjection: StreamPartitionedProjection {
    public static let name = "search"
    public var name: String { Self.name }
    /// 4: no near-miss signatures (did-you-mean looks candidates up in `entries`). 5: `entries`
    /// holds the issuing event's position, not its index keys.
    public var version: Int { 5 }
    public var tables: [ProjectionTableSpec] { [ProjectionTableSpec("index"), ProjectionTableSpec("entries")] }

    public init() {}

    public var eventTypes: Set<EventType>? { [.invoiceIssued] }

    public func apply(_ batch: DecodedBatch, to store: ProjectionStore) throws {
        for item in batch.items {
            guard case let .invoiceIssued(issued)? = item.event else { continue }
            let key = item.record.stream
            let keyBytes = Array(key.utf8)
            if let old = try store.get("entries", key: keyBytes) {
                // Issued again: take out what the last issue indexed.
                for entry in try Self.indexKeys(ofIssueAt: old, key: key, store: store) { try store.delete("index", key: entry) }
            }
            for entry in Self.indexKeys(issued, key: key) { try store.put("index", key: entry, value: []) }
            try store.put("entries", key: keyBytes, value: PositionList.encode([item.record.position]))
        }
    }

    /// The index keys the issue recorded at `entry` (an `entries` value) wrote for `key`.
    static func indexKeys(ofIssueAt entry: [UInt8], key: String, store: ProjectionStore) throws -> [[UInt8]] {
        guard entry.count == 8, let position = PositionList.decode(entry).first else {
            throw RowDecodingError(description: "search entry of \(key) is \(entry.count) bytes, not a position")
        }
        guard let record = try store.record(at: position), record.stream == key,
              case let .success(.invoiceIssued(issued)) = DomainEvent.decode(type: .invoiceIssued, dataBytes: record.data)
        else {
            throw RowDecodingError(description: "search entry of \(key) names position \(position), which is not its issue")
        }
        return indexKeys(issued, key: key)
    }

    public func changedKeys(_ item: DecodedBatch.Item) -> [String] {
        if case .invoiceIssued? = item.event { return [item.record.stream] }
        return []
    }

    static func indexKeys(_ issued: InvoiceIssued, key: String) -> [[UInt8]] {
        let date = issued.issuedAt.dateCST.description
        var pairs: [(String, String)] = [("number", issued.number), ("issue_date", "")]
        if let code = issued.code { pairs.append(("code", code)) }
        if let id = issued.seller.taxId { pairs.append(("seller_tax_id", id)) }
        if let id = issued.buyer.taxId { pairs.append(("buyer_tax_id", id)) }
        pairs.append(("seller_name", NameNormalization.normalize(issued.seller.name)))
        pairs.append(("buyer_name", NameNormalization.normalize(issued.buyer.name)))
        if let alias = issued.aliasKey { pairs.append(("alias", alias.description)) }
        return pairs.map { entry(field: $0.0, value: $0.1, date: $0.0 == "alias" ? "" : date, key: key) }
    }

    static func entry(field: String, value: String, date: String, key: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(field.utf8.count + value.utf8.count + date.utf8.count + key.utf8.count + 3)
        out.append(contentsOf: field.utf8)
        out.append(0)
        out.append(contentsOf: value.utf8)
        out.append(0)
        out.append(contentsOf: date.utf8)
        out.append(0)
        out.append(contentsOf: key.utf8)
        return out
    }

    static func prefix(field: String, value: String) -> [UInt8] {
        Array(field.utf8) + [0] + Array(value.utf8) + [0]
    }
}

/// How names are compared when searching: the same company typed with full-width or half-width
/// brackets, spaces, or another case is the same search.
public enum NameNormalization {
    public static func normalize(_ name: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(name.utf8.count)
        for scalar in name.unicodeScalars {
            var value = scalar.value
            if value == 0x3000 { continue }                       // ideographic space
            if (0xFF01...0xFF5E).contains(value) { value -= 0xFEE0 } // full-width ASCII
            if value < 0x80 {
                switch value {
                case 0x09...0x0D, 0x20: continue                   // ASCII white space
                case 0x41...0x5A: out.append(UInt8(value + 0x20))   // A-Z
                default: out.append(UInt8(value))
                }
            } else if (0x3001...0x9FFF).contains(value) || (0xAC00...0xD7A3).contains(value) {
                // CJK punctuation, kana, ideographs, Hangul: no case, no white space.
                out.append(UInt8(0xE0 | (value >> 12)))
                out.append(UInt8(0x80 | ((value >> 6) & 0x3F)))
                out.append(UInt8(0x80 | (value & 0x3F)))
            } else {
                guard let mapped = Unicode.Scalar(value), !mapped.properties.isWhitespace else { continue }
                out.append(contentsOf: String(mapped).lowercased().utf8)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

// MARK: - access

/// Per system and user: every grant and revocation with its position, so access can be
/// evaluated as of any position.
public struct AccessRow: Codable, Sendable, Equatable {
    public struct Change: Codable, Sendable, Equatable {
        public var position: UInt64
        public var at: Int64
        public var granted: Bool
        /// nil: all sellers; else these seller tax IDs.
        public var sellerTaxIds: [String]?
    }

    public var system: String
    public var user: String
    public var changes: [Change] = []

    public static let changesMax = 10_000

    /// The scopes in force after `position`: all, or the union of seller tax IDs.
    public func scope(asOf position: UInt64 = .max) -> (all: Bool, sellerTaxIds: Set<String>, evidence: [UInt64]) {
        var all = false
        var sellers = Set<String>()
        var evidence: [UInt64] = []
        for change in changes where change.position <= position {
            evidence.append(change.position)
            switch (change.granted, change.sellerTaxIds) {
            case (true, nil): all = true
            case (false, nil): all = false; sellers.removeAll()
            case let (true, ids?): sellers.formUnion(ids)
            case let (false, ids?): sellers.subtract(ids)
            }
        }
        return (all, sellers, evidence)
    }
}

public struct AccessProjection: Projection {
    public static let name = "access"
    public var name: String { Self.name }
    /// 2: binary rows.
    public var version: Int { 2 }
    public var tables: [ProjectionTableSpec] { [ProjectionTableSpec("rows")] }

    public init() {}

    public var eventTypes: Set<EventType>? { [.accessGranted, .accessRevoked] }

    public func apply(_ batch: DecodedBatch, to store: ProjectionStore) throws {
        var cache = RowCache<AccessRow>()
        for item in batch.items {
            let change: (AccessChange, Bool)
            switch item.event {
            case let .accessGranted(granted)?: change = (granted, true)
            case let .accessRevoked(revoked)?: change = (revoked, false)
            default: continue
            }
            let key = Self.key(system: change.0.system, user: change.0.user)
            try cache.update(key, in: store, table: "rows", make: { AccessRow(system: change.0.system, user: change.0.user) }) { row in
                guard row.changes.count < AccessRow.changesMax else { return }
                let ids: [String]?
                switch change.0.scope {
                case .all: ids = nil
                case let .sellerTaxIds(list): ids = list
                }
                row.changes.append(.init(position: item.record.position, at: item.record.occurredMicros, granted: change.1, sellerTaxIds: ids))
            }
        }
        try cache.flush(to: store, table: "rows")
    }

    static func key(system: String, user: String) -> String { system + "\u{0}" + user }

    public func changedKeys(_ item: DecodedBatch.Item) -> [String] {
        switch item.event {
        case let .accessGranted(change)?, let .accessRevoked(change)?: [change.system + "/" + change.user]
        default: []
        }
    }

    public static func row(system: String, user: String, in snapshot: ProjectionSnapshot) throws -> AccessRow? {
        guard let (store, _) = try snapshot.store(name), let bytes = try store.get("rows", key: Array(key(system: system, user: user).utf8)) else { return nil }
        return try AccessRow.fromRow(bytes)
    }
}

extension SystemRow {
    public init(system: String) { self.system = system }
}

extension AccessRow {
    public init(system: String, user: String) {
        self.system = system
        self.user = user
    }

    /// Folds an access event (for replays outside the projection).
    public mutating func apply(_ event: DomainEvent, record: Record) {
        switch event {
        case let .accessGranted(change): append(change, granted: true, record: record)
        case let .accessRevoked(change): append(change, granted: false, record: record)
        default: break
        }
    }

    private mutating func append(_ change: AccessChange, granted: Bool, record: Record) {
        guard changes.count < AccessRow.changesMax else { return }
        let ids: [String]?
        switch change.scope {
        case .all: ids = nil
        case let .sellerTaxIds(list): ids = list
        }
        changes.append(.init(position: record.position, at: record.occurredMicros, granted: granted, sellerTaxIds: ids))
    }
}
