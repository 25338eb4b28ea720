import FapiaoDomain
import Foundation
import Ledger
import Projections

/// The cause codes of docs/events.md, in pipeline order: the first that holds is decisive.
public enum CauseCode: String, Codable, Sendable, CaseIterable, Comparable {
    case notInLedger = "not_in_ledger"
    case issueFailed = "issue_failed"
    case voided
    case redLetterReversed = "red_letter_reversed"
    case verificationFailed = "verification_failed"
    case wrongRecipient = "wrong_recipient"
    case notDelivered = "not_delivered"
    case deliveryPending = "delivery_pending"
    case deliveryFailed = "delivery_failed"
    case receiptRejected = "receipt_rejected"
    case pendingReview = "pending_review"
    case reviewRejected = "review_rejected"
    case projectionLag = "projection_lag"
    case accessDenied = "access_denied"
    case systemMaintenance = "system_maintenance"
    case queryNumberMismatch = "query_number_mismatch"
    case queryDateOutOfRange = "query_date_out_of_range"
    case queryBuyerNameMismatch = "query_buyer_name_mismatch"
    case querySellerNameMismatch = "query_seller_name_mismatch"
    case queryStatusFiltered = "query_status_filtered"

    var order: Int { Self.allCases.firstIndex(of: self)! }
    public static func < (a: CauseCode, b: CauseCode) -> Bool { a.order < b.order }
}

public struct Cause: Codable, Sendable, Equatable {
    public var code: CauseCode
    public var summary: String
    /// When it started (RFC 3339, CST), when known.
    public var since: String?
    /// The ledger positions that prove it.
    public var evidence: [UInt64]
    /// For `not_in_ledger`: keys one typo away that exist.
    public var didYouMean: [String]?

    enum CodingKeys: String, CodingKey { case code, summary, since, evidence, didYouMean }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(code, forKey: .code)
        try container.encode(summary, forKey: .summary)
        try container.encode(since, forKey: .since)
        try container.encode(evidence, forKey: .evidence)
        try container.encodeIfPresent(didYouMean, forKey: .didYouMean)
    }
}

public struct TimelineEntry: Codable, Sendable, Equatable {
    public var position: UInt64
    /// The receiving system the event concerns, if any (lets a scoped reader see only its own).
    public var system: String?
    /// When it happened at the source (RFC 3339, CST).
    public var time: String
    /// When the ledger recorded it (RFC 3339, CST).
    public var recorded: String
    public var type: String
    public var source: String
    public var summary: String
}

/// The answer of `fapiao why`, in the JSON shape of docs/events.md.
public struct WhyAnswer: Codable, Sendable, Equatable {
    public var key: String
    public var system: String
    public var user: String?
    public var asOf: String?
    public var visible: Bool
    public var causes: [Cause]
    public var timeline: [TimelineEntry]
    public var suggestions: [String]
    /// Near-miss keys when the key is not in the ledger (also inside the cause).
    public var didYouMean: [String]?
    /// The query evaluated: the user's recorded one (with its position) or the flags' criteria.
    public var query: QueryUsed?
    /// The limits the question set (any of them absent: not limited by it).
    public var cutoff: CutoffUsed

    public struct QueryUsed: Codable, Sendable, Equatable {
        public var position: UInt64?
        public var time: String?
        public var criteria: String
    }

    public struct CutoffUsed: Codable, Sendable, Equatable {
        public var at: String?
        public var knownAt: String?
        public var position: UInt64?
    }

    enum CodingKeys: String, CodingKey { case key, system, user, asOf, visible, causes, timeline, suggestions, didYouMean, query, cutoff }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(key, forKey: .key)
        try container.encode(system, forKey: .system)
        try container.encode(user, forKey: .user)
        try container.encode(asOf, forKey: .asOf)
        try container.encode(visible, forKey: .visible)
        try container.encode(causes, forKey: .causes)
        try container.encode(timeline, forKey: .timeline)
        try container.encode(suggestions, forKey: .suggestions)
        try container.encodeIfPresent(didYouMean, forKey: .didYouMean)
        try container.encodeIfPresent(query, forKey: .query)
        try container.encode(cutoff, forKey: .cutoff)
    }

    public var decisive: Cause? { causes.first }
}

