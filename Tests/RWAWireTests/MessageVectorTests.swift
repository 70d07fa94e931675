// Goal: every session-layer message has one canonical encoding, pinned by the hex vectors in
// proto/vectors/messages.json and checked both ways; every malformed input is a typed error.
// Method: build each message from fixed inputs, compare its bytes with the file; decode each file
// vector and compare with the built message; decode every invalid vector and check its error class.
import Foundation
import NIOCore
import RWACrypto
import RWAMarket
import RWATestSupport
import XCTest

@testable import RWAWire

enum Fixtures {
    static let initiator = try! SigningKeyPair(seed: [UInt8](repeating: 0x01, count: 32))
    static let responder = try! SigningKeyPair(seed: [UInt8](repeating: 0x02, count: 32))
    static let initiatorEphemeral = try! KeyExchangeKeyPair(seed: [UInt8](repeating: 0x03, count: 32))
    static let responderEphemeral = try! KeyExchangeKeyPair(seed: [UInt8](repeating: 0x04, count: 32))
    static let chain = ChainIDs.devnet
    /// A signature over a fixed string, standing in where a message vector needs one; the
    /// handshake vectors (RWANodeTests) carry the real transcript signatures.
    static let placeholderSignature = responder.sign(
        Array("vector".utf8), domain: SignatureDomain(tag: "rwanet/vector", chainID: chain))

    /// Lease terms between the responder (lessor) and the initiator (lessee) on the devnet: slices
    /// 10–11 of licence 1 for 4 hours from 2027-01-15T08:00Z at 1,000 per slice-hour.
    static let terms = LeaseTerms(
        chainID: chain, lessor: responder.publicKey, lessee: initiator.publicKey, licence: 1, firstSlice: 10,
        sliceCount: 2, startSeconds: 1_800_000_000, hours: 4, periodSeconds: 3_600, ratePerSliceHour: 1_000,
        deposit: 6_000, paymentIncrement: 500, challengePeriodMilliseconds: 60_000, nonce: 7)
    static let leaseState = ChannelState(
        channelID: terms.channelID, nonce: 3, paid: 1_500, paidThroughSeconds: 1_800_002_700, final: false)

    static let note = SignedNote(
        signedBy: initiator, chainID: chain, number: 42, body: Array("lease slice 17, 14:00-15:00".utf8))

