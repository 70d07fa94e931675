import Foundation
import RWACommandLine
import RWACrypto
import RWALedger
import RWAWire

/// Each ledger record as a JSON-ready dictionary; the readable text form is derived from it.
enum Describe {
    static func header(_ header: BlockHeader) -> [String: Any] {
        [
            "height": header.height, "hash": "\(header.hash)", "previous_hash": "\(header.previousHash)",
            "transactions_root": "\(header.transactionsRoot)", "time_ms": header.timeMilliseconds,
            "transaction_count": header.transactionCount, "signature": "\(header.signature)",
        ]
    }

    static func transaction(_ committed: CommittedTransaction, height: UInt64?, index: Int?) -> [String: Any] {
        var result: [String: Any] = ["hash": "\(committed.hash)", "created_id": committed.createdID]
        if let height { result["height"] = height }
        if let index { result["index"] = index }
        if let transaction = try? Transaction(decoding: committed.bytes) {
            result["signer"] = "\(transaction.signer)"
            result["sequence"] = transaction.sequence
            result["operation"] = operation(transaction.operation)
        } else {
            result["undecodable"] = committed.bytes.hexString
        }
        return result
    }

    static func operation(_ operation: LedgerOperation) -> [String: Any] {
        var result: [String: Any] = ["type": operation.name]
        switch operation {
        case .transfer(let token, let to, let amount), .mint(let token, let to, let amount):
            result.merge(["token": token, "to": "\(to)", "amount": amount]) { $1 }
        case .burn(let token, let account, let amount), .freezePartial(let token, let account, let amount),
            .unfreezePartial(let token, let account, let amount):
            result.merge(["token": token, "account": "\(account)", "amount": amount]) { $1 }
        case .setFrozen(let token, let account, let frozen):
            result.merge(["token": token, "account": "\(account)", "frozen": frozen]) { $1 }
        case .forcedTransfer(let token, let from, let to, let amount):
            result.merge(["token": token, "from": "\(from)", "to": "\(to)", "amount": amount]) { $1 }
        case .recoverWallet(let token, let lost, let replacement):
            result.merge(["token": token, "lost": "\(lost)", "replacement": "\(replacement)"]) { $1 }
        case .setPaused(let token, let paused):
            result.merge(["token": token, "paused": paused]) { $1 }
        case .setCompliance(let token, let rules):
            result.merge(["token": token, "compliance": compliance(rules)]) { $1 }
        case .registerIdentity(let account, let country):
            result.merge(["account": "\(account)", "country": country]) { $1 }
        case .linkWallet(let account, let identity):
            result.merge(["account": "\(account)", "identity": identity]) { $1 }
        case .addClaim(let identity, let topic), .revokeClaim(let identity, let topic):
            result.merge(["identity": identity, "topic": ClaimTopic.name(topic)]) { $1 }
        case .registerResource(let registration):
            result["resource"] = self.registration(registration)
        case .createPool(let token, let country):
            result.merge(["token": token, "country": country]) { $1 }
        case .addLiquidity(
            let token, let licence, let stablecoin, let licenceMinimum, let stablecoinMinimum, let deadline):
            result.merge([
                "token": token, "licence_desired": licence, "stablecoin_desired": stablecoin,
                "licence_minimum": licenceMinimum, "stablecoin_minimum": stablecoinMinimum, "deadline_ms": deadline,
            ]) { $1 }
        case .removeLiquidity(let token, let shares, let licenceMinimum, let stablecoinMinimum, let deadline):
            result.merge([
                "token": token, "shares": shares, "licence_minimum": licenceMinimum,
                "stablecoin_minimum": stablecoinMinimum, "deadline_ms": deadline,
            ]) { $1 }
        case .swapExactIn(let token, let side, let amountIn, let minimumOut, let deadline):
            result.merge([
                "token": token, "side": "\(side)", "amount_in": amountIn, "minimum_out": minimumOut,
                "deadline_ms": deadline,
            ]) { $1 }
        case .swapExactOut(let token, let side, let amountOut, let maximumIn, let deadline):
            result.merge([
                "token": token, "side": "\(side)", "amount_out": amountOut, "maximum_in": maximumIn,
                "deadline_ms": deadline,
            ]) { $1 }
        case .openChannel(let terms, _, _):
            result.merge(["channel": "\(terms.channelID)", "terms": leaseTerms(terms)]) { $1 }
        case .closeChannel(let state), .challenge(let state):
            result.merge(["channel": "\(state.state.channelID)", "state": channelState(state.state)]) { $1 }
        case .registerState(let channel, let state):
            result["channel"] = "\(channel)"
            result["state"] = state.map { channelState($0.state) } ?? "opening"
        case .settleChannel(let channel):
            result["channel"] = "\(channel)"
        case .claimRent(let token):
            result["token"] = token
        }
        return result
    }

    static func compliance(_ rules: ComplianceRules) -> [String: Any] {
        [
            "required_claims": rules.requiredClaims.map(ClaimTopic.name),
            "allowed_countries": rules.allowedCountries.map { Int($0) },
            "denied_countries": rules.deniedCountries.map { Int($0) },
            "max_balance_per_identity": rules.maxBalancePerIdentity, "max_holders": rules.maxHolders,
        ]
    }

