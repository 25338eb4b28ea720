import FapiaoDomain

// One invoice's story: the events of its stream (and of the user who looks for it), written
// so that the intended cause is the decisive one in domain.md's pipeline order: every
// earlier stage is clean, and later stages are whatever real life would leave behind.

/// One event to write.
struct Emitted: Sendable {
    var subject: String
    var source: String
    var id: String
    var micros: Int64
    var event: DomainEvent
}

/// One line of the manifest: what `why` should answer for this invoice.
public struct ManifestEntry: Sendable, Hashable {
    public var key: String
    public var system: String
    public var user: String?
    public var intended: Intended
    /// How the cause came about (`auth_expired`, `half_width_brackets`, `utc_day_shift`, ...).
    public var variant: String
}

/// The finished story of one invoice, its events already encoded (on the worker's thread).
struct Story: Sendable {
    /// JSON Lines, newline-terminated.
    var lines: [UInt8]
    var eventCount: Int
    var latestMicros: Int64
    var manifest: ManifestEntry
    /// The manifest entry as a JSON line, newline-terminated.
    var manifestLine: [UInt8]
    var issueMicros: Int64

    init(events: [Emitted], manifest: ManifestEntry, issueMicros: Int64) {
        var lines: [UInt8] = []
        lines.reserveCapacity(events.count * 640)
        for emitted in events { emitted.encode(into: &lines) }
        self.lines = lines
        eventCount = events.count
        latestMicros = events.map(\.micros).max() ?? issueMicros
        self.manifest = manifest
        manifestLine = manifest.jsonLine
        self.issueMicros = issueMicros
    }
}

extension ManifestEntry {
    /// `{"key":…,"system":…,"user":…,"intended":…,"variant":…}` and a newline; no `user` when nil.
    public var jsonLine: [UInt8] {
        JSONWriter.encode(.makeObject([
            ("key", .string(key)), ("system", .string(system)), ("user", user.map(JSONValue.string)),
            ("intended", .string(intended.rawValue)), ("variant", .string(variant)),
        ])) + [0x0A]
    }
}

extension Emitted {
    /// What `CloudEventEnvelope.encodedLine()` writes, built without the JSON value tree
    /// for the envelope's attributes (the hot path of generation; a test holds the two equal).
    func encode(into bytes: inout [UInt8]) {
        bytes += Self.specVersionPrefix
        Self.appendString(id, to: &bytes)
        bytes += Self.sourcePrefix
        Self.appendString(source, to: &bytes)
        bytes += Self.typePrefix
        Self.appendString(event.type.rawValue, to: &bytes)
        bytes += Self.subjectPrefix
        Self.appendString(subject, to: &bytes)
        bytes += Self.timePrefix
        Self.appendTime(micros, to: &bytes)
        bytes += Self.dataPrefix
        bytes += event.encodedData
        bytes.append(UInt8(ascii: "}"))
        bytes.append(0x0A)
    }

    /// The envelope through the domain's own encoder: the reference for `encode(into:)`.
    var referenceLine: [UInt8] {
        CloudEventEnvelope(id: id, source: source, subject: subject, time: Timestamp(micros: micros), event: event).encodedLine() + [0x0A]
    }