    /// Every valid vector: name, description, message.
    static let messages: [(String, String, Message)] = [
        (
            "hello", "initiator identity seed 0x01*32, ephemeral seed 0x03*32, no features, devnet chain",
            .hello(
                Hello(
                    protocolVersion: 1, features: FeatureBits(), chainID: chain, identity: initiator.publicKey,
                    ephemeralKey: initiatorEphemeral.publicKey))
        ),
        (
            "hello_with_features", "as hello, with optional feature bits 1 and 9 set",
            .hello(
                Hello(
                    protocolVersion: 1, features: FeatureBits([1, 9]), chainID: chain, identity: initiator.publicKey,
                    ephemeralKey: initiatorEphemeral.publicKey))
        ),
        (
            "hello_reply",
            "responder identity seed 0x02*32, ephemeral seed 0x04*32; the signature is a placeholder (see handshake.json for a real one)",
            .helloReply(
                HelloReply(
                    protocolVersion: 1, features: FeatureBits(), identity: responder.publicKey,
                    ephemeralKey: responderEphemeral.publicKey, signature: placeholderSignature))
        ),
        (
            "hello_finish", "placeholder signature",
            .helloFinish(HelloFinish(signature: placeholderSignature))
        ),
        (
            "error", "code malformed_frame with a reason",
            .error(ErrorReport(code: .malformedFrame, text: "truncated hello.identity: needs 32 bytes, 3 available"))
        ),
        (
            "warning", "code overloaded, non-ASCII UTF-8 reason",
            .warning(ErrorReport(code: .overloaded, text: "slow down — inbox full"))
        ),
        (
            "ping", "nonce 0x0102030405060708 with 4 bytes of padding",
            .ping(Ping(nonce: 0x0102_0304_0506_0708, padding: [0, 0, 0, 0]))
        ),
        (
            "pong", "nonce 0x0102030405060708",
            .pong(Pong(nonce: 0x0102_0304_0506_0708))
        ),
        (
            "signed_note", "note 42 by the initiator identity, not a reply, signed for the devnet chain",
            .signedNote(note)
        ),
        (
            "signed_note_reply",
            "answer to signed_note by the responder identity: in_reply_to is BLAKE2b-256 of signed_note's frame",
            .signedNote(
                SignedNote(
                    signedBy: responder, chainID: chain, number: 42, inReplyTo: note.hash, body: Array("ack".utf8)))
        ),
        // Arbiter messages: transactions, headers and state records travel as opaque bytes here;
        // their layouts have their own vectors in proto/vectors/ledger.json.
        (
            "submit_transaction", "request 7 carrying 4 placeholder transaction bytes",
            .arbiter(.submitTransaction(requestID: 7, transaction: [0xde, 0xad, 0xbe, 0xef]))
        ),
        ("get_state", "request 8 for the counters record (key 0x00)", .arbiter(.getState(requestID: 8, key: [0x00]))),
        ("get_block", "request 9 for height 3", .arbiter(.getBlock(requestID: 9, height: 3))),
        (
            "get_transaction", "request 10 for a hash of 0x11 bytes",
            .arbiter(.getTransaction(requestID: 10, hash: try! Digest32(bytes: [UInt8](repeating: 0x11, count: 32))))
        ),
        ("subscribe_blocks", "from height 5", .arbiter(.subscribeBlocks(requestID: 11, fromHeight: 5))),
        ("get_status", "request 12", .arbiter(.getStatus(requestID: 12))),
        (
            "transaction_receipt", "request 7: block 3, index 2, created id 0",
            .arbiter(
                .transactionReceipt(
                    requestID: 7, hash: try! Digest32(bytes: [UInt8](repeating: 0x22, count: 32)), height: 3, index: 2,
                    createdID: 0))
        ),
        (
            "transaction_rejected", "request 7: insufficient_balance",
            .arbiter(
                .transactionRejected(
                    requestID: 7, hash: try! Digest32(bytes: [UInt8](repeating: 0x22, count: 32)),
                    code: .insufficientBalance, reason: "free balance 5, sends 9"))
        ),
        (
            "state_answer_found", "request 8: the counters record",
            .arbiter(.stateAnswer(requestID: 8, key: [0x00], value: [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]))
        ),
        (
            "state_answer_missing", "request 8: no such record",
            .arbiter(.stateAnswer(requestID: 8, key: [0x02, 0, 0, 0, 0, 0, 0, 0, 9], value: nil))
        ),
        (
            "block_answer_missing", "request 9: no block at that height",
            .arbiter(.blockAnswer(requestID: 9, header: nil))
        ),
        (
            "transaction_answer", "request 10: found at block 3, index 2",
            .arbiter(
                .transactionAnswer(
                    requestID: 10,
                    found: CommittedTransactionInfo(height: 3, index: 2, createdID: 1, transaction: [0xde, 0xad])))
        ),
        (
            "status_answer", "request 12: height 3 on the devnet chain",
            .arbiter(
                .statusAnswer(
                    requestID: 12, chainID: chain, height: 3,
                    tipHash: try! Digest32(bytes: [UInt8](repeating: 0x33, count: 32)),
                    tipTimeMilliseconds: 1_767_225_600_000))
        ),
        (
            "request_failed", "request 8: bad_query",
            .arbiter(.requestFailed(requestID: 8, code: .badQuery, reason: "not a state key"))
        ),
        (
            "block_committed", "event (request id 0) with 3 placeholder header bytes",
            .arbiter(.blockCommitted(header: [1, 2, 3]))
        ),
        (
            "transaction_committed", "event: block 3, index 0, created id 0",
            .arbiter(
                .transactionCommitted(
                    CommittedTransactionInfo(height: 3, index: 0, createdID: 0, transaction: [0xde, 0xad])))
        ),
        (
            "exchange_quote", "request 20: buy licence units of token 1 with exactly 1,000,000 stablecoin units",
            .exchange(.quote(requestID: 20, token: 1, side: 1, exactOutput: false, amount: 1_000_000))
        ),
        (
            "exchange_get_market", "request 21: token 1, an hour's average, depth for two sizes",
            .exchange(.getMarket(requestID: 21, token: 1, twapSeconds: 3600, sizes: [1_000_000, 10_000_000]))
        ),
        (
            "exchange_get_trades", "request 22: the last 10 trades of token 1",
            .exchange(.getTrades(requestID: 22, token: 1, limit: 10))
        ),
        (
            "exchange_submit_order", "request 23 with 4 placeholder transaction bytes",
            .exchange(.submitOrder(requestID: 23, transaction: [0xde, 0xad, 0xbe, 0xef]))
        ),
        (
            "exchange_quote_answer",
            "at height 9: 1,000,000 in, 9,871 out; nothing expected (no liquidity after 2 in flight)",
            .exchange(
                .quoteAnswer(
                    requestID: 20, height: 9, confirmed: SwapAmounts(amountIn: 1_000_000, amountOut: 9_871),
                    expected: nil, ordersInFlight: 2))
        ),
        (
            "exchange_market_answer",
            "height 9: reserves, an average price of exactly 100 (100 << 112), one depth level",
            .exchange(
                .marketAnswer(
                    requestID: 21,
                    market: MarketData(
                        height: 9, timeMilliseconds: 1_767_225_601_000, licenceReserve: 40_000_000,
                        stablecoinReserve: 4_000_000_000, totalShares: 400_000_000, twapSeconds: 3600,
                        twap: UInt256(high: 0, low: 100).shiftedLeft(by: 112),
                        depth: [DepthLevel(size: 1_000_000, buyCost: 102_871_331, sellProceeds: 97_319_773)])))
        ),
        (
            "exchange_trades_answer", "one trade: block 9 index 0, a buy by the initiator",
            .exchange(
                .tradesAnswer(
                    requestID: 22,
                    trades: [
                        TradeRecord(
                            height: 9, index: 0, hash: try! Digest32(bytes: [UInt8](repeating: 0x22, count: 32)),
                            trader: initiator.publicKey, side: 1, amountIn: 1_000_000, amountOut: 9_871)
                    ]))
        ),
        (
            "exchange_order_filled", "swap_exact_in (0x33) in block 9 at index 0",
            .exchange(
                .orderFilled(
                    requestID: 23,
                    fill: OrderFill(
                        hash: try! Digest32(bytes: [UInt8](repeating: 0x22, count: 32)), height: 9, index: 0,
                        operation: 0x33, licence: 9_871, stablecoin: 1_000_000, shares: 0)))
        ),
        (
            "exchange_order_rejected", "price_limit (0x011B)",
            .exchange(
                .orderRejected(
                    requestID: 23, hash: try! Digest32(bytes: [UInt8](repeating: 0x22, count: 32)), code: .priceLimit,
                    reason: "the pool gives 9871, below the minimum out 10000"))
        ),
        (
            "exchange_failed", "unknown_pool (0x0119)",
            .exchange(.failed(requestID: 20, code: .unknownPool, reason: "no pool for token 9"))
        ),
        (
            "lease_open_request",
            "Fixtures.terms, signed by the lessee (initiator key) with the tag rwanet/lease-terms",
            .lease(
                .openRequest(
                    requestID: 1, terms: terms,
                    lesseeSignature: initiator.sign(terms.encoded, domain: terms.signatureDomain)))
        ),
        (
            "lease_open_accept", "the lessor's (responder key) signature over Fixtures.terms",
            .lease(
                .openAccept(
                    requestID: 1, channelID: terms.channelID,
                    lessorSignature: responder.sign(terms.encoded, domain: terms.signatureDomain)))
        ),
        (
            "lease_open_refused", "not_offered (0x020C)",
            .lease(
                .openRefused(
                    requestID: 1, channelID: terms.channelID, code: .notOffered, reason: "slices 10-11 are leased"))
        ),
        (
            "lease_update", "state 3 (1,500 paid, through 1800002700), signed by the lessee",
            .lease(
                .update(
                    requestID: 3, state: leaseState, signature: leaseState.signed(by: initiator, chainID: chain)))
        ),
        (
            "lease_countersign", "the lessor's signature over state 3",
            .lease(
                .countersign(
                    requestID: 3, channelID: terms.channelID, nonce: 3,
                    signature: leaseState.signed(by: responder, chainID: chain)))
        ),
        (
            "lease_update_refused", "payment_decreased (0x0205)",
            .lease(
                .updateRefused(
                    requestID: 4, channelID: terms.channelID, nonce: 4, code: .paymentDecreased,
                    reason: "paid 1000 is below 1500"))
        ),
        (
            "lease_reestablish", "holding state 3",
            .lease(.reestablish(requestID: 0, channelID: terms.channelID, nonce: 3))
        ),
        (
            "lease_latest_state", "state 3 co-signed: the lessor's signature, then the lessee's",
            .lease(
                .latestState(
                    requestID: 0,
                    state: CoSignedState(
                        state: leaseState, lessorSignature: leaseState.signed(by: responder, chainID: chain),
                        lesseeSignature: leaseState.signed(by: initiator, chainID: chain))))
        ),
        ("lease_get_offers", "a lessee asking a lessor's offers", .lease(.getOffers(requestID: 5))),
        (
            "lease_offers",
            "one offer (licence 1, slices 0-49, at least 1,000 per slice-hour, at most 720 hours) and the lease of Fixtures.terms taken",
            .lease(
                .offers(
                    requestID: 5,
                    offers: [
                        LeaseOffer(licence: 1, firstSlice: 0, sliceCount: 50, ratePerSliceHour: 1_000, maxHours: 720)
                    ],
                    taken: [LeasedRange(terms)]))
        ),
    ]

