import NIOCore
import RWACrypto
import RWAWire

/// The seven categories of network resource of the paper's Table I.
public enum ResourceKind: UInt8, CaseIterable, Sendable, Codable {
    case domainName = 1
    case ipAddressBlock = 2
    case bandwidth = 3
    case nodeResources = 4
    case computationalPower = 5
    case radioSpectrum = 6
    case cloudStorage = 7

    public var name: String {
        switch self {
        case .domainName: return "domain-name"
        case .ipAddressBlock: return "ip-address-block"
        case .bandwidth: return "bandwidth"
        case .nodeResources: return "node-resources"
        case .computationalPower: return "computational-power"
        case .radioSpectrum: return "radio-spectrum"
        case .cloudStorage: return "cloud-storage"
        }
    }

    public init?(name: String) {
        guard let kind = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = kind
    }

    /// Table I's reading of the category against the three criteria of section II, as scores
    /// 0 (fails) to 3 (strong) with the paper's reason. An owner may argue otherwise at registration.
    public var defaultAssessment: SuitabilityAssessment {
        func score(_ value: UInt8, _ reason: String) -> CriterionScore { CriterionScore(score: value, reason: reason) }
        switch self {
        case .domainName:
            return SuitabilityAssessment(
                intrinsicValue: score(2, "inherently unique with a mature market"),
                strategicScarcity: score(2, "unique names are scarce, akin to NFTs"),
                legalClarity: score(1, "no clear framework for securitizing names"))
        case .ipAddressBlock:
            return SuitabilityAssessment(
                intrinsicValue: score(3, "stable cash flow through leasing"),
                strategicScarcity: score(3, "a naturally scarce digital resource"),
                legalClarity: score(1, "a right of use, not ownership, in most jurisdictions"))
        case .bandwidth:
            return SuitabilityAssessment(
                intrinsicValue: score(2, "stable enterprise demand for dedicated lines"),
                strategicScarcity: score(2, "high-value dedicated lines"),
                legalClarity: score(1, "value rests on carrier performance, hard to verify off-chain"))
        case .nodeResources:
            return SuitabilityAssessment(
                intrinsicValue: score(2, "control of core nodes earns commercial profit"),
                strategicScarcity: score(3, "access to core nodes has strategic value"),
                legalClarity: score(0, "risks telecom regulation and net neutrality"))
        case .computationalPower:
            return SuitabilityAssessment(
                intrinsicValue: score(1, "depreciation, energy and maintenance erode value"),
                strategicScarcity: score(2, "clear and growing demand"),
                legalClarity: score(3, "standardized, divisible, rights automatable"))
        case .radioSpectrum:
            return SuitabilityAssessment(
                intrinsicValue: score(3, "physical scarcity guarantees long-term value"),
                strategicScarcity: score(3, "long-term licences can be yield-generating"),
                legalClarity: score(1, "regulation differs across countries"))
        case .cloudStorage:
            return SuitabilityAssessment(
                intrinsicValue: score(1, "value tied to hardware, depreciation, privacy"),
                strategicScarcity: score(1, "standardized, idle capacity is abundant"),
                legalClarity: score(2, "standardized and granular units"))
        }
    }
}

/// One criterion's score, 0–3, with the reason for it.
public struct CriterionScore: Equatable, Sendable {
    public static let scoreMax: UInt8 = 3
    public var score: UInt8
    public var reason: String

    public init(score: UInt8, reason: String) {
        self.score = score
        self.reason = reason
    }

    init(decoding buffer: inout ByteBuffer, field: String) throws(WireError) {
        score = try buffer.readInteger(field: "\(field).score")
        guard score <= Self.scoreMax else {
            throw .invalidValue(field: "\(field).score", reason: "\(score) is above \(Self.scoreMax)")
        }
        reason = try buffer.readText(field: "\(field).reason", maximum: LedgerLimits.reasonBytesMax)
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(score)
        buffer.writeText(reason, maximum: LedgerLimits.reasonBytesMax)
    }
}

/// The paper's three criteria for a resource that suits tokenization (section II).
public struct SuitabilityAssessment: Equatable, Sendable {
    public var intrinsicValue: CriterionScore
    public var strategicScarcity: CriterionScore
    public var legalClarity: CriterionScore

    public init(intrinsicValue: CriterionScore, strategicScarcity: CriterionScore, legalClarity: CriterionScore) {
        self.intrinsicValue = intrinsicValue
        self.strategicScarcity = strategicScarcity
        self.legalClarity = legalClarity
    }