/// What `why` is asked.
public struct WhyQuestion: Sendable {
    /// The key as typed.
    public var typedKey: String
    public var system: String
    public var user: String?
    public var cutoff: Cutoff
    /// Criteria given as flags: evaluated instead of the user's recorded query.
    public var criteria: QueryCriteria?

    public init(typedKey: String, system: String, user: String? = nil, cutoff: Cutoff = Cutoff(), criteria: QueryCriteria? = nil) {
        self.typedKey = typedKey
        self.system = system
        self.user = user
        self.cutoff = cutoff
        self.criteria = criteria
    }
}

/// Answers `why`: a pure function of the log up to the time asked (plus, for a question about
/// now, how far the status views have caught up).
public struct Forensics: Sendable {
    public let ledger: Ledger
    public let projections: ProjectionEngine?
    public let rules: RuleBook

    public init(ledger: Ledger, projections: ProjectionEngine?, rules: RuleBook = .standard) {
        self.ledger = ledger
        self.projections = projections
        self.rules = rules
    }

    public func why(_ question: WhyQuestion) throws -> WhyAnswer {
        let key = (try? InvoiceKey.parse(question.typedKey).get())?.description ?? question.typedKey
        var history = try History.load(key: key, system: question.system, user: question.user, cutoff: question.cutoff, from: ledger)
        // A user's recorded query is judged against the invoice as it stood when the query ran:
        // approved an hour later does not explain a search that came up empty before.
        if question.criteria == nil, question.user != nil, let asOf = history.asOf(cutoff: question.cutoff),
           let query = history.lastQuery(atOrBefore: asOf)?.record,
           history.invoice.contains(where: { $0.record.occurredMicros > query.occurredMicros }) {
            var atQuery = question.cutoff
            atQuery.at = min(question.cutoff.at ?? .max, query.occurredMicros)
            history = try History.load(key: key, system: question.system, user: question.user, cutoff: atQuery, from: ledger)
            var asked = question
            asked.cutoff = atQuery
            var answer = try diagnose(history, question: asked)
            answer.cutoff = WhyAnswer.CutoffUsed(
                at: question.cutoff.at.map(CST.format), knownAt: question.cutoff.knownAt.map(CST.format), position: question.cutoff.position)
            return answer
        }
        return try diagnose(history, question: question)
    }

    func diagnose(_ history: History, question: WhyQuestion) throws -> WhyAnswer {
        var diagnosis = Diagnosis(history: history, question: question, rules: rules)
        if history.invoice.isEmpty {
            diagnosis.notInLedger(didYouMean: try nearMisses(question.typedKey, asked: history.key, cutoff: question.cutoff))
        } else {
            diagnosis.evaluatePipeline()
            if question.cutoff.isNow, let lag = try statusViewLag(after: history) {
                diagnosis.add(lag, suggestion: "ask again once the status views have caught up with the log (`fapiao projections status` shows the lag)")
            }
            diagnosis.evaluateUser()
        }
        return diagnosis.answer()
    }

    /// Keys one typo away that exist at the time asked. The search index is the log's now, so
    /// for a question about an earlier time only keys with an event inside the cutoff count (the
    /// answer stays a function of the log up to then), and never the key asked itself (it has
    /// no event then, or it would not be missing).
    private func nearMisses(_ typed: String, asked key: String, cutoff: Cutoff) throws -> [(key: String, difference: KeyDifference)] {
        guard let projections else { return [] }
        let found = try projections.read { snapshot in try InvoiceQueries.nearMisses(of: typed, in: snapshot) }
        return try found.filter { miss in
            guard miss.key != key else { return false }
            return try cutoff.isNow || !History.read(miss.key, cutoff: cutoff, from: ledger).isEmpty
        }
    }

    /// `projection_lag`: the invoice has events the status views have not applied yet.
    private func statusViewLag(after history: History) throws -> Cause? {
        guard let projections, let last = history.invoice.last?.record else { return nil }
        let checkpoint = try projections.checkpoint(of: StatusViewsProjection.name)
        guard checkpoint < last.position else { return nil }
        let pending = history.invoice.map(\.record).filter { $0.position > checkpoint }
        return Cause(
            code: .projectionLag,
            summary: "the status views have applied the log up to position \(checkpoint); \(pending.count) event\(pending.count == 1 ? "" : "s") of this invoice after it are not in the views yet",
            since: pending.first.map { CST.format($0.recordedMicros) }, evidence: pending.map(\.position))
    }
}