    /// Every invalid vector: name, description, frame bytes, error class.
    static var invalid: [(String, String, [UInt8], String)] {
        let hello = messages[0].2.frameBytes()
        let pong = Message.pong(Pong(nonce: 1)).frameBytes()
        var leadingZeroFeatures = [UInt8](hello.prefix(4))  // type, version
        leadingZeroFeatures += [0x00, 0x02, 0x00, 0x02]  // features: 2 bytes, first zero
        leadingZeroFeatures += hello.dropFirst(6)
        var badUTF8 = Message.error(ErrorReport(code: .malformedFrame, text: "ab")).frameBytes()
        badUTF8[badUTF8.count - 1] = 0xff
        var pingTooLong: [UInt8] = [0x00, 0x22] + [UInt8](repeating: 0, count: 8) + [0x04, 0x01]
        pingTooLong += [UInt8](repeating: 0, count: 1025)
        let status = Message.arbiter(.getStatus(requestID: 1)).frameBytes()
        let event = Message.arbiter(.blockCommitted(header: [1, 2, 3])).frameBytes()
        var nonZeroEventID = event
        nonZeroEventID[9] = 1
        return [
            ("truncated_hello", "hello without its last byte", Array(hello.dropLast()), "truncated"),
            (
                "get_status_trailing_byte", "get_status with one byte after its request id", status + [0],
                "trailing_bytes"
            ),
            (
                "event_with_request_id", "block_committed whose request id is 1 (events carry 0)", nonZeroEventID,
                "invalid_value"
            ),
            ("empty_frame", "no type at all", [], "truncated"),
            ("trailing_byte", "pong followed by one extra byte", pong + [0], "trailing_bytes"),
            (
                "features_leading_zero", "hello whose feature bits start with a zero byte", leadingZeroFeatures,
                "non_canonical"
            ),
            ("error_bad_utf8", "error whose text is not UTF-8", badUTF8, "invalid_value"),
            (
                "ping_padding_too_long", "ping with 1025 bytes of padding (maximum 1024)", pingTooLong,
                "length_above_maximum"
            ),
            (
                "exchange_quote_side_3", "exchange_quote whose side is 3 (1 buy, 2 sell)",
                {
                    var frame = Message.exchange(
                        .quote(requestID: 20, token: 1, side: 1, exactOutput: false, amount: 1)
                    ).frameBytes()
                    frame[2 + 8 + 8] = 3
                    return frame
                }(), "invalid_value"
            ),
            (
                "lease_offers_9_offers", "lease_offers announcing 9 offers (at most 8)",
                Array(Message.lease(.offers(requestID: 5, offers: [], taken: [])).frameBytes().prefix(10)) + [9, 0],
                "length_above_maximum"
            ),
            (
                "exchange_get_trades_limit_11", "exchange_get_trades asking for 11 trades (at most 10)",
                Message.exchange(.getTrades(requestID: 22, token: 1, limit: 10)).frameBytes().dropLast() + [11],
                "length_above_maximum"
            ),
            (
                "lease_update_final_2", "lease_update whose final flag is 2 (a bool is 0 or 1)",
                {
                    var frame = Message.lease(
                        .update(requestID: 3, state: leaseState, signature: placeholderSignature)
                    ).frameBytes()
                    frame[2 + 8 + 64] = 2
                    return frame
                }(), "non_canonical"
            ),
            (
                "lease_open_request_truncated", "lease_open_request without the last byte of its signature",
                Array(messages.first { $0.0 == "lease_open_request" }!.2.frameBytes().dropLast()), "truncated"
            ),
            (
                "unknown_even_type", "type 0x0800 (unassigned): required, so fatal",
                [0x08, 0x00, 0xaa], "unknown_required_type"
            ),
        ]
    }
}

