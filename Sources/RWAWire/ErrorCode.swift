/// Error codes carried by `error` and `warning` frames. Ranges are reserved per layer, like the
/// message types (proto/README.md, "Error codes"); numbers are stable and never reused.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ known: Known) { self.rawValue = known.rawValue }

    /// Every code this implementation knows, in one list: the constants below and every name
    /// come from it, so a code cannot be added without its name.
    public enum Known: UInt16, CaseIterable, Sendable {
        // 0x0001–0x00FF: session layer.
        case malformedFrame = 0x0001
        case frameTooLarge = 0x0002
        case unknownRequiredMessage = 0x0003
        case badSignature = 0x0004
        case decryptionFailed = 0x0005
        case unexpectedMessage = 0x0006
        case unsupportedVersion = 0x0007
        case unknownRequiredFeature = 0x0008
        case wrongChain = 0x0009
        case unexpectedPeer = 0x000A
        case handshakeTimeout = 0x000B
        case idleTimeout = 0x000C
        case overloaded = 0x000D
        case deliveryFailed = 0x000E
        /// Not a failure: the sender ends the session normally.
        case closed = 0x000F
        // 0x0100–0x01FF: ledger rejections (proto/README.md, "Rejection codes"), carried by
        // `transaction_rejected` and `request_failed`, never by a session-closing `error` frame.
        case malformedTransaction = 0x0101
        case wrongChainID = 0x0102
        case invalidSignature = 0x0103
        case unknownAccount = 0x0104
        case sequenceReused = 0x0105
        case sequenceAhead = 0x0106
        case insufficientBalance = 0x0107
        case notAuthorized = 0x0108
        case tokenPaused = 0x0109
        case accountFrozen = 0x010A
        case receiverNotVerified = 0x010B
        case countryNotAllowed = 0x010C
        case balanceLimitExceeded = 0x010D
        case holderLimitExceeded = 0x010E
        case unknownToken = 0x010F
        case unknownIdentity = 0x0110
        case zeroAmount = 0x0111
        case supplyExceeded = 0x0112
        case invalidResource = 0x0113
        case alreadyRegistered = 0x0114
        case invalidOperation = 0x0115
        case identityMismatch = 0x0116
        /// Not a ledger rule: the arbiter's queue is full; the same transaction may be sent again.
        case arbiterBusy = 0x0117
        /// A query the arbiter cannot answer as asked (an unknown key kind, for example).
        case badQuery = 0x0118
        /// Pool operations (purchase mode).
        case unknownPool = 0x0119
        case deadlinePassed = 0x011A
        case priceLimit = 0x011B
        case insufficientLiquidity = 0x011C
        // 0x0200–0x02FF: lease channel (proto/README.md, "Lease codes"), carried by the lease
        // messages' refusals and by `transaction_rejected` for the channel contract.
        /// No channel with this id (at the peer or on the ledger).
        case unknownChannel = 0x0201
        /// A signature over the terms or a state does not verify for its party.
        case badChannelSignature = 0x0202
        /// The state belongs to another channel (or another chain).
        case wrongChannel = 0x0203
        /// An update's nonce is not exactly one above the latest co-signed state's.
        case nonceNotNext = 0x0204
        /// The paid amount falls below the latest state's.
        case paymentDecreased = 0x0205
        /// The paid amount exceeds the deposit.
        case paymentAboveDeposit = 0x0206
        /// The paid-through time is not what the paid amount buys at the rate.
        case paidThroughMismatch = 0x0207
        /// The channel's latest state is final, or the channel is closing or closed.
        case channelFinal = 0x0208
        /// The lessor proposed a state that changes the paid amount.
        case lessorCannotPay = 0x0209
        /// A proposal already waits for its countersignature.
        case updateInProgress = 0x020A
        /// Terms that cannot open a channel (proto/README.md, "Lease terms").
        case invalidTerms = 0x020B
        /// The lessor does not offer these terms.
        case notOffered = 0x020C
        /// One of the slice-hours is already leased.
        case sliceHourTaken = 0x020D
        /// The lease's hours are not all inside the licence's validity.
        case outsideLicenceValidity = 0x020E
        /// The lessor is neither an agent nor the registered owner of the licence.
        case notLessorOfLicence = 0x020F
        /// A challenge after the challenge period.
        case challengePeriodOver = 0x0210
        /// A registration or challenge whose nonce is not above the registered state's.
        case staleState = 0x0211
        /// A settlement before the challenge period is over.
        case challengePeriodRunning = 0x0212
        /// A rent claim with no rent accrued.
        case nothingToClaim = 0x0213
        /// The terms' period is not the chain's usage-right period.
        case periodMismatch = 0x0214
        // 0x0300–0x03FF: exchange. 0x8000–0xFFFF: private use.
        /// The exchange was sent a transaction that is not an order (`add_liquidity`,
        /// `remove_liquidity`, `swap_exact_in` or `swap_exact_out`).
        case notAnOrder = 0x0301
        /// The exchange cannot reach the arbiter, or the order's outcome is unknown to it.
        case exchangeUnavailable = 0x0302
    }

    public static let malformedFrame = ErrorCode(.malformedFrame)
    public static let frameTooLarge = ErrorCode(.frameTooLarge)
    public static let unknownRequiredMessage = ErrorCode(.unknownRequiredMessage)
    public static let badSignature = ErrorCode(.badSignature)
    public static let decryptionFailed = ErrorCode(.decryptionFailed)
    public static let unexpectedMessage = ErrorCode(.unexpectedMessage)
    public static let unsupportedVersion = ErrorCode(.unsupportedVersion)
    public static let unknownRequiredFeature = ErrorCode(.unknownRequiredFeature)
    public static let wrongChain = ErrorCode(.wrongChain)
    public static let unexpectedPeer = ErrorCode(.unexpectedPeer)
    public static let handshakeTimeout = ErrorCode(.handshakeTimeout)
    public static let idleTimeout = ErrorCode(.idleTimeout)
    public static let overloaded = ErrorCode(.overloaded)
    public static let deliveryFailed = ErrorCode(.deliveryFailed)
    public static let closed = ErrorCode(.closed)
    public static let malformedTransaction = ErrorCode(.malformedTransaction)
    public static let wrongChainID = ErrorCode(.wrongChainID)
    public static let invalidSignature = ErrorCode(.invalidSignature)
    public static let unknownAccount = ErrorCode(.unknownAccount)
    public static let sequenceReused = ErrorCode(.sequenceReused)
    public static let sequenceAhead = ErrorCode(.sequenceAhead)
    public static let insufficientBalance = ErrorCode(.insufficientBalance)
    public static let notAuthorized = ErrorCode(.notAuthorized)
    public static let tokenPaused = ErrorCode(.tokenPaused)
    public static let accountFrozen = ErrorCode(.accountFrozen)
    public static let receiverNotVerified = ErrorCode(.receiverNotVerified)
    public static let countryNotAllowed = ErrorCode(.countryNotAllowed)
    public static let balanceLimitExceeded = ErrorCode(.balanceLimitExceeded)
    public static let holderLimitExceeded = ErrorCode(.holderLimitExceeded)
    public static let unknownToken = ErrorCode(.unknownToken)
    public static let unknownIdentity = ErrorCode(.unknownIdentity)
    public static let zeroAmount = ErrorCode(.zeroAmount)
    public static let supplyExceeded = ErrorCode(.supplyExceeded)
    public static let invalidResource = ErrorCode(.invalidResource)
    public static let alreadyRegistered = ErrorCode(.alreadyRegistered)
    public static let invalidOperation = ErrorCode(.invalidOperation)
    public static let identityMismatch = ErrorCode(.identityMismatch)
    public static let arbiterBusy = ErrorCode(.arbiterBusy)
    public static let badQuery = ErrorCode(.badQuery)
    public static let unknownPool = ErrorCode(.unknownPool)
    public static let deadlinePassed = ErrorCode(.deadlinePassed)
    public static let priceLimit = ErrorCode(.priceLimit)
    public static let insufficientLiquidity = ErrorCode(.insufficientLiquidity)
    public static let unknownChannel = ErrorCode(.unknownChannel)
    public static let badChannelSignature = ErrorCode(.badChannelSignature)
    public static let wrongChannel = ErrorCode(.wrongChannel)
    public static let nonceNotNext = ErrorCode(.nonceNotNext)
    public static let paymentDecreased = ErrorCode(.paymentDecreased)
    public static let paymentAboveDeposit = ErrorCode(.paymentAboveDeposit)
    public static let paidThroughMismatch = ErrorCode(.paidThroughMismatch)
    public static let channelFinal = ErrorCode(.channelFinal)
    public static let lessorCannotPay = ErrorCode(.lessorCannotPay)
    public static let updateInProgress = ErrorCode(.updateInProgress)
    public static let invalidTerms = ErrorCode(.invalidTerms)
    public static let notOffered = ErrorCode(.notOffered)
    public static let sliceHourTaken = ErrorCode(.sliceHourTaken)
    public static let outsideLicenceValidity = ErrorCode(.outsideLicenceValidity)
    public static let notLessorOfLicence = ErrorCode(.notLessorOfLicence)
    public static let challengePeriodOver = ErrorCode(.challengePeriodOver)
    public static let staleState = ErrorCode(.staleState)
    public static let challengePeriodRunning = ErrorCode(.challengePeriodRunning)
    public static let nothingToClaim = ErrorCode(.nothingToClaim)
    public static let periodMismatch = ErrorCode(.periodMismatch)
    public static let notAnOrder = ErrorCode(.notAnOrder)
    public static let exchangeUnavailable = ErrorCode(.exchangeUnavailable)

    /// The code's name on the wire and in logs: its `Known` case in snake case
    /// (`receiverNotVerified` is `receiver_not_verified`), or `code_0x…` for a code this
    /// implementation does not know (a newer peer's).
    public var name: String {
        if let name = Self.names[rawValue] { return name }
        let digits = String(rawValue, radix: 16)
        return "code_0x" + String(repeating: "0", count: 4 - digits.count) + digits
    }

    private static let names: [UInt16: String] = Dictionary(
        uniqueKeysWithValues: Known.allCases.map { ($0.rawValue, snakeCase("\($0)")) })

    /// `wrongChainID` → `wrong_chain_id`: an underscore before each capital that follows a
    /// lower-case letter or a digit, then all in lower case.
    static func snakeCase(_ name: String) -> String {
        var out = ""
        var previous: Character?
        for character in name {
            if character.isUppercase, let previous, previous.isLowercase || previous.isNumber { out.append("_") }
            out.append(character)
            previous = character
        }
        return out.lowercased()
    }

    public var description: String { name }
}

/// Why something was refused: a code from proto/README.md (a ledger rejection, a lease or an
/// exchange code) and a sentence for the person who asked. A refused transaction or update
/// changes nothing.
public struct Rejection: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: ErrorCode
    public var reason: String

    public init(_ code: ErrorCode, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    public var description: String { "\(code.name): \(reason)" }
}