    static let specVersionPrefix = Array(#"{"specversion":"1.0","id":"#.utf8)
    static let sourcePrefix = Array(#","source":"#.utf8)
    static let typePrefix = Array(#","type":"#.utf8)
    static let subjectPrefix = Array(#","subject":"#.utf8)
    static let timePrefix = Array(#","time":"#.utf8)
    static let dataPrefix = Array(#","datacontenttype":"application/json","data":"#.utf8)

    /// `"2024-12-31T17:20:02+08:00"`, as `RFC3339.formatCST` writes whole seconds.
    static func appendTime(_ micros: Int64, to bytes: inout [UInt8]) {
        guard micros % Clock.second == 0 else {
            appendString(RFC3339.formatCST(micros: micros), to: &bytes)
            return
        }
        let local = micros / Clock.second + Clock.cstOffset / Clock.second
        let days = Clock.floorDivide(local, 86_400)
        let seconds = Int(local - days * 86_400)
        let date = CalendarDate.cst(micros: Clock.start(ofDay: days))
        bytes.append(UInt8(ascii: "\""))
        appendDigits(date.year, 4, then: UInt8(ascii: "-"), to: &bytes)
        appendDigits(date.month, 2, then: UInt8(ascii: "-"), to: &bytes)
        appendDigits(date.day, 2, then: UInt8(ascii: "T"), to: &bytes)
        appendDigits(seconds / 3600, 2, then: UInt8(ascii: ":"), to: &bytes)
        appendDigits(seconds / 60 % 60, 2, then: UInt8(ascii: ":"), to: &bytes)
        appendDigits(seconds % 60, 2, then: nil, to: &bytes)
        bytes += Self.cstSuffix
    }

    static let cstSuffix = Array(#"+08:00""#.utf8)

    /// `value` in `width` zero-padded digits, then the separator.
    static func appendDigits(_ value: Int, _ width: Int, then separator: UInt8?, to bytes: inout [UInt8]) {
        var divisor = 1
        for _ in 1..<width { divisor *= 10 }
        while divisor > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
            divisor /= 10
        }
        if let separator { bytes.append(separator) }
    }

    /// A JSON string, escaped as `JSONWriter` escapes (quote, backslash, control characters).
    static func appendString(_ text: String, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        let utf8 = text.utf8
        if utf8.allSatisfy({ $0 >= 0x20 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
            bytes += utf8
        } else {
            var writer = JSONWriter()
            writer.writeString(text)
            bytes += writer.bytes.dropFirst().dropLast()
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

struct StoryWriter {
    let world: World
    let index: Int
    var random: SplitMix
    var events: [Emitted] = []
    var systemIndex = 0
    /// For `totals_inconsistent`: the line (1-based) whose tax drifted, its tax, and half-up's.
    var lineDrift: (line: Int, tax: Money, halfUp: Money)?
    var key = ""
    var system: ReceivingSystem
    var intended: Intended
    var variant = "plain"
    var user: String?

    init(world: World, index: Int) {
        self.world = world
        self.index = index
        random = SplitMix(seed: world.options.seed, stream: 2, index: UInt64(index))
        intended = Intended.of(index: index, seed: world.options.seed)
        system = world.systems[0]
    }

    // MARK: The plot

    mutating func write() -> Story {
        let plot = plot()
        return Story(events: plot.events, manifest: plot.manifest, issueMicros: plot.issueMicros)
    }

    /// The events (in stream order), the manifest entry and the issue time.
    mutating func plot() -> (events: [Emitted], manifest: ManifestEntry, issueMicros: Int64) {
        chooseSystem()
        let seller = chooseSeller()
        let issued = makeInvoice(seller: seller)
        key = issued.key!.description
        let t0 = issued.issuedAt.micros
        switch intended {
        case .visible: visible(issued)
        case .notInLedger: variant = "never_sent_to_the_ledger"
        case .issueFailed: issueFailed(at: t0)
        case .voided: voided(issued)
        case .redLetterReversed: redLettered(issued)
        case .verificationFailed: verificationFailed(issued)
        case .wrongRecipient: wrongRecipient(issued)
        case .notDelivered: notDelivered(issued)
        case .deliveryPending: deliveryPending(issued)
        case .deliveryFailed: deliveryFailed(issued)
        case .receiptRejected: receiptRejected(issued)
        case .pendingReview: pendingReview(issued)
        case .reviewRejected: reviewRejected(issued)
        case .accessDenied: accessDenied(issued)
        case .systemMaintenance: maintenance(issued)
        case .queryNumberMismatch, .queryDateOutOfRange, .queryBuyerNameMismatch, .querySellerNameMismatch, .queryStatusFiltered:
            queried(issued)
        }
        if !intended.needsUser && user == nil && intended != .notInLedger && random.chance(20) {
            // Someone who sees everything asks: the pipeline cause must still be decisive.
            user = random.pick(world.usersWithAllAccess(system: systemIndex)).id
        }
        return (StoryWriter.finish(events), ManifestEntry(key: key, system: system.id, user: user, intended: intended, variant: variant), t0)
    }

    mutating func chooseSystem() {
        if intended.needsUser || intended == .pendingReview { return }
        if intended == .reviewRejected {
            systemIndex = random.chance(85) ? 0 : 1
        } else {
            systemIndex = random.weighted(world.systems.indices.map { ($0, world.systems[$0].sharePercent) })
        }
        system = world.systems[systemIndex]
    }

    /// The seller, constrained by the scenario: a bracketed or renamed name to mistype, or a
    /// seller the user's grant does not cover.
    mutating func chooseSeller() -> Int {
        let count = world.sellers.count
        switch intended {
        case .querySellerNameMismatch:
            variant = random.weighted([("half_width_brackets", 40), ("old_name", 25), ("trailing_space", 15), ("short_name", 20)])
            if variant == "half_width_brackets", !world.bracketedSellers.isEmpty { return random.pick(world.bracketedSellers) }
            if variant == "old_name", !world.renamedSellers.isEmpty { return random.pick(world.renamedSellers) }
            if variant == "half_width_brackets" || variant == "old_name" { variant = "trailing_space" }
            return random.below(count)
        case .accessDenied:
            let denied = random.pick(world.usersWithoutAccess)
            user = denied.id
            switch denied.kind {
            case .revoked:
                variant = "access_revoked"
                return random.below(count)
            case .partlyRevoked where random.chance(60):
                variant = "seller_revoked"
                return denied.revokedSeller!
            default:
                variant = "seller_not_granted"
                let covered = denied.coveredSellers ?? []
                var seller = random.below(count)
                while covered.contains(seller) || seller == denied.revokedSeller { seller = (seller + 1) % count }
                return seller
            }
        default:
            return random.below(count)
        }
    }

    mutating func makeInvoice(seller sellerIndex: Int) -> InvoiceIssued {
        let seller = world.sellers[sellerIndex]
        var t0 = world.schedule.issueMicros(index: index, jitter: random.next())
        if intended == .queryDateOutOfRange {
            variant = random.weighted([("utc_day_shift", 45), ("previous_month", 20), ("later_range", 20), ("year_typo", 15)])
            if variant == "utc_day_shift" && Clock.timeOfDay(t0) >= 8 * Clock.hour {
                // Issued in the night (an online shop, a hotel): 00:00-07:59 CST, which is the
                // previous day in UTC.
                t0 = Clock.start(ofDay: Clock.cstDay(t0)) + Int64(random.int(5 * 60...(8 * 3600 - 60))) * Clock.second
            }
        }
        let issuedAt = Timestamp(micros: t0)
        let date = issuedAt.dateCST
        let yy = date.year % 100
        let kind = chooseKind()
        let number: String
        let code: String?
        if kind.isDigital {
            number = InvoiceNumbers.digital(yy: yy, index: index, seed: world.options.seed, random: &random)
            code = nil
        } else {
            number = InvoiceNumbers.legacyNumber(index: index, seed: world.options.seed)
            code = InvoiceNumbers.legacyCode(kind: kind, yy: yy, batch: sellerIndex * 37 + 101)
        }
        let buyer = chooseBuyer()
        var lines = InvoiceLines.make(for: seller, random: &random)
        if intended == .receiptRejected {
            variant = random.weighted([("buyer_tax_id_mismatch", 30), ("duplicate", 35), ("totals_inconsistent", 35)])
            if variant == "totals_inconsistent" {
                if let drifted = driftOneFen(&lines) { lineDrift = drifted } else { variant = "duplicate" }
            }
        }
        let totals = InvoiceLines.totals(lines)
        return InvoiceIssued(number: number, code: code, kind: kind, issuedAt: issuedAt, seller: Party(name: seller.name, taxId: seller.taxId),
                             buyer: buyer, lines: lines, totalAmount: totals.amount, totalTax: totals.tax, totalWithTax: totals.withTax,
                             remarks: InvoiceLines.remark(index: index, random: &random))
    }

    /// One line's tax rounded on the tax-inclusive price: one fen off half-up, inside the
    /// vendor tolerance (the ledger does not flag it), outside a strict receiving system's rule.
    mutating func driftOneFen(_ lines: inout [InvoiceLine]) -> (line: Int, tax: Money, halfUp: Money)? {
        guard let at = lines.firstIndex(where: { $0.taxRate.treatment == .taxable && $0.tax.fen > 0 }) else { return nil }
        let halfUp = lines[at].tax
        lines[at].tax = Money(fen: halfUp.fen + (random.chance(50) ? 1 : -1))
        return (at + 1, lines[at].tax, halfUp)
    }

    mutating func chooseKind() -> InvoiceKind {
        switch intended {
        case .voided: return random.chance(55) ? .vatSpecial : .vatOrdinary
        case .redLetterReversed: return random.chance(55) ? .digitalSpecial : .digitalOrdinary
        default:
            return random.weighted([(.digitalSpecial, 38), (.digitalOrdinary, 34), (.vatSpecial, 8), (.vatOrdinary, 6),
                                    (.vatElectronicOrdinary, 10), (.vatElectronicSpecial, 4)])
        }
    }

    /// The system's owner, except for misdirected invoices.
    mutating func chooseBuyer() -> Party {
        let owner = system.owner
        guard intended == .wrongRecipient else { return Party(name: owner.name, taxId: owner.taxId) }
        let relative = owner.taxId == world.group.taxId ? world.sister : world.group
        switch random.weighted([(0, 40), (1, 30), (2, 30)]) {
        case 0:
            variant = "related_company"
            return Party(name: relative.name, taxId: relative.taxId)
        case 1:
            // The seller's customer record has the right name and a relative's tax ID.
            variant = "right_name_wrong_tax_id"
            return Party(name: owner.name, taxId: relative.taxId)
        default:
            variant = "another_customer"
            let other = random.pick(world.otherBuyers)
            return Party(name: other.name, taxId: other.taxId)
        }
    }

    // MARK: Scenarios

    mutating func visible(_ issued: InvoiceIssued) {
        variant = random.weighted([("plain", 66), ("delivery_retried", 14), ("verification_lag", 5), ("red_letter_form_lapsed", 3),
                                   ("found_by_query", 7), ("user_sees_all", 5)])
        let t0 = issue(issued)
        let ready: Int64
        switch variant {
        case "delivery_retried":
            let failures = random.pick([[.networkTimeout], [.authExpired], [.networkTimeout, .networkTimeout], [.connectionRefused],
                                        [.httpError], [.networkTimeout, .authExpired]] as [[DeliveryFailureReason]])
            ready = acceptAndReview(after: deliver(after: t0, failures: failures, ending: .succeeded)!)
        default:
            ready = acceptAndReview(after: deliver(after: t0, failures: [], ending: .succeeded)!)
        }
        switch variant {
        case "verification_lag":
            // The platform has not ingested it yet; a day later it has.
            let early = verify(at: t0 + Int64(random.int(40...600)) * Clock.minute, .notFound, detail: "no such invoice (yet)")
            _ = verify(at: max(early, t0 + 25 * Clock.hour) + Int64(random.int(1...2_000)) * Clock.minute, .authentic)
        case "red_letter_form_lapsed":
            if issued.kind.isDigital {
                // The seller asked for a red-letter form; the buyer never confirmed; it lapsed after 72 h.
                let at = Clock.officeHours(atOrAfter: ready + Int64(random.int(60...3_000)) * Clock.minute) + Int64(random.int(0...400)) * Clock.minute
                add(invoice: World.issuerSource, id: "red-\(key)-req", at: at, .redLetterRequested(RedLetterRequested(
                    confirmationId: InvoiceNumbers.confirmationId(date: Timestamp(micros: at).dateCST, index: index), requestedBy: .seller,
                    reason: "开票有误 (wrong unit price); buyer did not confirm")))
            } else {
                variant = "plain"
            }
        case "found_by_query":
            let criteria = random.weighted([
                (QueryCriteria(number: issued.number), 40),
                (QueryCriteria(issuedFrom: shifted(issued.issuedAt.dateCST, days: -random.int(0...6)), issuedTo: shifted(issued.issuedAt.dateCST, days: random.int(0...6)), sellerName: issued.seller.name), 30),
                (QueryCriteria(buyerName: issued.buyer.name, sellerName: issued.seller.name, statuses: [.approved]), 30),
            ])
            query(after: ready, criteria: criteria, results: 1 + random.below(3))
        case "user_sees_all":
            user = random.pick(world.usersWithAllAccess(system: systemIndex)).id
        default:
            break
        }
        maybeVerifyAuthentic(after: ready)
    }

    mutating func issueFailed(at t0: Int64) {
        let reasons = [
            ("quota_exhausted", "issuing quota (授信额度) for the month is exhausted"),
            ("platform_timeout", "tax platform did not answer within 60 s; the invoice was not issued"),
            ("buyer_check_failed", "the platform refused the buyer's tax ID"),
        ]
        let (name, reason) = random.pick(reasons)
        variant = name
        add(invoice: World.issuerSource, id: "iss-\(key)-failed", at: t0, .invoiceIssueFailed(InvoiceIssueFailed(reason: reason)))
    }

    /// Paper invoices only, in the month of issue; what happened before the void stays.
    mutating func voided(_ issued: InvoiceIssued) {
        let t0 = issued.issuedAt.micros
        let date = issued.issuedAt.dateCST
        let monthEnd = Clock.start(ofDay: Clock.cstDay(t0) + Int64(daysLeftInMonth(date))) - Clock.minute
        let wanted = Clock.officeHours(atOrAfter: t0 + Int64(random.int(10...2_880)) * Clock.minute) + Int64(random.int(0...240)) * Clock.minute
        let voidAt = min(wanted, monthEnd)
        guard voidAt > t0 + Clock.minute else {
            intended = .visible
            return visible(issued)
        }
        variant = random.pick(["wrong_buyer_details", "amount_typed_wrong", "order_cancelled"])
        issue(issued)
        _ = acceptAndReview(after: deliver(after: t0, failures: [], ending: .succeeded)!)
        // What had not happened by the void never happens.
        events.removeAll { $0.micros >= voidAt }
        let reasons = ["wrong_buyer_details": "buyer's bank account printed wrong; reissued", "amount_typed_wrong": "unit price typed wrong; reissued",
                       "order_cancelled": "the buyer cancelled the order"]
        add(invoice: World.issuerSource, id: "void-\(key)", at: voidAt, .invoiceVoided(InvoiceVoided(reason: reasons[variant]!, by: "seller")))
        if random.chance(30) { _ = verify(at: voidAt + Int64(random.int(60...5_000)) * Clock.minute, .voided) }
    }

    /// Digital invoices: a confirmation form, confirmed by the other side within 72 h, then the
    /// red-letter invoice; full or partial.
    mutating func redLettered(_ issued: InvoiceIssued) {
        let t0 = issue(issued)
        let ready = acceptAndReview(after: deliver(after: t0, failures: [], ending: .succeeded)!)
        let requestedBy: RequestingSide = random.chance(70) ? .seller : .buyer
        let partial = random.chance(30)
        variant = partial ? "partial_discount" : random.pick(["goods_returned", "invoicing_error", "service_cancelled"])
        let reason = partial ? "销售折让 (sales discount) agreed after delivery" : ["goods_returned": "销货退回 (goods returned)",
            "invoicing_error": "开票有误 (wrong specification)", "service_cancelled": "服务中止 (service cancelled)"][variant]!
        let requestAt = Clock.officeHours(atOrAfter: ready + Int64(random.int(60...10 * 1_440)) * Clock.minute) + Int64(random.int(5...400)) * Clock.minute
        let formId = InvoiceNumbers.confirmationId(date: Timestamp(micros: requestAt).dateCST, index: index)
        let requested = add(invoice: World.issuerSource, id: "red-\(key)-req", at: requestAt,
                            .redLetterRequested(RedLetterRequested(confirmationId: formId, requestedBy: requestedBy, reason: reason)))
        let confirmed = add(invoice: World.issuerSource, id: "red-\(key)-cnf", at: requested + Int64(random.int(20...2_880)) * Clock.minute,
                            .redLetterConfirmed(RedLetterConfirmed(confirmationId: formId)))
        var amount = issued.totalAmount
        var tax = issued.totalTax
        if partial, let line = issued.lines.first(where: { $0.amount.fen >= 100 }) {
            amount = Money(fen: line.amount.fen * Int64(random.int(5...30)) / 100)
            tax = line.taxRate.treatment == .taxable ? amount.times(line.taxRate.fraction).roundedToFen : .zero
        }
        let redAt = confirmed + Int64(random.int(2...90)) * Clock.minute
        add(invoice: World.issuerSource, id: "red-\(key)-iss", at: redAt, .redLetterIssued(RedLetterIssued(
            redInvoiceNumber: InvoiceNumbers.redLetter(yy: Timestamp(micros: redAt).dateCST.year % 100, index: index),
            totalAmount: -amount, totalTax: -tax, confirmationId: formId)))
        if random.chance(25) { _ = verify(at: redAt + Int64(random.int(60...5_000)) * Clock.minute, .redLettered) }
    }

    mutating func verificationFailed(_ issued: InvoiceIssued) {
        let t0 = issue(issued)
        let ready = acceptAndReview(after: deliver(after: t0, failures: [], ending: .succeeded)!)
        variant = random.weighted([("not_found_after_window", 55), ("not_found_twice", 25), ("mismatch", 20)])
        switch variant {
        case "mismatch":
            _ = verify(at: ready + Int64(random.int(30...3_000)) * Clock.minute, .mismatch,
                       detail: "total on the platform is \(Money(fen: issued.totalWithTax.fen + Int64(random.int(1...50)) * 100)), invoice says \(issued.totalWithTax)")
        case "not_found_twice":
            let early = verify(at: t0 + Int64(random.int(30...600)) * Clock.minute, .notFound, detail: "no such invoice")
            _ = verify(at: max(early, t0 + 25 * Clock.hour) + Int64(random.int(1...5_000)) * Clock.minute, .notFound, detail: "no such invoice")
        default:
            _ = verify(at: max(ready, t0 + 25 * Clock.hour) + Int64(random.int(1...5_000)) * Clock.minute, .notFound, detail: "no such invoice")
        }
    }

    mutating func wrongRecipient(_ issued: InvoiceIssued) {
        let t0 = issue(issued)
        let delivered = deliver(after: t0, failures: [], ending: .succeeded)!
        if random.chance(50) {
            variant += "+rejected"
            add(invoice: system.financeSource, id: "rcp-\(key)", at: delivered + Int64(random.int(1...5)) * Clock.second,
                .receiptRejected(ReceiptRejected(system: system.id, rule: .buyerTaxIdMismatch,
                                                 detail: "buyer tax ID \(issued.buyer.taxId ?? "") is not \(system.owner.taxId)")))
        } else {
            variant += "+accepted"
            maybeVerifyAuthentic(after: acceptAndReview(after: delivered))
        }
    }

    mutating func notDelivered(_ issued: InvoiceIssued) {
        variant = "never_picked_up_by_sync"
        let t0 = issue(issued)
        if random.chance(20) { _ = verify(at: t0 + Int64(random.int(1_500...8_000)) * Clock.minute, .authentic) }
    }

    mutating func deliveryPending(_ issued: InvoiceIssued) {
        let t0 = issue(issued)
        let failures: [DeliveryFailureReason] = random.chance(40) ? [.networkTimeout] : []
        variant = failures.isEmpty ? "attempt_never_answered" : "retry_never_answered"
        _ = deliver(after: t0, failures: failures, ending: .noOutcome)
    }

    mutating func deliveryFailed(_ issued: InvoiceIssued) {
        let t0 = issue(issued)
        let plans: [([DeliveryFailureReason], String, Int)] = [
            ([.networkTimeout, .networkTimeout, .networkTimeout], "timeouts_gave_up", 30),
            ([.authExpired], "auth_expired", 30),
            ([.networkTimeout, .authExpired], "timeout_then_auth_expired", 12),
            ([.connectionRefused, .connectionRefused], "connection_refused", 10),
            ([.httpError], "http_error", 10),
            ([.payloadRejected], "payload_rejected", 8),
        ]
        let plan = random.weighted(plans.map { (($0.0, $0.1), $0.2) })
        variant = plan.1
        _ = deliver(after: t0, failures: plan.0, ending: .failed)
    }

    mutating func receiptRejected(_ issued: InvoiceIssued) {
        let t0 = issue(issued)
        let delivered = deliver(after: t0, failures: [], ending: .succeeded)!
        let rule: ReceiptRule
        let detail: String
        switch variant {
        case "buyer_tax_id_mismatch":
            rule = .buyerTaxIdMismatch
            detail = "buyer tax ID \(system.owner.taxId) is not in the system's company list (it still holds the old registration number \(system.owner.legacyTaxId))"
        case "totals_inconsistent":
            rule = .totalsInconsistent
            let drift = lineDrift!
            detail = "line \(drift.line): tax \(drift.tax) is not amount × rate = \(drift.halfUp); this system allows no rounding difference"
        default:
            rule = .duplicate
            let date = issued.issuedAt.dateCST
            detail = "same seller, date and total as voucher 记-\(date.year)-\(InvoiceNumbers.digits(date.month, 2))-\(InvoiceNumbers.digits(Int64(random.int(1...9_999)), 4)), already booked"
        }
        add(invoice: system.financeSource, id: "rcp-\(key)", at: delivered + Int64(random.int(1...5)) * Clock.second,
            .receiptRejected(ReceiptRejected(system: system.id, rule: rule, detail: detail)))
    }

    mutating func pendingReview(_ issued: InvoiceIssued) {
        variant = "waiting_for_review"
        let t0 = issue(issued)
        let delivered = deliver(after: t0, failures: [], ending: .succeeded)!
        let accepted = accept(after: delivered)
        maybeVerifyAuthentic(after: accepted)
    }

    mutating func reviewRejected(_ issued: InvoiceIssued) {
        let t0 = issue(issued)
        let delivered = deliver(after: t0, failures: [], ending: .succeeded)!
        let accepted = accept(after: delivered)
        let reasons = [("no_order_number", "no purchase-order number in the remarks"), ("over_budget", "amount exceeds the approved budget"),
                       ("supplier_not_approved", "seller is not on the approved supplier list"), ("duplicate_claim", "already claimed in expense report BX-2024-1187")]
        let (name, reason) = random.pick(reasons)
        variant = name
        let at = reviewTime(after: accepted)
        add(invoice: system.financeSource, id: "rev-\(key)", at: at,
            .reviewRejected(ReviewRejected(system: system.id, by: random.pick(system.reviewers), reason: reason)))
    }

    /// The invoice is fine; the user asking has no grant that covers its seller.
    mutating func accessDenied(_ issued: InvoiceIssued) {
        let t0 = issue(issued)
        maybeVerifyAuthentic(after: acceptAndReview(after: deliver(after: t0, failures: [], ending: .succeeded)!))
    }

    mutating func maintenance(_ issued: InvoiceIssued) {
        let t0 = issue(issued)
        let ready = acceptAndReview(after: deliver(after: t0, failures: [], ending: .succeeded)!)
        let window = system.maintenance.firstWindow(startingAfter: ready + Clock.hour)
        variant = window.reason == "weekly release upgrade" ? "weekly_upgrade" : "unplanned_outage"
        let at = window.start + Int64(random.int(1...Int((window.end - window.start) / Clock.minute) - 1)) * Clock.minute
        query(at: at, criteria: QueryCriteria(number: issued.number), results: 0)
    }

    /// The invoice is in the system and approved (or pending, for a status filter); the
    /// user's most recent query is what excluded it.
    mutating func queried(_ issued: InvoiceIssued) {
        let t0 = issue(issued)
        let delivered = deliver(after: t0, failures: [], ending: .succeeded)!
        var pending = false
        if intended == .queryStatusFiltered {
            variant = random.weighted([("searched_to_do_list", 45), ("searched_rejected", 20), ("approved_only_while_pending", 35)])
            pending = variant == "approved_only_while_pending"
        }
        let ready: Int64
        if pending {
            ready = accept(after: delivered)
        } else {
            ready = acceptAndReview(after: delivered)
        }
        let criteria: QueryCriteria
        switch intended {
        case .queryNumberMismatch: criteria = QueryCriteria(number: mistypedNumber(issued))
        case .queryDateOutOfRange: criteria = wrongDateRange(issued)
        case .queryBuyerNameMismatch: criteria = QueryCriteria(buyerName: mistypedBuyerName(issued))
        case .querySellerNameMismatch: criteria = QueryCriteria(sellerName: mistypedSellerName(issued))
        default:
            let statuses: [VisibleStatus] = ["searched_to_do_list": [.pendingReview], "searched_rejected": [.reviewRejected]][variant] ?? [.approved]
            criteria = QueryCriteria(number: issued.number, statuses: statuses)
        }
        // Nobody searches a range of dates still to come: the query runs after the range ends.
        let rangeEnd = criteria.issuedTo.map { $0.startMicros(offsetSeconds: RFC3339.cstOffsetSeconds) + Clock.day } ?? ready
        query(after: max(ready, rangeEnd), criteria: criteria, results: random.chance(70) ? 0 : random.int(1...40))
    }

    // MARK: Mistakes people make when they search

    mutating func mistypedNumber(_ issued: InvoiceIssued) -> String {
        var choices = [("one_digit_wrong", 35), ("adjacent_digits_swapped", 25), ("full_width_digits", 15), ("digit_dropped", 10), ("trailing_space", 5)]
        if issued.code != nil { choices.append(("code_instead_of_number", 20)) }
        variant = random.weighted(choices)
        var digits = Array(issued.number)
        switch variant {
        case "one_digit_wrong":
            let at = random.int(digits.count / 2...digits.count - 1)
            let old = digits[at].wholeNumberValue!
            digits[at] = Character(String((old + random.int(1...9)) % 10))
        case "adjacent_digits_swapped":
            let pairs = (0..<digits.count - 1).filter { digits[$0] != digits[$0 + 1] }
            if let at = pairs.isEmpty ? nil : random.pick(pairs) {
                digits.swapAt(at, at + 1)
            } else {
                variant = "one_digit_wrong"
                digits[digits.count - 1] = digits[digits.count - 1] == "1" ? "7" : "1"
            }
        case "full_width_digits":
            return String(String.UnicodeScalarView(issued.number.unicodeScalars.map { Unicode.Scalar($0.value - 0x30 + 0xFF10)! }))
        case "digit_dropped":
            digits.remove(at: random.below(digits.count))
        case "trailing_space":
            return issued.number + " "
        default:
            return issued.code!
        }
        return String(digits)
    }

    mutating func mistypedBuyerName(_ issued: InvoiceIssued) -> String {
        let name = issued.buyer.name
        var choices = [("trailing_space", 15), ("short_name", 20)]
        if name.contains("（") { choices.append(("half_width_brackets", 45)) }
        if system.owner.oldName != nil { choices.append(("old_name", 25)) }
        variant = random.weighted(choices)
        return misspell(name, oldName: system.owner.oldName)
    }

    mutating func mistypedSellerName(_ issued: InvoiceIssued) -> String {
        let seller = world.sellers.first { $0.taxId == issued.seller.taxId }
        return misspell(issued.seller.name, oldName: seller?.oldName)
    }

    /// `variant` says how.
    func misspell(_ name: String, oldName: String?) -> String {
        switch variant {
        case "half_width_brackets": return name.replacingAll("（", with: "(").replacingAll("）", with: ")")
        case "old_name": return oldName!
        case "trailing_space": return name + " "
        default:
            // What people call the company: the name without 北京/北京市 and the legal form.
            var short = name
            for prefix in ["北京市", "北京"] where short.hasPrefix(prefix) { short = String(short.dropFirst(prefix.count)); break }
            for suffix in ["（集团）有限公司", "股份有限公司", "有限责任公司", "有限公司"] where short.hasSuffix(suffix) {
                short = String(short.dropLast(suffix.count))
                break
            }
            return short
        }
    }

    mutating func wrongDateRange(_ issued: InvoiceIssued) -> QueryCriteria {
        let cstDate = issued.issuedAt.dateCST
        switch variant {
        case "utc_day_shift":
            // The user went by a list that shows UTC dates: the invoice appears a day early there.
            let utcDate = CalendarDate(micros: issued.issuedAt.micros, offsetSeconds: 0)
            if utcDate.day == 1 || random.chance(40) {
                return QueryCriteria(issuedFrom: CalendarDate(year: utcDate.year, month: utcDate.month, day: 1)!, issuedTo: utcDate)
            }
            return QueryCriteria(issuedFrom: shifted(utcDate, days: -random.int(0...6)), issuedTo: utcDate)
        case "previous_month":
            let previous = cstDate.month == 1 ? (cstDate.year - 1, 12) : (cstDate.year, cstDate.month - 1)
            let first = CalendarDate(year: previous.0, month: previous.1, day: 1)!
            return QueryCriteria(issuedFrom: first, issuedTo: shifted(CalendarDate(year: cstDate.year, month: cstDate.month, day: 1)!, days: -1))
        case "later_range":
            // The user went by the delivery note's date, a few days after the invoice.
            let from = shifted(cstDate, days: random.int(1...4))
            return QueryCriteria(issuedFrom: from, issuedTo: shifted(from, days: random.int(0...6)))
        default:
            let from = CalendarDate(year: cstDate.year - 1, month: cstDate.month, day: 1)!
            return QueryCriteria(issuedFrom: from, issuedTo: shifted(CalendarDate(year: cstDate.year - 1, month: cstDate.month, day: 1)!, days: daysInMonth(cstDate.year - 1, cstDate.month) - 1))
        }
    }

    // MARK: Steps

    /// The issue event, at the issue time itself.
    @discardableResult
    mutating func issue(_ issued: InvoiceIssued) -> Int64 {
        add(invoice: World.issuerSource, id: "iss-\(key)", at: issued.issuedAt.micros, .invoiceIssued(issued))
    }

    enum DeliveryEnding { case succeeded, noOutcome, failed }

    /// Attempts on the sync job's 10-minute ticks; each failure in `failures`, then `ending`.
    /// Returns the time of success. A login that expired is renewed the next office morning.
    mutating func deliver(after start: Int64, failures: [DeliveryFailureReason], ending: DeliveryEnding) -> Int64? {
        var time = start
        var attempt = 0
        func tick(after micros: Int64, _ random: inout SplitMix) -> Int64 {
            (micros / (10 * Clock.minute) + 1) * 10 * Clock.minute + Int64(random.int(3...50)) * Clock.second
        }
        var outcomes: [DeliveryFailureReason?] = failures
        if ending != .failed { outcomes.append(nil) }
        for (position, failure) in outcomes.enumerated() {
            attempt += 1
            let attempted = add(invoice: system.syncSource, id: "dlv-\(key)-\(attempt)a", at: tick(after: time, &random),
                                .deliveryAttempted(DeliveryStep(system: system.id, attempt: attempt)))
            guard let failure else {
                if ending == .noOutcome { return nil }
                return add(invoice: system.syncSource, id: "dlv-\(key)-\(attempt)s", at: attempted + Int64(random.int(1...4)) * Clock.second,
                           .deliverySucceeded(DeliveryStep(system: system.id, attempt: attempt)))
            }
            let (delay, detail) = failureDetail(failure)
            time = add(invoice: system.syncSource, id: "dlv-\(key)-\(attempt)f", at: attempted + delay,
                       .deliveryFailed(DeliveryFailed(system: system.id, attempt: attempt, reason: failure, detail: detail)))
            if failure == .authExpired && position < outcomes.count - 1 {
                // Sync stops silently until someone logs in to the tax bureau again.
                time = Clock.officeHours(atOrAfter: time + 30 * Clock.minute) + Int64(random.int(10...180)) * Clock.minute
            }
        }
        return nil
    }

    mutating func failureDetail(_ reason: DeliveryFailureReason) -> (Int64, String) {
        switch reason {
        case .networkTimeout: return (30 * Clock.second, "no answer from \(system.id) in 30 s")
        case .authExpired: return (2 * Clock.second, "tax-bureau login expired; sync stops until someone logs in again")
        case .connectionRefused: return (1 * Clock.second, "connect ECONNREFUSED 10.12.3.\(random.int(2...250)):443")
        case .httpError: return (3 * Clock.second, random.pick(["HTTP 502 Bad Gateway", "HTTP 503 Service Unavailable", "HTTP 500 Internal Server Error"]))
        case .payloadRejected: return (2 * Clock.second, random.pick(["schema validation failed: lines[0].spec longer than 40 bytes",
                                                                      "schema validation failed: remarks contains a control character"]))
        }
    }

    /// The receiving system's import takes a few seconds after delivery.
    mutating func accept(after delivered: Int64) -> Int64 {
        add(invoice: system.financeSource, id: "rcp-\(key)", at: delivered + Int64(random.int(1...5)) * Clock.second,
            .receiptAccepted(ReceiptAccepted(system: system.id)))
    }

    /// Accepted a few seconds after delivery; approved in office hours when the system reviews.
    mutating func acceptAndReview(after delivered: Int64) -> Int64 {
        let accepted = accept(after: delivered)
        guard system.requiresReview else { return accepted }
        return add(invoice: system.financeSource, id: "rev-\(key)", at: reviewTime(after: accepted),
                   .reviewApproved(ReviewApproved(system: system.id, by: random.pick(system.reviewers))))
    }

    mutating func reviewTime(after accepted: Int64) -> Int64 {
        let earliest = accepted + Int64(random.int(10...1_800)) * Clock.minute
        let opened = Clock.officeHours(atOrAfter: earliest)
        return opened == earliest ? opened : opened + Int64(random.int(5...420)) * Clock.minute
    }

    @discardableResult
    mutating func verify(at micros: Int64, _ result: VerificationResult, detail: String? = nil) -> Int64 {
        let count = events.count(where: { $0.event.type == .verificationChecked }) + 1
        return add(invoice: World.verificationSource, id: "ver-\(key)-\(count)", at: micros,
                   .verificationChecked(VerificationChecked(provider: World.verificationProvider, result: result, detail: detail)))
    }

    /// A fifth of invoices are checked against the national platform once they are booked.
    mutating func maybeVerifyAuthentic(after micros: Int64) {
        if random.chance(20) { verify(at: micros + Int64(random.int(5...4_000)) * Clock.minute, .authentic) }
    }

    /// A user of beijing-finance created for this question: a grant that sees everything, then
    /// one query (the most recent, so the one `why` evaluates).
    mutating func query(after ready: Int64, criteria: QueryCriteria, results: Int) {
        let wanted = Clock.officeHours(atOrAfter: ready + Int64(random.int(30...5_000)) * Clock.minute, opens: 8, closes: 19)
            + Int64(random.int(0...300)) * Clock.minute
        query(at: system.maintenance.outsideWindows(wanted, random: &random), criteria: criteria, results: results)
    }

    mutating func query(at micros: Int64, criteria: QueryCriteria, results: Int) {
        let name = random.pick(World.surnames) + "." + random.pick(World.givenNames) + "." + String(index)
        user = name
        let subject = system.userSubject(name)
        // Onboarded in the week before the period (or, for an early query, an hour before it).
        let onboarded = Clock.officeHours(atOrAfter: world.setupMicros + Int64(random.int(0...5)) * Clock.day) + Int64(random.int(0...480)) * Clock.minute
        let granted = min(onboarded, micros - Clock.hour)
        events.append(Emitted(subject: subject, source: system.accessSource, id: "grant-\(name)-1", micros: granted,
                              event: .accessGranted(AccessChange(system: system.id, user: name, scope: .all))))
        events.append(Emitted(subject: subject, source: system.queryLogSource, id: "q-\(name)-1", micros: micros,
                              event: .queryExecuted(QueryExecuted(system: system.id, user: name, criteria: criteria, resultCount: results))))
    }

    /// Adds an event on the invoice stream at `micros` (steps may add events out of order:
    /// `finish` sorts them); returns its time.
    @discardableResult
    mutating func add(invoice source: String, id: String, at micros: Int64, _ event: DomainEvent) -> Int64 {
        events.append(Emitted(subject: key, source: source, id: id, micros: micros, event: event))
        return micros
    }

    /// The events in time order, each stream's strictly increasing (a tie moves one second on,
    /// keeping the order the steps added them in).
    static func finish(_ events: [Emitted]) -> [Emitted] {
        var sorted = events.enumerated().sorted { ($0.element.micros, $0.offset) < ($1.element.micros, $1.offset) }.map(\.element)
        var latest: [String: Int64] = [:]
        for position in sorted.indices {
            if let previous = latest[sorted[position].subject], sorted[position].micros <= previous {
                sorted[position].micros = previous + Clock.second
            }
            latest[sorted[position].subject] = sorted[position].micros
        }
        return sorted
    }

    // MARK: Dates

    func shifted(_ date: CalendarDate, days: Int) -> CalendarDate {
        CalendarDate.cst(micros: date.startMicros(offsetSeconds: RFC3339.cstOffsetSeconds) + Int64(days) * Clock.day)
    }

    func daysInMonth(_ year: Int, _ month: Int) -> Int {
        (28...31).last { CalendarDate(year: year, month: month, day: $0) != nil }!
    }

    func daysLeftInMonth(_ date: CalendarDate) -> Int { daysInMonth(date.year, date.month) - date.day + 1 }
}

extension String {
    func replacingAll(_ target: Character, with replacement: Character) -> String {
        String(map { $0 == target ? replacement : $0 })
    }
}