final class MessageVectorTests: XCTestCase {
    func built() -> VectorFile {
        VectorFile(
            valid: Fixtures.messages.map { .init(name: $0.0, description: $0.1, hex: $0.2.frameBytes().hexString) },
            invalid: Fixtures.invalid.map { .init(name: $0.0, description: $0.1, hex: $0.2.hexString, error: $0.3) })
    }

    func testVectorsBothWays() throws {
        let expected = built()
        if VectorFile.writing { try expected.write("messages.json") }
        let file = try VectorFile.load("messages.json")
        XCTAssertEqual(file.valid.map(\.name), expected.valid.map(\.name))
        for (vector, (name, _, message)) in zip(file.valid, Fixtures.messages) {
            // Encode: the message built from its inputs has exactly the file's bytes.
            XCTAssertEqual(message.frameBytes().hexString, vector.hex, name)
            // Decode: the file's bytes give back exactly that message.
            let decoded = try Message.decode(frame: ByteBuffer(bytes: [UInt8](hex: vector.hex)!))
            XCTAssertEqual(decoded, message, name)
        }
        XCTAssertEqual(file.invalid.map(\.name), expected.invalid.map(\.name))
        XCTAssertEqual(
            file.invalid.map(\.hex), expected.invalid.map(\.hex),
            "the invalid vectors are the inputs the fixtures build")
        for vector in file.invalid {
            XCTAssertThrowsError(try Message.decode(frame: ByteBuffer(bytes: [UInt8](hex: vector.hex)!)), vector.name) {
                error in
                XCTAssertEqual((error as? WireError)?.className, vector.error, "\(vector.name): \(error)")
            }
        }
    }