    init(decoding buffer: inout ByteBuffer) throws(WireError) {
        intrinsicValue = try CriterionScore(decoding: &buffer, field: "assessment.intrinsic_value")
        strategicScarcity = try CriterionScore(decoding: &buffer, field: "assessment.strategic_scarcity")
        legalClarity = try CriterionScore(decoding: &buffer, field: "assessment.legal_clarity")
    }

    func encode(into buffer: inout ByteBuffer) {
        intrinsicValue.encode(into: &buffer)
        strategicScarcity.encode(into: &buffer)
        legalClarity.encode(into: &buffer)
    }
}

/// A spectrum licence's band, area and term. It is split into `SpectrumLicence.sliceCount`
/// equal slices, so a 10 MHz licence has slices of 0.1 MHz.
public struct SpectrumLicence: Equatable, Sendable {
    public static let sliceCount = 100
    public var centreHz: UInt64
    public var widthHz: UInt64
    public var country: CountryCode
    public var region: String
    /// Unix seconds; the licence is valid for `validFrom ..< validUntil`.
    public var validFrom: UInt64
    public var validUntil: UInt64

    public init(
        centreHz: UInt64, widthHz: UInt64, country: CountryCode, region: String, validFrom: UInt64,
        validUntil: UInt64
    ) {
        self.centreHz = centreHz
        self.widthHz = widthHz
        self.country = country
        self.region = region
        self.validFrom = validFrom
        self.validUntil = validUntil
    }

    public var sliceWidthHz: UInt64 { widthHz / UInt64(Self.sliceCount) }

    /// The exact range of slice `index` (0-based, from the lowest frequency): `low ..< high` in Hz.
    public func slice(_ index: Int) -> (lowHz: UInt64, highHz: UInt64) {
        precondition(index >= 0 && index < Self.sliceCount)
        let low = centreHz - widthHz / 2 + UInt64(index) * sliceWidthHz
        return (low, low + sliceWidthHz)
    }

    /// Why this licence cannot be registered, or nil. The width must split into whole-hertz
    /// slices around a whole-hertz lower edge, so every slice edge is exact.
    var invalidReason: String? {
        if widthHz == 0 || widthHz % (2 * UInt64(Self.sliceCount)) != 0 {
            return "width \(widthHz) Hz must be a positive multiple of \(2 * Self.sliceCount) Hz"
        }
        if centreHz < widthHz / 2 || centreHz > UInt64.max - widthHz / 2 {
            return "band does not fit in 0 ... 2^64 Hz"
        }
        if !(1...999).contains(country) { return "country \(country) is not an ISO 3166 numeric code" }
        if validUntil <= validFrom { return "validity ends before it begins" }
        return nil
    }

    init(decoding buffer: inout ByteBuffer) throws(WireError) {
        centreHz = try buffer.readInteger(field: "spectrum.centre_hz")
        widthHz = try buffer.readInteger(field: "spectrum.width_hz")
        country = try buffer.readInteger(field: "spectrum.country")
        region = try buffer.readText(field: "spectrum.region", maximum: LedgerLimits.regionBytesMax)
        validFrom = try buffer.readInteger(field: "spectrum.valid_from")
        validUntil = try buffer.readInteger(field: "spectrum.valid_until")
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(centreHz, endianness: .big)
        buffer.writeInteger(widthHz, endianness: .big)
        buffer.writeInteger(country, endianness: .big)
        buffer.writeText(region, maximum: LedgerLimits.regionBytesMax)
        buffer.writeInteger(validFrom, endianness: .big)
        buffer.writeInteger(validUntil, endianness: .big)
    }
}

/// What a registration transaction says about a resource. The registrar (a trusted claim
/// issuer: the regulator) names the owner; a spectrum licence also names its band and the
/// compliance rules of its ownership token.
public struct ResourceRegistration: Equatable, Sendable {
    public var kind: ResourceKind
    public var owner: AccountID
    public var name: String
    public var metadata: String
    /// The owner's valuation in stablecoin base units.
    public var valuation: UInt128
    /// The owner's own reading of each criterion, where it differs from Table I's.
    public var intrinsicValue: CriterionScore?
    public var strategicScarcity: CriterionScore?
    public var legalClarity: CriterionScore?
    /// Present exactly when `kind` is `.radioSpectrum`.
    public var spectrum: SpectrumLicence?
    /// The ownership token's rules; present exactly when `spectrum` is.
    public var compliance: ComplianceRules?