    static func registration(_ registration: ResourceRegistration) -> [String: Any] {
        let assessment = registration.assessment
        func criterion(_ score: CriterionScore) -> [String: Any] { ["score": score.score, "reason": score.reason] }
        var result: [String: Any] = [
            "kind": registration.kind.name, "owner": "\(registration.owner)", "name": registration.name,
            "metadata": registration.metadata, "valuation": registration.valuation,
            "assessment": [
                "intrinsic_value": criterion(assessment.intrinsicValue),
                "strategic_scarcity": criterion(assessment.strategicScarcity),
                "legal_clarity": criterion(assessment.legalClarity),
            ],
        ]
        if let spectrum = registration.spectrum {
            result["spectrum"] =
                [
                    "centre_hz": spectrum.centreHz, "width_hz": spectrum.widthHz, "country": spectrum.country,
                    "region": spectrum.region, "valid_from": spectrum.validFrom, "valid_until": spectrum.validUntil,
                    "slice_width_hz": spectrum.sliceWidthHz,
                    "slices": (0..<SpectrumLicence.sliceCount).map { index -> [String: Any] in
                        let slice = spectrum.slice(index)
                        return ["index": index, "low_hz": slice.lowHz, "high_hz": slice.highHz]
                    },
                ] as [String: Any]
        }
        if let rules = registration.compliance { result["compliance"] = compliance(rules) }
        return result
    }

    static func leaseTerms(_ terms: LeaseTerms) -> [String: Any] {
        [
            "lessor": "\(terms.lessor)", "lessee": "\(terms.lessee)", "licence": terms.licence,
            "first_slice": terms.firstSlice, "slice_count": terms.sliceCount, "start_seconds": terms.startSeconds,
            "hours": terms.hours, "period_seconds": terms.periodSeconds, "rate_per_slice_hour": terms.ratePerSliceHour,
            "deposit": terms.deposit, "payment_increment": terms.paymentIncrement,
            "challenge_period_ms": terms.challengePeriodMilliseconds, "nonce": terms.nonce,
        ]
    }

    static func channelState(_ state: ChannelState) -> [String: Any] {
        [
            "nonce": state.nonce, "paid": state.paid, "paid_through_seconds": state.paidThroughSeconds,
            "final": state.final,
        ]
    }

    static func record(_ record: StateRecord) -> [String: Any] {
        switch record {
        case .counters(let nextIdentity, let nextResource):
            return ["next_identity": nextIdentity, "next_resource": nextResource]
        case .account(let account):
            var result: [String: Any] = ["next_sequence": account.nextSequence]
            if let identity = account.identity { result["identity"] = identity }
            return result
        case .identity(let identity):
            return [
                "id": identity.id, "country": identity.country,
                "claims": identity.claims.map { ["topic": ClaimTopic.name($0.topic), "issuer": "\($0.issuer)"] },
            ]
        case .token(let token):
            var result: [String: Any] = [
                "id": token.id,
                "kind": ["stablecoin", "licence-ownership", "pool-share"][Int(token.kind.rawValue) - 1],
                "symbol": token.symbol, "decimals": token.decimals, "agents": token.agents.map { "\($0)" },
                "paused": token.paused, "total_supply": token.totalSupply, "max_supply": token.maxSupply,
            ]
            if let rules = token.compliance { result["compliance"] = compliance(rules) }
            if let resource = token.resource { result["resource"] = resource }
            return result
        case .holding(let holding):
            return [
                "balance": holding.balance, "frozen_amount": holding.frozenAmount, "frozen": holding.frozen,
                "free_balance": holding.freeBalance,
            ]
        case .resource(let resource):
            var result: [String: Any] = [
                "id": resource.id, "registrar": "\(resource.registrar)",
                "registered_at_height": resource.registeredAtHeight,
            ]
            result.merge(registration(resource.registration)) { $1 }
            if let token = resource.token { result["token"] = token }
            return result
        case .pool(let pool):
            return [
                "token": pool.token, "share_token": pool.shareToken, "account": "\(pool.account)",
                "licence_reserve": pool.licenceReserve, "stablecoin_reserve": pool.stablecoinReserve,
                "total_shares": pool.market.totalShares, "last_timestamp": pool.market.lastTimestampSeconds,
                "licence_price_cumulative": "\(pool.market.price0Cumulative)",
                "stablecoin_price_cumulative": "\(pool.market.price1Cumulative)",
            ]
        case .channel(let channel):
            return [
                "channel": "\(channel.id)",
                "status": ["open", "disputed", "settled"][Int(channel.status.rawValue) - 1],
                "terms": leaseTerms(channel.terms), "nonce": channel.nonce, "paid": channel.paid,
                "paid_through_seconds": channel.paidThroughSeconds,
                "challenge_deadline_ms": channel.challengeDeadlineMilliseconds,
            ]
        case .leasedSliceHour(let channel):
            return ["channel": "\(channel)"]
        case .rentIndex(let index):
            return ["per_unit": "\(index.perUnit)", "remainder": index.remainder, "distributed": index.distributed]
        case .rentPosition(let position):
            return ["index": "\(position.index)", "accrued": position.accrued]
        }
    }

    /// Indented `key: value` lines, nested dictionaries one level deeper.
    static func text(_ value: [String: Any], indent: String = "") -> String {
        var lines: [String] = []
        for key in value.keys.sorted() {
            switch value[key]! {
            case let nested as [String: Any]:
                lines.append("\(indent)\(key):")
                lines.append(text(nested, indent: indent + "  "))
            case let array as [Any] where array.isEmpty:
                lines.append("\(indent)\(key): none")
            case let array as [[String: Any]]:
                lines.append("\(indent)\(key): \(array.count)")
                for item in array { lines.append(indent + "  - " + JSON.render(item)) }
            case let array as [Any]:
                lines.append("\(indent)\(key): " + array.map { JSON.render($0) }.joined(separator: ", "))
            case let amount as UInt128:
                lines.append("\(indent)\(key): \(amount)")
            case let other:
                lines.append("\(indent)\(key): \(other)")
            }
        }
        return lines.joined(separator: "\n")
    }
}