    func testSignedNotesVerifyAndTamperingIsDetected() throws {
        XCTAssertTrue(Fixtures.note.hasValidSignature(chainID: Fixtures.chain))
        XCTAssertFalse(Fixtures.note.hasValidSignature(chainID: Blake2b.hash256([1])), "another chain")
        var tampered = Fixtures.note
        tampered.number += 1
        XCTAssertFalse(tampered.hasValidSignature(chainID: Fixtures.chain))
        tampered = Fixtures.note
        tampered.author = Fixtures.responder.publicKey
        XCTAssertFalse(tampered.hasValidSignature(chainID: Fixtures.chain))
    }

    func testUnknownOddTypeIsIgnoredAndEvenIsFatal() throws {
        XCTAssertEqual(
            try Message.decode(frame: ByteBuffer(bytes: [0x08, 0x01, 1, 2, 3])), .ignored(MessageType(rawValue: 0x0801))
        )
        XCTAssertThrowsError(try Message.decode(frame: ByteBuffer(bytes: [0x08, 0x00, 1, 2, 3]))) {
            XCTAssertEqual($0 as? WireError, .unknownRequiredType(0x0800))
            XCTAssertEqual(($0 as? WireError)?.code, .unknownRequiredMessage)
        }
    }

    /// Every prefix and every one-byte extension of every valid vector is refused with a typed
    /// error (or, for prefixes that happen to be whole messages, decodes canonically) and never crashes.
    func testEveryTruncationAndExtensionIsATypedError() throws {
        for (name, _, message) in Fixtures.messages {
            let bytes = message.frameBytes()
            for cut in 0..<bytes.count {
                do {
                    let decoded = try Message.decode(frame: ByteBuffer(bytes: bytes.prefix(cut)))
                    XCTAssertEqual(
                        decoded.frameBytes(), Array(bytes.prefix(cut)), "\(name) prefix \(cut) decoded non-canonically")
                } catch {
                    // The decoder throws only `WireError` (typed throws); a cut one must say "truncated".
                    guard case .truncated = error else {
                        return XCTFail("\(name) prefix \(cut): \(error), not a truncation")
                    }
                    XCTAssertEqual(error.code, .malformedFrame, "\(name) prefix \(cut)")
                }
            }
            do {
                _ = try Message.decode(frame: ByteBuffer(bytes: bytes + [0]))
                XCTFail("\(name) with a byte more decoded")
            } catch {
                guard case .trailingBytes(_, 1) = error else { return XCTFail("\(name) with a byte more: \(error)") }
            }
        }
    }