    public init(
        kind: ResourceKind, owner: AccountID, name: String, metadata: String = "", valuation: UInt128,
        intrinsicValue: CriterionScore? = nil, strategicScarcity: CriterionScore? = nil,
        legalClarity: CriterionScore? = nil, spectrum: SpectrumLicence? = nil, compliance: ComplianceRules? = nil
    ) {
        self.kind = kind
        self.owner = owner
        self.name = name
        self.metadata = metadata
        self.valuation = valuation
        self.intrinsicValue = intrinsicValue
        self.strategicScarcity = strategicScarcity
        self.legalClarity = legalClarity
        self.spectrum = spectrum
        self.compliance = compliance
    }

    /// Table I's assessment with the owner's arguments in place of the defaults they contest.
    public var assessment: SuitabilityAssessment {
        var result = kind.defaultAssessment
        if let intrinsicValue { result.intrinsicValue = intrinsicValue }
        if let strategicScarcity { result.strategicScarcity = strategicScarcity }
        if let legalClarity { result.legalClarity = legalClarity }
        return result
    }

    init(decoding buffer: inout ByteBuffer) throws(WireError) {
        let rawKind: UInt8 = try buffer.readInteger(field: "resource.kind")
        guard let kind = ResourceKind(rawValue: rawKind) else {
            throw .invalidValue(field: "resource.kind", reason: "unknown kind \(rawKind)")
        }
        self.kind = kind
        owner = try buffer.readPublicKey(field: "resource.owner")
        name = try buffer.readText(field: "resource.name", maximum: LedgerLimits.resourceNameBytesMax)
        metadata = try buffer.readText(field: "resource.metadata", maximum: LedgerLimits.resourceMetadataBytesMax)
        valuation = try buffer.readUInt128(field: "resource.valuation")
        intrinsicValue = try buffer.readOptional(field: "resource.intrinsic_value") { (b) throws(WireError) in
            try CriterionScore(decoding: &b, field: "resource.intrinsic_value")
        }
        strategicScarcity = try buffer.readOptional(field: "resource.strategic_scarcity") { (b) throws(WireError) in
            try CriterionScore(decoding: &b, field: "resource.strategic_scarcity")
        }
        legalClarity = try buffer.readOptional(field: "resource.legal_clarity") { (b) throws(WireError) in
            try CriterionScore(decoding: &b, field: "resource.legal_clarity")
        }
        spectrum = try buffer.readOptional(field: "resource.spectrum") { (b) throws(WireError) in
            try SpectrumLicence(decoding: &b)
        }
        compliance = try buffer.readOptional(field: "resource.compliance") { (b) throws(WireError) in
            try ComplianceRules(decoding: &b)
        }
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(kind.rawValue)
        buffer.writePublicKey(owner)
        buffer.writeText(name, maximum: LedgerLimits.resourceNameBytesMax)
        buffer.writeText(metadata, maximum: LedgerLimits.resourceMetadataBytesMax)
        buffer.writeUInt128(valuation)
        buffer.writeOptional(intrinsicValue) { $1.encode(into: &$0) }
        buffer.writeOptional(strategicScarcity) { $1.encode(into: &$0) }
        buffer.writeOptional(legalClarity) { $1.encode(into: &$0) }
        buffer.writeOptional(spectrum) { $1.encode(into: &$0) }
        buffer.writeOptional(compliance) { $1.encode(into: &$0) }
    }
}

/// A registered resource: its digital twin on the ledger.
public struct Resource: Equatable, Sendable {
    public var id: ResourceID
    public var registration: ResourceRegistration
    public var registrar: AccountID
    public var registeredAtHeight: UInt64
    /// The licence's ownership token, for a spectrum licence.
    public var token: TokenID?

    public var assessment: SuitabilityAssessment { registration.assessment }

    init(decoding buffer: inout ByteBuffer) throws(WireError) {
        id = try buffer.readInteger(field: "resource.id")
        registration = try ResourceRegistration(decoding: &buffer)
        registrar = try buffer.readPublicKey(field: "resource.registrar")
        registeredAtHeight = try buffer.readInteger(field: "resource.height")
        token = try buffer.readOptional(field: "resource.token") { (b) throws(WireError) in
            try b.readInteger(field: "resource.token")
        }
    }

    init(id: ResourceID, registration: ResourceRegistration, registrar: AccountID, height: UInt64, token: TokenID?) {
        self.id = id
        self.registration = registration
        self.registrar = registrar
        self.registeredAtHeight = height
        self.token = token
    }

    func encode(into buffer: inout ByteBuffer) {
        buffer.writeInteger(id, endianness: .big)
        registration.encode(into: &buffer)
        buffer.writePublicKey(registrar)
        buffer.writeInteger(registeredAtHeight, endianness: .big)
        buffer.writeOptional(token) { $0.writeInteger($1, endianness: .big) }
    }
}
