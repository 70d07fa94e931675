import ArgumentParser
import Foundation
import NIOCore
import NIOPosix
import RWACommandLine
import RWACrypto
import RWALedger
import RWANode
import RWAWire

struct IdentityCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "identity", abstract: "Register identities and link wallets (trusted claim issuers).",
        subcommands: [Register.self, Link.self])

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Give a wallet a new identity with an ISO 3166 numeric country; prints the identity id.")
        @OptionGroup var options: SubmitOptions
        @Option(help: "The wallet's public key.") var account: String
        @Option(help: "ISO 3166-1 numeric country code, e.g. 840 (US), 826 (GB), 276 (DE).") var country: UInt16

        func run() async throws {
            try await options.submit(
                .registerIdentity(account: try parseAccount(account, "--account"), country: country),
                createdName: "identity")
        }
    }

    struct Link: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add another wallet to an existing identity.")
        @OptionGroup var options: SubmitOptions
        @Option(help: "The wallet's public key.") var account: String
        @Option(help: "Identity id.") var identity: UInt64

        func run() async throws {
            try await options.submit(.linkWallet(account: try parseAccount(account, "--account"), identity: identity))
        }
    }
}

struct ClaimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "claim", abstract: "Add or revoke claims on identities (trusted claim issuers).",
        subcommands: [Add.self, Revoke.self])

    static func topic(_ text: String) throws -> UInt16 {
        guard let topic = ClaimTopic.parse(text) else {
            throw ValidationError("--topic must be kyc, licensed-operator, accredited-investor or a number")
        }
        return topic
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a claim to an identity.")
        @OptionGroup var options: SubmitOptions
        @Option(help: "Identity id.") var identity: UInt64
        @Option(help: "kyc, licensed-operator, accredited-investor, or a topic number.") var topic: String

        func run() async throws {
            try await options.submit(.addClaim(identity: identity, topic: try ClaimCommand.topic(topic)))
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a claim this issuer made.")
        @OptionGroup var options: SubmitOptions
        @Option(help: "Identity id.") var identity: UInt64
        @Option(help: "kyc, licensed-operator, accredited-investor, or a topic number.") var topic: String

        func run() async throws {
            try await options.submit(.revokeClaim(identity: identity, topic: try ClaimCommand.topic(topic)))
        }
    }
}

struct StablecoinCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stablecoin", abstract: "Mint the stablecoin (its issuer).", subcommands: [Mint.self])

    struct Mint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Mint stablecoin base units to an account.")
        @OptionGroup var options: SubmitOptions
        @Option(help: "Receiving public key.") var to: String
        @Option(help: "Amount in base units (decimal).") var amount: String

        func run() async throws {
            try await options.submit(
                .mint(token: 0, to: try parseAccount(to, "--to"), amount: try parseAmount(amount, "--amount")))
        }
    }
}

struct TransferCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transfer", abstract: "Transfer a token from the signer (token 0 is the stablecoin).")
    @OptionGroup var options: SubmitOptions
    @Option(help: "Token id.") var token: UInt64 = 0
    @Option(help: "Receiving public key.") var to: String
    @Option(help: "Amount in base units (decimal).") var amount: String

    func run() async throws {
        try await options.submit(
            .transfer(token: token, to: try parseAccount(to, "--to"), amount: try parseAmount(amount, "--amount")))
    }
}

/// Any holder of a licence token collects its rent here; the lease daemons have their own
/// `claim-rent`, which signs with the daemon's key.
struct ClaimRentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "claim-rent", abstract: "Collect the rent the signer's holding of a licence token has earned.")
    @OptionGroup var options: SubmitOptions
    @Option(help: "Licence token id.") var token: UInt64

    func run() async throws { try await options.submit(.claimRent(token: token)) }
}