    func testFeatureBitsEncodeCanonicallyAndFlagUnknownRequired() throws {
        var buffer = ByteBuffer()
        buffer.writeFeatures(FeatureBits([0, 9]))
        XCTAssertEqual(Array(buffer.readableBytesView), [0x00, 0x02, 0x02, 0x01])
        XCTAssertEqual(try buffer.readFeatures(field: "f"), FeatureBits([0, 9]))
        XCTAssertEqual(FeatureBits([0, 3, 8]).unknownRequired(known: [0]), [8])
        XCTAssertEqual(FeatureBits([1, 3]).unknownRequired(known: []), [], "odd bits are optional")
    }
}

final class RecordTests: XCTestCase {
    func testHugeLengthIsRefusedBeforeAnyPayloadArrives() {
        let buffer = ByteBuffer(bytes: [0xff, 0xff, 0xff, 0xff])
        XCTAssertThrowsError(try TCPRecord.peekPayloadLength(buffer)) {
            XCTAssertEqual(
                $0 as? WireError, .recordTooLarge(length: 0xffff_ffff, maximum: WireLimits.tcpRecordBytesMax))
        }
        XCTAssertThrowsError(try TCPRecord.peekPayloadLength(ByteBuffer(bytes: [0, 0, 0, 1])))
        XCTAssertNil(try TCPRecord.peekPayloadLength(ByteBuffer(bytes: [0, 0, 1])))
    }

    func testRecordsAreSplitWholeOnly() throws {
        var buffer = ByteBuffer(bytes: [0, 0, 0, 3, 0x00, 0x23, 0x01, 0, 0, 0, 2, 0x00])
        XCTAssertEqual(try TCPRecord.readPayload(&buffer), ByteBuffer(bytes: [0x00, 0x23, 0x01]))
        XCTAssertNil(try TCPRecord.readPayload(&buffer), "second record incomplete")
        buffer.writeBytes([0x21])
        XCTAssertEqual(try TCPRecord.readPayload(&buffer), ByteBuffer(bytes: [0x00, 0x21]))
    }

    func testLimitsRelate() {
        XCTAssertEqual(WireLimits.udpFrameBytesMax, 1200 - 9 - 24 - 16)
        // The largest signed note fits one UDP datagram.
        let largestNote = 2 + 32 + 8 + 32 + 2 + WireLimits.noteBodyBytesMax + 64
        XCTAssertLessThanOrEqual(largestNote, WireLimits.udpFrameBytesMax)
        XCTAssertLessThanOrEqual(WireLimits.udpFrameBytesMax, WireLimits.frameBytesMax)
        XCTAssertEqual(WireLimits.tcpRecordBytesMax, WireLimits.frameBytesMax + WireLimits.aeadTagBytes)
    }
}

/// Random bytes from a fresh, printed seed: every decoder either decodes canonically or throws a
/// `WireError`, never traps; a frame of an unassigned odd type is ignored and one of an even type
/// is refused with `unknownRequiredType`, whatever its body.
final class RandomInputTests: XCTestCase {
    func testRandomFramesAndPacketsNeverCrashTheDecoders() {
        let seed = testSeed()
        var random = SplitMix(seed: seed)
        let types: [UInt16] = [0x0010, 0x0012, 0x0014, 0x0020, 0x0021, 0x0022, 0x0023, 0x0030, 0x0102, 0x0103]
        var decoded = 0
        var ignored = 0
        var refusedAsUnknown = 0
        for iteration in 0..<50_000 {
            let length = Int(random.next() % 200)
            var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            if bytes.count >= 2 && random.next() % 2 == 0 {  // a known type, so the field decoders run
                let type = types[Int(random.next() % UInt64(types.count))]
                bytes[0] = UInt8(type >> 8)
                bytes[1] = UInt8(type & 0xff)
            }
            let context = "iteration \(iteration), seed \(seed), bytes \(bytes.hexString)"
            let type = bytes.count >= 2 ? MessageType(rawValue: UInt16(bytes[0]) << 8 | UInt16(bytes[1])) : nil
            let unassigned = type.map { $0.family == .unassigned || $0.family == .privateUse } ?? false
            do {
                let message = try Message.decode(frame: ByteBuffer(bytes: bytes))
                if case .ignored(let ignoredType) = message {
                    XCTAssertEqual(ignoredType, type, context)
                    XCTAssertFalse(ignoredType.isRequired, "only an odd type may be ignored: \(context)")
                    ignored += 1
                } else {
                    XCTAssertFalse(unassigned, "an unassigned type decoded as a message: \(context)")
                    XCTAssertEqual(message.frameBytes(), bytes, "decoded, so canonical: \(context)")
                    decoded += 1
                }
            } catch {
                if unassigned, let type {
                    XCTAssertTrue(type.isRequired, "an unassigned odd type must be ignored, not refused: \(context)")
                    XCTAssertEqual(error, .unknownRequiredType(type.rawValue), context)
                    refusedAsUnknown += 1
                }
            }
            var record = ByteBuffer(bytes: bytes)
            _ = try? TCPRecord.readPayload(&record)
            _ = try? UDPSealedContent.decode(
                kind: random.next() % 2 == 0 ? .data : .ack, plaintext: ByteBuffer(bytes: bytes))
        }
        XCTAssertGreaterThan(ignored, 1_000, "random unassigned odd types were ignored (seed \(seed))")
        XCTAssertGreaterThan(refusedAsUnknown, 1_000, "random unassigned even types were refused (seed \(seed))")
        XCTAssertGreaterThan(decoded, 0, "some random frames of known types decode (seed \(seed))")
    }
}

