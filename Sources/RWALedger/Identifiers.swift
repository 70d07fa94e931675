import NIOCore
import RWACrypto
import RWAWire

/// An account is its Ed25519 public key: whoever holds the secret key acts for it.
public typealias AccountID = SigningPublicKey

/// Tokens are numbered by the ledger. Token 0 is the stablecoin named in the genesis; a licence's
/// ownership token takes the number of the licence's resource.
public typealias TokenID = UInt64

/// Identities (ERC-3643's ONCHAINID) and resources are numbered from 1 in the order registered.
public typealias IdentityID = UInt64
public typealias ResourceID = UInt64

/// An ISO 3166-1 numeric country code (1–999): 840 is the United States, 826 the United Kingdom.
public typealias CountryCode = UInt16

/// A claim topic, ERC-735 style. The ledger gives no meaning to a topic beyond "a token may
/// require it"; these are the ones the tools know by name.
public enum ClaimTopic {
    public static let kyc: UInt16 = 1
    public static let licensedOperator: UInt16 = 2
    public static let accreditedInvestor: UInt16 = 3

    public static func name(_ topic: UInt16) -> String {
        switch topic {
        case kyc: return "kyc"
        case licensedOperator: return "licensed-operator"
        case accreditedInvestor: return "accredited-investor"
        default: return "topic-\(topic)"
        }
    }

    public static func parse(_ text: String) -> UInt16? {
        switch text {
        case "kyc": return kyc
        case "licensed-operator": return licensedOperator
        case "accredited-investor": return accreditedInvestor
        default: return UInt16(text)
        }
    }
}

/// Every bound on the ledger's encodings, in one place (proto/README.md, "Ledger limits").
public enum LedgerLimits {
    /// A whole signed transaction. Small enough that a transaction fits in one UDP frame with its
    /// request envelope, so a transaction never needs fragmenting.
    public static let transactionBytesMax = WireLimits.ledgerTransactionBytesMax
    public static let claimIssuersMax = 16
    public static let agentsMax = 8
    public static let countriesMax = 32
    public static let requiredClaimsMax = 8
    public static let claimsPerIdentityMax = 16
    public static let resourceNameBytesMax = 64
    public static let resourceMetadataBytesMax = 256
    public static let reasonBytesMax = 96
    public static let regionBytesMax = 64
    /// Enough for `LIC` and any resource id (20 digits).
    public static let symbolBytesMax = 24
    public static let networkNameBytesMax = 64
}