struct ResourceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resource", abstract: "Register resources (the regulator).", subcommands: [Register.self])

    struct Register: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a resource's digital twin; a radio-spectrum licence also issues its ownership token.",
            discussion: """
                Kinds: domain-name, ip-address-block, bandwidth, node-resources, computational-power, \
                radio-spectrum, cloud-storage. A licence needs --centre-hz, --width-hz, --country, \
                --valid-from and --valid-until; its token (100 slices, 6 decimals) goes to --owner, who \
                must satisfy the token's rules. A criterion the owner argues differently from Table I is \
                given as SCORE:REASON, SCORE 0-3.
                Example: rwa-arbiter resource register --key chain/regulator.key --owner <hex> \
                --kind radio-spectrum --name "n78 Leeds" --valuation 5000000000 --centre-hz 3500000000 \
                --width-hz 10000000 --country 826 --region Leeds --valid-from 1767225600 --valid-until 1924992000
                """)
        @OptionGroup var options: SubmitOptions
        @Option(help: "Owner's public key.") var owner: String
        @Option(help: "Resource kind.") var kind: String
        @Option(help: "Name.") var name: String
        @Option(help: "Free-form metadata.") var metadata = ""
        @Option(help: "Owner's valuation in stablecoin base units.") var valuation: String
        @Option(help: "SCORE:REASON for intrinsic and stable value.") var intrinsicValue: String?
        @Option(help: "SCORE:REASON for strategic economic scarcity.") var strategicScarcity: String?
        @Option(help: "SCORE:REASON for legal clarity and fungibility.") var legalClarity: String?
        @Option(help: "Licence centre frequency in Hz.") var centreHz: UInt64?
        @Option(help: "Licence width in Hz (a multiple of 200).") var widthHz: UInt64?
        @Option(help: "Licence area: ISO 3166 numeric country.") var country: UInt16?
        @Option(help: "Licence area: region name.") var region = ""
        @Option(help: "Licence start, Unix seconds.") var validFrom: UInt64?
        @Option(help: "Licence end, Unix seconds.") var validUntil: UInt64?
        @Option(help: "Token rule: claims a holder needs (comma-separated).") var requiredClaims = "kyc"
        @Option(help: "Token rule: only these countries may hold (comma-separated numeric codes).")
        var allowedCountries = ""
        @Option(help: "Token rule: these countries may not hold.") var deniedCountries = ""
        @Option(help: "Token rule: most base units per identity (0: no cap).") var maxBalance = "0"
        @Option(help: "Token rule: most holders (0: no cap).") var maxHolders: UInt32 = 0

        static func criterion(_ text: String?, _ name: String) throws -> CriterionScore? {
            guard let text else { return nil }
            let parts = text.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, let score = UInt8(parts[0]), score <= CriterionScore.scoreMax else {
                throw ValidationError("\(name) must be SCORE:REASON with SCORE 0-3")
            }
            return CriterionScore(score: score, reason: String(parts[1]))
        }

        static func list(_ text: String, _ name: String, parse: (String) -> UInt16?) throws -> [UInt16] {
            try text.split(separator: ",").map {
                guard let value = parse(String($0)) else { throw ValidationError("\(name): cannot read '\($0)'") }
                return value
            }
        }

        func run() async throws {
            guard let kind = ResourceKind(name: kind) else {
                throw ValidationError(
                    "--kind must be one of \(ResourceKind.allCases.map(\.name).joined(separator: ", "))")
            }
            var spectrum: SpectrumLicence?
            var compliance: ComplianceRules?
            if kind == .radioSpectrum {
                guard let centreHz, let widthHz, let country, let validFrom, let validUntil else {
                    throw ValidationError(
                        "a radio-spectrum licence needs --centre-hz, --width-hz, --country, --valid-from, --valid-until"
                    )
                }
                spectrum = SpectrumLicence(
                    centreHz: centreHz, widthHz: widthHz, country: country, region: region, validFrom: validFrom,
                    validUntil: validUntil)
                compliance = ComplianceRules(
                    requiredClaims: try Self.list(requiredClaims, "--required-claims", parse: ClaimTopic.parse),
                    allowedCountries: try Self.list(allowedCountries, "--allowed-countries", parse: { UInt16($0) }),
                    deniedCountries: try Self.list(deniedCountries, "--denied-countries", parse: { UInt16($0) }),
                    maxBalancePerIdentity: try parseAmount(maxBalance, "--max-balance"), maxHolders: maxHolders)
            }
            let registration = ResourceRegistration(
                kind: kind, owner: try parseAccount(owner, "--owner"), name: name, metadata: metadata,
                valuation: try parseAmount(valuation, "--valuation"),
                intrinsicValue: try Self.criterion(intrinsicValue, "--intrinsic-value"),
                strategicScarcity: try Self.criterion(strategicScarcity, "--strategic-scarcity"),
                legalClarity: try Self.criterion(legalClarity, "--legal-clarity"), spectrum: spectrum,
                compliance: compliance)
            try await options.submit(.registerResource(registration), createdName: "resource")
        }
    }
}

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "ERC-3643 agent operations on a token (its agents only).",
        subcommands: [
            Mint.self, Burn.self, Freeze.self, Unfreeze.self, FreezePartial.self, UnfreezePartial.self,
            ForceTransfer.self, Recover.self, Pause.self, Unpause.self,
        ])

    struct Target: ParsableArguments {
        @Option(help: "Token id.") var token: UInt64
    }

    struct Mint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mint to an account, within the token's maximum supply.")
        @OptionGroup var options: SubmitOptions
        @OptionGroup var target: Target
        @Option(help: "Receiving public key.") var to: String
        @Option(help: "Amount in base units.") var amount: String
        func run() async throws {
            try await options.submit(
                .mint(
                    token: target.token, to: try parseAccount(to, "--to"), amount: try parseAmount(amount, "--amount")))
        }
    }

    struct Burn: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Burn from an account (frozen units last).")
        @OptionGroup var options: SubmitOptions
        @OptionGroup var target: Target
        @Option(help: "Public key burned from.") var from: String
        @Option(help: "Amount in base units.") var amount: String
        func run() async throws {
            try await options.submit(
                .burn(
                    token: target.token, from: try parseAccount(from, "--from"),
                    amount: try parseAmount(amount, "--amount")))
        }
    }

    struct Freeze: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Freeze a wallet: it can neither send nor receive.")
        @OptionGroup var options: SubmitOptions
        @OptionGroup var target: Target
        @Option(help: "Wallet public key.") var account: String
        func run() async throws {
            try await options.submit(
                .setFrozen(token: target.token, account: try parseAccount(account, "--account"), frozen: true))
        }
    }

    struct Unfreeze: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Unfreeze a wallet.")
        @OptionGroup var options: SubmitOptions
        @OptionGroup var target: Target
        @Option(help: "Wallet public key.") var account: String
        func run() async throws {
            try await options.submit(
                .setFrozen(token: target.token, account: try parseAccount(account, "--account"), frozen: false))
        }
    }

    struct FreezePartial: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Freeze part of a wallet's balance.")
        @OptionGroup var options: SubmitOptions
        @OptionGroup var target: Target
        @Option(help: "Wallet public key.") var account: String
        @Option(help: "Amount in base units.") var amount: String
        func run() async throws {
            try await options.submit(
                .freezePartial(
                    token: target.token, account: try parseAccount(account, "--account"),
                    amount: try parseAmount(amount, "--amount")))
        }
    }

    struct UnfreezePartial: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Release part of a wallet's frozen balance.")
        @OptionGroup var options: SubmitOptions
        @OptionGroup var target: Target
        @Option(help: "Wallet public key.") var account: String
        @Option(help: "Amount in base units.") var amount: String
        func run() async throws {
            try await options.submit(
                .unfreezePartial(
                    token: target.token, account: try parseAccount(account, "--account"),
                    amount: try parseAmount(amount, "--amount")))
        }
    }

    struct ForceTransfer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move tokens between wallets regardless of pause, freezes and compliance modules.")
        @OptionGroup var options: SubmitOptions
        @OptionGroup var target: Target
        @Option(help: "Sending public key.") var from: String
        @Option(help: "Receiving public key (must be verified).") var to: String
        @Option(help: "Amount in base units.") var amount: String
        func run() async throws {
            try await options.submit(
                .forcedTransfer(
                    token: target.token, from: try parseAccount(from, "--from"), to: try parseAccount(to, "--to"),
                    amount: try parseAmount(amount, "--amount")))
        }
    }

    struct Recover: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move a lost wallet's position to a replacement wallet of the same identity.")
        @OptionGroup var options: SubmitOptions
        @OptionGroup var target: Target
        @Option(help: "Lost wallet public key.") var lost: String
        @Option(help: "Replacement wallet public key (link it to the identity first).") var replacement: String
        func run() async throws {
            try await options.submit(
                .recoverWallet(
                    token: target.token, lost: try parseAccount(lost, "--lost"),
                    replacement: try parseAccount(replacement, "--replacement")))
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pause every holder transfer of the token.")
        @OptionGroup var options: SubmitOptions
        @OptionGroup var target: Target
        func run() async throws { try await options.submit(.setPaused(token: target.token, paused: true)) }
    }

    struct Unpause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume transfers.")
        @OptionGroup var options: SubmitOptions
        @OptionGroup var target: Target
        func run() async throws { try await options.submit(.setPaused(token: target.token, paused: false)) }
    }
}