/// The relations between the limits: every message of every family, at the largest its limits
/// allow, fits one UDP frame, so no message ever needs fragmenting. A limit raised past that
/// fails here, not in a peer that cannot send its answer.
final class LimitRelationTests: XCTestCase {
    func testEveryMessageAtItsLargestFitsOneUDPFrame() throws {
        let digest = try Digest32(bytes: [UInt8](repeating: 0xab, count: 32))
        let key = SigningKeyPair.generate().publicKey
        let text = String(repeating: "x", count: WireLimits.errorTextBytesMax)
        let transaction = [UInt8](repeating: 1, count: WireLimits.ledgerTransactionBytesMax)
        let header = [UInt8](repeating: 2, count: WireLimits.blockHeaderBytesMax)
        let stateKey = [UInt8](repeating: 3, count: WireLimits.stateKeyBytesMax)
        let info = CommittedTransactionInfo(height: .max, index: .max, createdID: .max, transaction: transaction)
        let amounts = SwapAmounts(amountIn: .max, amountOut: .max)
        let largest: [Message] = [
            .error(ErrorReport(code: .closed, text: text)),
            .warning(ErrorReport(code: .closed, text: text)),
            .ping(Ping(nonce: .max, padding: [UInt8](repeating: 0, count: WireLimits.pingPaddingBytesMax))),
            .signedNote(
                SignedNote(
                    signedBy: .generate(), chainID: ChainIDs.devnet, number: .max,
                    body: [UInt8](repeating: 4, count: WireLimits.noteBodyBytesMax))),
            .arbiter(.submitTransaction(requestID: .max, transaction: transaction)),
            .arbiter(.getState(requestID: .max, key: stateKey)),
            .arbiter(.transactionRejected(requestID: .max, hash: digest, code: .closed, reason: text)),
            .arbiter(
                .stateAnswer(
                    requestID: .max, key: stateKey,
                    value: [UInt8](repeating: 5, count: WireLimits.stateValueBytesMax))),
            .arbiter(.blockAnswer(requestID: .max, header: header)),
            .arbiter(.transactionAnswer(requestID: .max, found: info)),
            .arbiter(.requestFailed(requestID: .max, code: .closed, reason: text)),
            .arbiter(.blockCommitted(header: header)),
            .arbiter(.transactionCommitted(info)),
            .exchange(.submitOrder(requestID: .max, transaction: transaction)),
            .exchange(
                .getMarket(
                    requestID: .max, token: .max, twapSeconds: .max,
                    sizes: [UInt128](repeating: .max, count: WireLimits.depthSizesMax))),
            .exchange(
                .quoteAnswer(
                    requestID: .max, height: .max, confirmed: amounts, expected: amounts, ordersInFlight: .max)),
            .exchange(
                .marketAnswer(
                    requestID: .max,
                    market: MarketData(
                        height: .max, timeMilliseconds: .max, licenceReserve: .max, stablecoinReserve: .max,
                        totalShares: .max,
                        twapSeconds: .max, twap: UInt256(high: .max, low: .max),
                        depth: [DepthLevel](
                            repeating: DepthLevel(size: .max, buyCost: .max, sellProceeds: .max),
                            count: WireLimits.depthSizesMax)))),
            .exchange(
                .tradesAnswer(
                    requestID: .max,
                    trades: [TradeRecord](
                        repeating: TradeRecord(
                            height: .max, index: .max, hash: digest, trader: key, side: 1, amountIn: .max,
                            amountOut: .max),
                        count: WireLimits.tradesPerAnswerMax))),
            .exchange(
                .orderFilled(
                    requestID: .max,
                    fill: OrderFill(
                        hash: digest, height: .max, index: .max, operation: 0x33, licence: .max, stablecoin: .max,
                        shares: .max))),
            .exchange(.orderRejected(requestID: .max, hash: digest, code: .closed, reason: text)),
            .exchange(.failed(requestID: .max, code: .closed, reason: text)),
            .lease(.openRefused(requestID: .max, channelID: digest, code: .closed, reason: text)),
            .lease(.updateRefused(requestID: .max, channelID: digest, nonce: .max, code: .closed, reason: text)),
            .lease(
                .openRequest(requestID: .max, terms: Fixtures.terms, lesseeSignature: Fixtures.placeholderSignature)),
            .lease(
                .latestState(
                    requestID: .max,
                    state: CoSignedState(
                        state: Fixtures.leaseState, lessorSignature: Fixtures.placeholderSignature,
                        lesseeSignature: Fixtures.placeholderSignature))),
            .lease(
                .offers(
                    requestID: .max,
                    offers: Array(
                        repeating: LeaseOffer(
                            licence: .max, firstSlice: 0, sliceCount: 100, ratePerSliceHour: .max, maxHours: .max),
                        count: WireLimits.leaseOffersMax),
                    taken: Array(
                        repeating: LeasedRange(
                            licence: .max, firstSlice: 0, sliceCount: 100, startSeconds: .max, hours: .max),
                        count: WireLimits.leaseTakenMax))),
        ]
        var biggest = 0
        for message in largest {
            let size = message.frameBytes().count
            biggest = max(biggest, size)
            XCTAssertLessThanOrEqual(size, WireLimits.udpFrameBytesMax, "\(message.type) at its largest")
            // And it is what its decoder accepts, so the limit checked is the one enforced.
            XCTAssertEqual(
                try Message.decode(frame: ByteBuffer(bytes: message.frameBytes())), message, "\(message.type)")
        }
        print("the largest message frame: \(biggest) bytes of \(WireLimits.udpFrameBytesMax)")
    }
}

/// Error codes come from one list (`ErrorCode.Known`): each has a unique snake-case name, and
/// `proto/README.md` documents each code with exactly that name.
final class ErrorCodeNameTests: XCTestCase {
    func testEveryKnownCodeHasItsDocumentedName() throws {
        let spec = try String(
            contentsOf: VectorFile.url("x").deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("README.md"), encoding: .utf8)
        var seen: Set<String> = []
        for known in ErrorCode.Known.allCases {
            let code = ErrorCode(known)
            XCTAssertTrue(seen.insert(code.name).inserted, "\(code.name) named twice")
            XCTAssertTrue(code.name.allSatisfy { $0.isLowercase || $0 == "_" }, code.name)
            let hex = String(code.rawValue, radix: 16, uppercase: true)
            let row = "| `0x" + String(repeating: "0", count: 4 - hex.count) + hex + "` | `\(code.name)` |"
            XCTAssertTrue(spec.contains(row), "proto/README.md documents \(row)")
        }
        XCTAssertEqual(ErrorCode.wrongChainID.name, "wrong_chain_id")
        XCTAssertEqual(ErrorCode(rawValue: 0x02AB).name, "code_0x02ab", "an unknown code keeps its number")
    }
}

/// Message type names (logs, metrics labels) are the headings of proto/README.md, every one.
final class MessageTypeNameTests: XCTestCase {
    func testEveryDocumentedTypeHasItsHeadingsName() throws {
        let spec = try String(
            contentsOf: VectorFile.url("x").deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("README.md"), encoding: .utf8)
        let headings = spec.split(separator: "\n").filter { $0.hasPrefix("### ") && $0.hasSuffix(")") }
            .compactMap { line -> (String, UInt16)? in
                let parts = line.dropFirst(4).split(separator: " ")
                guard parts.count == 2, parts[1].hasPrefix("(0x"),
                    let value = UInt16(parts[1].dropFirst(3).dropLast(), radix: 16)
                else { return nil }
                return (String(parts[0]), value)
            }
        XCTAssertGreaterThan(headings.count, 40)
        XCTAssertEqual(headings.count, MessageType.names.count, "one name per documented type")
        for (name, value) in headings {
            XCTAssertEqual(MessageType(rawValue: value).name, name)
        }
        XCTAssertEqual(MessageType.leaseUpdate.name, "lease_update")
        XCTAssertEqual(MessageType(rawValue: 0x0801).name, "0x801", "an unknown type keeps its number")
    }
}
