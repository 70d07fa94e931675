-- rwanet.lua: a Wireshark / tshark dissector for rwanet's wire protocol (proto/README.md).
--
-- Load it with `wireshark -X lua_script:Tools/wireshark/rwanet.lua` (or copy it into the
-- personal Lua plugins folder). Decryption needs the debug key log the peers write when
-- RWANET_KEYLOG is set: preference `rwanet.keylog` (defaults to $RWANET_KEYLOG).
--
-- Layout of this file: crypto (ChaCha20 + Poly1305, pure Lua on bit32), the spec's tables
-- (names, codes, structures and messages as data), a generic field walker driven by those
-- tables, the session model (handshake, keys, counters) and the TCP / UDP entry points.
-- Everything computed from earlier packets (record boundaries, counters, plaintexts, matched
-- co-signed states) is stored per frame number on the first pass, so re-dissection is stable.

local bit = bit32
local unpack = table.unpack or unpack
local band, bxor, lrot = bit.band, bit.bxor, bit.lrotate

local rwanet = Proto("rwanet", "rwanet protocol")

---------------------------------------------------------------------------------------------
-- Crypto: ChaCha20 (RFC 8439) and Poly1305, enough to open ChaCha20-Poly1305-IETF.
---------------------------------------------------------------------------------------------
local TWO32 = 4294967296

local function le32(s, i) -- little-endian u32 from string s at 1-based index i
    local a, b, c, d = s:byte(i, i + 3)
    return a + b * 256 + c * 65536 + d * 16777216
end

local function chacha_block(key_words, counter, nonce_words)
    local x = {
        0x61707865, 0x3320646e, 0x79622d32, 0x6b206574,
        key_words[1], key_words[2], key_words[3], key_words[4],
        key_words[5], key_words[6], key_words[7], key_words[8],
        counter, nonce_words[1], nonce_words[2], nonce_words[3],
    }
    local s = {}
    for i = 1, 16 do s[i] = x[i] end
    local function qr(a, b, c, d)
        s[a] = (s[a] + s[b]) % TWO32; s[d] = lrot(bxor(s[d], s[a]), 16)
        s[c] = (s[c] + s[d]) % TWO32; s[b] = lrot(bxor(s[b], s[c]), 12)
        s[a] = (s[a] + s[b]) % TWO32; s[d] = lrot(bxor(s[d], s[a]), 8)
        s[c] = (s[c] + s[d]) % TWO32; s[b] = lrot(bxor(s[b], s[c]), 7)
    end
    for _ = 1, 10 do
        qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15); qr(4, 8, 12, 16)
        qr(1, 6, 11, 16); qr(2, 7, 12, 13); qr(3, 8, 9, 14); qr(4, 5, 10, 15)
    end
    local out = {}
    for i = 1, 16 do
        local w = (s[i] + x[i]) % TWO32
        out[#out + 1] = band(w, 255)
        out[#out + 1] = band(bit.rshift(w, 8), 255)
        out[#out + 1] = band(bit.rshift(w, 16), 255)
        out[#out + 1] = bit.rshift(w, 24)
    end
    return out
end

-- Nonce `00 00 00 00 | u64 counter` (big-endian), as three little-endian words.
local function nonce_words(counter_hi, counter_lo)
    local function swap(w)
        return band(w, 255) * 16777216 + band(bit.rshift(w, 8), 255) * 65536
            + band(bit.rshift(w, 16), 255) * 256 + bit.rshift(w, 24)
    end
    return { 0, swap(counter_hi), swap(counter_lo) }
end

local function key_words_of(key)
    local w = {}
    for i = 0, 7 do w[i + 1] = le32(key, 1 + 4 * i) end
    return w
end

local function chacha_xor(key, counter_hi, counter_lo, data)
    local kw, nw = key_words_of(key), nonce_words(counter_hi, counter_lo)
    local out, block_counter = {}, 1 -- block 0 is the Poly1305 key
    for pos = 1, #data, 64 do
        local ks = chacha_block(kw, block_counter, nw)
        block_counter = block_counter + 1
        local chunk = { data:byte(pos, math.min(pos + 63, #data)) }
        for i = 1, #chunk do chunk[i] = bxor(chunk[i], ks[i]) end
        out[#out + 1] = string.char(unpack(chunk))
    end
    return table.concat(out)
end

-- Poly1305 over 13-bit limbs (10 limbs = 130 bits, 2^130 = 5 mod p): every product stays far
-- below 2^53, so Lua's doubles compute it exactly.
local LIMB = 8192
local function to_limbs(bytes) -- little-endian byte list -> 10 limbs of 13 bits
    local limbs, acc, nbits, li = {}, 0, 0, 1
    for i = 1, #bytes do
        acc = acc + bytes[i] * 2 ^ nbits
        nbits = nbits + 8
        while nbits >= 13 and li <= 10 do
            limbs[li] = acc % LIMB
            acc = math.floor(acc / LIMB)
            nbits = nbits - 13
            li = li + 1
        end
    end
    while li <= 10 do limbs[li] = acc % LIMB; acc = math.floor(acc / LIMB); li = li + 1 end
    return limbs
end

-- Carries each 13-bit limb into the next; what leaves the top (2^130) comes back as 5 (mod p).
local function fold(limbs)
    local carry = 0
    for i = 1, 10 do
        limbs[i] = limbs[i] + carry
        carry = math.floor(limbs[i] / LIMB)
        limbs[i] = limbs[i] % LIMB
    end
    limbs[1] = limbs[1] + carry * 5
end

local function poly1305(otk, msg)
    local rb = { otk:byte(1, 16) }
    rb[4], rb[8], rb[12], rb[16] = band(rb[4], 15), band(rb[8], 15), band(rb[12], 15), band(rb[16], 15)
    rb[5], rb[9], rb[13] = band(rb[5], 252), band(rb[9], 252), band(rb[13], 252)
    local r = to_limbs(rb)
    local h = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }
    for pos = 1, #msg, 16 do
        local b = { msg:byte(pos, math.min(pos + 15, #msg)) }
        b[#b + 1] = 1
        local n = to_limbs(b)
        for i = 1, 10 do h[i] = h[i] + n[i] end
        local d = {}
        for i = 1, 10 do
            local sum = 0
            for j = 1, 10 do
                local k = i - j + 1
                if k >= 1 then sum = sum + h[j] * r[k] else sum = sum + h[j] * r[k + 10] * 5 end
            end
            d[i] = sum
        end
        fold(d)
        fold(d)
        h = d
    end
    -- full reduction: h mod p, with p = 2^130 - 5
    fold(h)
    fold(h)
    local g, carry = {}, 5
    for i = 1, 10 do
        g[i] = h[i] + carry
        carry = math.floor(g[i] / LIMB)
        g[i] = g[i] % LIMB
    end
    if carry > 0 then h = g end -- h + 5 >= 2^130, so h >= p
    -- h (130 bits) + s, mod 2^128, little-endian bytes
    local sb = { otk:byte(17, 32) }
    local out, acc, nbits, li, c = {}, 0, 0, 1, 0
    for i = 1, 16 do
        while nbits < 8 do
            acc = acc + (h[li] or 0) * 2 ^ nbits
            nbits = nbits + 13
            li = li + 1
        end
        local v = acc % 256 + sb[i] + c
        acc = math.floor(acc / 256)
        nbits = nbits - 8
        out[i] = v % 256
        c = math.floor(v / 256)
    end
    return string.char(unpack(out))
end

local function le64(n)
    local t = {}
    for i = 1, 8 do t[i] = n % 256; n = math.floor(n / 256) end
    return string.char(unpack(t))
end

local function pad16(s)
    local r = #s % 16
    if r == 0 then return s end
    return s .. string.rep("\0", 16 - r)
end

-- Opens ciphertext|tag; returns plaintext (always, even if the tag fails) and tag_ok.
local function aead_open(key, counter_hi, counter_lo, ad, sealed)
    local ct, tag = sealed:sub(1, #sealed - 16), sealed:sub(#sealed - 15)
    local ks0 = chacha_block(key_words_of(key), 0, nonce_words(counter_hi, counter_lo))
    local otk = string.char(unpack(ks0, 1, 32))
    local mac = poly1305(otk, pad16(ad) .. pad16(ct) .. le64(#ad) .. le64(#ct))
    return chacha_xor(key, counter_hi, counter_lo, ct), mac == tag
end

---------------------------------------------------------------------------------------------
-- Small helpers
---------------------------------------------------------------------------------------------
local function hex(s)
    return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function unhex(h)
    return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
end

-- Decimal text of a big-endian unsigned integer held in a string (u128, u256).
local function decimal(s)
    local digits = { s:byte(1, -1) }
    local out = {}
    local nonzero = true
    while nonzero do
        local rem = 0
        nonzero = false
        for i = 1, #digits do
            local v = rem * 256 + digits[i]
            digits[i] = math.floor(v / 10)
            rem = v % 10
            if digits[i] ~= 0 then nonzero = true end
        end
        out[#out + 1] = tostring(rem)
    end
    return string.reverse(table.concat(out))
end

local function valid_utf8(s)
    local i, n = 1, #s
    while i <= n do
        local c = s:byte(i)
        local len
        if c < 0x80 then len = 1
        elseif c >= 0xC2 and c <= 0xDF then len = 2
        elseif c >= 0xE0 and c <= 0xEF then len = 3
        elseif c >= 0xF0 and c <= 0xF4 then len = 4
        else return false end
        if i + len - 1 > n then return false end
        for k = i + 1, i + len - 1 do
            local cc = s:byte(k)
            if cc < 0x80 or cc > 0xBF then return false end
        end
        i = i + len
    end
    return true
end

---------------------------------------------------------------------------------------------
-- The spec's tables
---------------------------------------------------------------------------------------------
local ERROR_CODES = {
    [0x0001] = "malformed_frame", [0x0002] = "frame_too_large", [0x0003] = "unknown_required_message",
    [0x0004] = "bad_signature", [0x0005] = "decryption_failed", [0x0006] = "unexpected_message",
    [0x0007] = "unsupported_version", [0x0008] = "unknown_required_feature", [0x0009] = "wrong_chain",
    [0x000A] = "unexpected_peer", [0x000B] = "handshake_timeout", [0x000C] = "idle_timeout",
    [0x000D] = "overloaded", [0x000E] = "delivery_failed", [0x000F] = "closed",
    -- ledger rejections
    [0x0101] = "malformed_transaction", [0x0102] = "wrong_chain_id", [0x0103] = "invalid_signature",
    [0x0104] = "unknown_account", [0x0105] = "sequence_reused", [0x0106] = "sequence_ahead",
    [0x0107] = "insufficient_balance", [0x0108] = "not_authorized", [0x0109] = "token_paused",
    [0x010A] = "account_frozen", [0x010B] = "receiver_not_verified", [0x010C] = "country_not_allowed",
    [0x010D] = "balance_limit_exceeded", [0x010E] = "holder_limit_exceeded", [0x010F] = "unknown_token",
    [0x0110] = "unknown_identity", [0x0111] = "zero_amount", [0x0112] = "supply_exceeded",
    [0x0113] = "invalid_resource", [0x0114] = "already_registered", [0x0115] = "invalid_operation",
    [0x0116] = "identity_mismatch", [0x0117] = "arbiter_busy", [0x0118] = "bad_query",
    [0x0119] = "unknown_pool", [0x011A] = "deadline_passed", [0x011B] = "price_limit",
    [0x011C] = "insufficient_liquidity",
    -- lease codes
    [0x0201] = "unknown_channel", [0x0202] = "bad_channel_signature", [0x0203] = "wrong_channel",
    [0x0204] = "nonce_not_next", [0x0205] = "payment_decreased", [0x0206] = "payment_above_deposit",
    [0x0207] = "paid_through_mismatch", [0x0208] = "channel_final", [0x0209] = "lessor_cannot_pay",
    [0x020A] = "update_in_progress", [0x020B] = "invalid_terms", [0x020C] = "not_offered",
    [0x020D] = "slice_hour_taken", [0x020E] = "outside_licence_validity", [0x020F] = "not_lessor_of_licence",
    [0x0210] = "challenge_period_over", [0x0211] = "stale_state", [0x0212] = "challenge_period_running",
    [0x0213] = "nothing_to_claim", [0x0214] = "period_mismatch",
    -- exchange codes
    [0x0301] = "not_an_order", [0x0302] = "exchange_unavailable",
}

local UDP_KINDS = { [1] = "handshake", [2] = "data", [3] = "ack", [4] = "cookie", [5] = "cookie handshake" }
local SIDES = { [1] = "buy", [2] = "sell" }
local RESOURCE_KINDS = {
    [1] = "domain-name", [2] = "ip-address-block", [3] = "bandwidth", [4] = "node-resources",
    [5] = "computational-power", [6] = "radio-spectrum", [7] = "cloud-storage",
}
local TOKEN_KINDS = { [1] = "stablecoin", [2] = "licence-ownership", [3] = "pool-share" }
local CHANNEL_STATUS = { [1] = "open", [2] = "disputed", [3] = "settled" }

-- Field entries: { name, type, args..., vs = value names, cond = earlier bool field,
-- abbr = explicit filter name }. Types: u8 u16 u32 u64 u128 u256 bool digest pubkey signature
-- x25519, bytes/text (max), features, set16 (max), list (item entry, max), optional (entry),
-- struct (name), and bytes<max> fields whose content the spec defines elsewhere:
-- tx (a transaction), header (a block header), statekey, statevalue.
local STRUCTS = {}
STRUCTS.terms = {
    { "chain_id", "digest" }, { "lessor", "pubkey" }, { "lessee", "pubkey" }, { "licence", "u64" },
    { "first_slice", "u8" }, { "slice_count", "u8" }, { "start_seconds", "u64" }, { "hours", "u32" },
    { "period_seconds", "u32" }, { "rate_per_slice_hour", "u128" }, { "deposit", "u128" },
    { "payment_increment", "u128" }, { "challenge_period_ms", "u64" }, { "nonce", "u64" },
}
STRUCTS.state = {
    { "channel_id", "digest" }, { "nonce", "u64" }, { "paid", "u128" },
    { "paid_through_seconds", "u64" }, { "final", "bool" },
}
STRUCTS.cosigned_state = {
    { "state", "struct", "state" }, { "lessor_signature", "signature" }, { "lessee_signature", "signature" },
}
STRUCTS.swap_amounts = { { "amount_in", "u128" }, { "amount_out", "u128" } }
STRUCTS.depth_level = { { "size", "u128" }, { "buy_cost", "u128" }, { "sell_proceeds", "u128" } }
STRUCTS.trade = {
    { "height", "u64" }, { "index", "u32" }, { "hash", "digest" }, { "trader", "pubkey" },
    { "side", "u8", vs = SIDES }, { "amount_in", "u128" }, { "amount_out", "u128" },
}
STRUCTS.offer = {
    { "licence", "u64" }, { "first_slice", "u8" }, { "slice_count", "u8" },
    { "rate_per_slice_hour", "u128" }, { "max_hours", "u32" },
}
STRUCTS.taken = {
    { "licence", "u64" }, { "first_slice", "u8" }, { "slice_count", "u8" },
    { "start_seconds", "u64" }, { "hours", "u32" },
}
STRUCTS.block_header = {
    { "height", "u64" }, { "previous_hash", "digest" }, { "transactions_root", "digest" },
    { "time", "u64" }, { "transaction_count", "u32" }, { "signature", "signature" },
}
STRUCTS.criterion = { { "score", "u8" }, { "reason", "text", 96 } }
STRUCTS.spectrum = {
    { "centre_hz", "u64" }, { "width_hz", "u64" }, { "country", "u16" }, { "region", "text", 64 },
    { "valid_from", "u64" }, { "valid_until", "u64" },
}
STRUCTS.compliance = {
    { "required_claims", "set16", 8 }, { "allowed_countries", "set16", 32 },
    { "denied_countries", "set16", 32 }, { "max_balance_per_identity", "u128" }, { "max_holders", "u32" },
}
STRUCTS.resource = { -- a registration
    { "kind", "u8", vs = RESOURCE_KINDS }, { "owner", "pubkey" }, { "name", "text", 64 },
    { "metadata", "text", 256 }, { "valuation", "u128" },
    { "intrinsic_value", "optional", { "intrinsic_value", "struct", "criterion" } },
    { "strategic_scarcity", "optional", { "strategic_scarcity", "struct", "criterion" } },
    { "legal_clarity", "optional", { "legal_clarity", "struct", "criterion" } },
    { "spectrum", "optional", { "spectrum", "struct", "spectrum" } },
    { "compliance", "optional", { "compliance", "struct", "compliance" } },
}
STRUCTS.claim = { { "topic", "u16" }, { "issuer", "pubkey" } }

local function envelope(fields) -- request-id envelope of families 0x0100-0x07FF
    table.insert(fields, 1, { "request_id", "u64", abbr = "rwanet.request_id" })
    return fields
end

local LEASE_STATE = { "state", "struct", "state" }
local function lease(name, ...) -- lease fields share the rwanet.lease.* names
    local e = { name, ... }
    e.abbr = "rwanet.lease." .. name
    return e
end

-- Messages by type: { name, fields }. The fields' filter names are rwanet.<message>.<field>
-- unless an entry says otherwise.
local MESSAGES = {
    [0x0010] = { "hello", { { "protocol_version", "u16" }, { "features", "features" }, { "chain_id", "digest" },
        { "identity", "pubkey" }, { "ephemeral_key", "x25519" } } },
    [0x0012] = { "hello_reply", { { "protocol_version", "u16" }, { "features", "features" },
        { "identity", "pubkey" }, { "ephemeral_key", "x25519" }, { "signature", "signature" } } },
    [0x0014] = { "hello_finish", { { "signature", "signature" } } },
    [0x0020] = { "error", { { "code", "u16", vs = ERROR_CODES }, { "text", "text", 1024 } } },
    [0x0021] = { "warning", { { "code", "u16", vs = ERROR_CODES }, { "text", "text", 1024 } } },
    [0x0022] = { "ping", { { "nonce", "u64" }, { "padding", "bytes", 1024 } } },
    [0x0023] = { "pong", { { "nonce", "u64" } } },
    [0x0030] = { "signed_note", { { "author", "pubkey" }, { "number", "u64" }, { "in_reply_to", "digest" },
        { "body", "bytes", 1000 }, { "signature", "signature" } } },
    -- arbiter
    [0x0100] = { "submit_transaction", envelope { { "transaction", "tx", 1024 } } },
    [0x0102] = { "get_state", envelope { { "key", "statekey", 48 } } },
    [0x0104] = { "get_block", envelope { { "height", "u64" } } },
    [0x0106] = { "get_transaction", envelope { { "hash", "digest" } } },
    [0x0108] = { "subscribe_blocks", envelope { { "from_height", "u64" } } },
    [0x010A] = { "get_status", envelope {} },
    [0x0200] = { "transaction_receipt", envelope { { "hash", "digest" }, { "height", "u64" },
        { "index", "u32" }, { "created_id", "u64" } } },
    [0x0202] = { "transaction_rejected", envelope { { "hash", "digest" }, { "code", "u16", vs = ERROR_CODES },
        { "reason", "text", 1024 } } },
    [0x0204] = { "state_answer", envelope { { "key", "statekey", 48 }, { "found", "bool" },
        { "value", "statevalue", 1024, cond = "found" } } },
    [0x0206] = { "block_answer", envelope { { "found", "bool" }, { "header", "header", 256, cond = "found" } } },
    [0x0208] = { "transaction_answer", envelope { { "found", "bool" }, { "height", "u64", cond = "found" },
        { "index", "u32", cond = "found" }, { "created_id", "u64", cond = "found" },
        { "transaction", "tx", 1024, cond = "found" } } },
    [0x020A] = { "status_answer", envelope { { "chain_id", "digest" }, { "height", "u64" },
        { "tip_hash", "digest" }, { "tip_time", "u64" } } },
    [0x020C] = { "request_failed", envelope { { "code", "u16", vs = ERROR_CODES }, { "reason", "text", 1024 } } },
    [0x0300] = { "block_committed", envelope { { "header", "header", 256 } } },
    [0x0302] = { "transaction_committed", envelope { { "height", "u64" }, { "index", "u32" },
        { "created_id", "u64" }, { "transaction", "tx", 1024 } } },
    -- lease channel
    [0x0400] = { "lease_open_request", envelope { { "terms", "struct", "terms" },
        lease("lessee_signature", "signature") } },
    [0x0402] = { "lease_open_accept", envelope { lease("channel_id", "digest"), lease("lessor_signature", "signature") } },
    [0x0404] = { "lease_open_refused", envelope { lease("channel_id", "digest"), lease("code", "u16"),
        lease("reason", "text", 1024) } },
    [0x0410] = { "lease_update", envelope { LEASE_STATE, lease("signature", "signature") } },
    [0x0412] = { "lease_countersign", envelope { lease("channel_id", "digest"), lease("nonce", "u64"),
        lease("signature", "signature") } },
    [0x0414] = { "lease_update_refused", envelope { lease("channel_id", "digest"), lease("nonce", "u64"),
        lease("code", "u16"), lease("reason", "text", 1024) } },
    [0x0416] = { "lease_reestablish", envelope { lease("channel_id", "digest"), lease("nonce", "u64") } },
    [0x0418] = { "lease_latest_state", envelope { { "cosigned_state", "struct", "cosigned_state" } } },
    [0x0420] = { "lease_get_offers", envelope {} },
    [0x0422] = { "lease_offers", envelope { { "offers", "list", { "offer", "struct", "offer" }, 8, abbr = "rwanet.lease_offers.offers" },
        { "taken", "list", { "taken", "struct", "taken" }, 32, abbr = "rwanet.lease_offers.taken" } } },
    -- exchange
    [0x0600] = { "exchange_quote", envelope { { "token", "u64" }, { "side", "u8", vs = SIDES, enum = SIDES },
        { "exact_output", "bool" }, { "amount", "u128" } } },
    [0x0602] = { "exchange_get_market", envelope { { "token", "u64" }, { "twap_seconds", "u32" },
        { "sizes", "list", { "size", "u128" }, 8 } } },
    [0x0604] = { "exchange_get_trades", envelope { { "token", "u64" }, { "limit", "u8", max = 10 } } },
    [0x0606] = { "exchange_submit_order", envelope { { "transaction", "tx", 1024 } } },
    [0x0700] = { "exchange_quote_answer", envelope { { "height", "u64" },
        { "confirmed", "optional", { "confirmed", "struct", "swap_amounts" } },
        { "expected", "optional", { "expected", "struct", "swap_amounts" } }, { "orders_in_flight", "u32" } } },
    [0x0702] = { "exchange_market_answer", envelope { { "height", "u64" }, { "time", "u64" },
        { "licence_reserve", "u128" }, { "stablecoin_reserve", "u128" }, { "total_shares", "u128" },
        { "twap_seconds", "u32" }, { "twap", "optional", { "twap", "u256" } },
        { "depth", "list", { "depth_level", "struct", "depth_level" }, 8 } } },
    [0x0704] = { "exchange_trades_answer", envelope { { "trades", "list", { "trade", "struct", "trade" }, 10 } } },
    [0x0706] = { "exchange_order_filled", envelope { { "hash", "digest" }, { "height", "u64" }, { "index", "u32" },
        { "operation", "u8" }, { "licence", "u128" }, { "stablecoin", "u128" }, { "shares", "u128" } } },
    [0x0708] = { "exchange_order_rejected", envelope { { "hash", "digest" }, { "code", "u16", vs = ERROR_CODES },
        { "reason", "text", 1024 } } },
    [0x070A] = { "exchange_failed", envelope { { "code", "u16", vs = ERROR_CODES }, { "reason", "text", 1024 } } },
}
MESSAGES[0x0404][2][3].vs = ERROR_CODES
MESSAGES[0x0414][2][4].vs = ERROR_CODES
local EVENTS = { [0x0300] = true, [0x0302] = true } -- request_id must be 0

local function op(name, fields) return { name, fields } end
local AMOUNT_OP = { { "token", "u64" }, { "to", "pubkey" }, { "amount", "u128" } }
local OPERATIONS = {
    [0x01] = op("transfer", AMOUNT_OP),
    [0x02] = op("mint", AMOUNT_OP),
    [0x03] = op("burn", { { "token", "u64" }, { "from", "pubkey" }, { "amount", "u128" } }),
    [0x04] = op("set_frozen", { { "token", "u64" }, { "account", "pubkey" }, { "frozen", "bool" } }),
    [0x05] = op("freeze_partial", { { "token", "u64" }, { "account", "pubkey" }, { "amount", "u128" } }),
    [0x06] = op("unfreeze_partial", { { "token", "u64" }, { "account", "pubkey" }, { "amount", "u128" } }),
    [0x07] = op("forced_transfer", { { "token", "u64" }, { "from", "pubkey" }, { "to", "pubkey" }, { "amount", "u128" } }),
    [0x08] = op("recover_wallet", { { "token", "u64" }, { "lost", "pubkey" }, { "replacement", "pubkey" } }),
    [0x09] = op("set_paused", { { "token", "u64" }, { "paused", "bool" } }),
    [0x0A] = op("set_compliance", { { "token", "u64" }, { "rules", "struct", "compliance" } }),
    [0x10] = op("register_identity", { { "account", "pubkey" }, { "country", "u16" } }),
    [0x11] = op("link_wallet", { { "account", "pubkey" }, { "identity", "u64" } }),
    [0x12] = op("add_claim", { { "identity", "u64" }, { "topic", "u16" } }),
    [0x13] = op("revoke_claim", { { "identity", "u64" }, { "topic", "u16" } }),
    [0x20] = op("register_resource", { { "registration", "struct", "resource" } }),
    [0x30] = op("create_pool", { { "token", "u64" }, { "country", "u16" } }),
    [0x31] = op("add_liquidity", { { "token", "u64" }, { "licence_desired", "u128" }, { "stablecoin_desired", "u128" },
        { "licence_minimum", "u128" }, { "stablecoin_minimum", "u128" }, { "deadline", "u64" } }),
    [0x32] = op("remove_liquidity", { { "token", "u64" }, { "shares", "u128" }, { "licence_minimum", "u128" },
        { "stablecoin_minimum", "u128" }, { "deadline", "u64" } }),
    [0x33] = op("swap_exact_in", { { "token", "u64" }, { "side", "u8", vs = SIDES, enum = SIDES },
        { "amount_in", "u128" }, { "minimum_out", "u128" }, { "deadline", "u64" } }),
    [0x34] = op("swap_exact_out", { { "token", "u64" }, { "side", "u8", vs = SIDES, enum = SIDES },
        { "amount_out", "u128" }, { "maximum_in", "u128" }, { "deadline", "u64" } }),
    [0x40] = op("open_channel", { { "terms", "struct", "terms" }, { "lessor_signature", "signature" },
        { "lessee_signature", "signature" } }),
    [0x41] = op("close_channel", { { "cosigned_state", "struct", "cosigned_state" } }),
    [0x42] = op("register_state", { { "channel", "digest" },
        { "cosigned_state", "optional", { "cosigned_state", "struct", "cosigned_state" } } }),
    [0x43] = op("challenge", { { "cosigned_state", "struct", "cosigned_state" } }),
    [0x44] = op("settle_channel", { { "channel", "digest" } }),
    [0x45] = op("claim_rent", { { "token", "u64" } }),
}
local OP_NAMES = {}
for tag, o in pairs(OPERATIONS) do OP_NAMES[tag] = o[1] end
MESSAGES[0x0706][2][5].vs = OP_NAMES

STRUCTS.transaction = {
    { "chain_id", "digest" }, { "signer", "pubkey" }, { "sequence", "u64" },
    { "operation", "operation" }, { "signature", "signature" },
}

-- State keys and values (State records).
local STATE_KINDS = {
    [0x00] = { "counters", {}, { { "next_identity", "u64" }, { "next_resource", "u64" } } },
    [0x01] = { "account", { { "account", "pubkey" } },
        { { "next_sequence", "u64" }, { "identity", "optional", { "identity", "u64" } } } },
    [0x02] = { "identity", { { "identity", "u64" } },
        { { "id", "u64" }, { "country", "u16" }, { "claims", "list", { "claim", "struct", "claim" }, 16 } } },
    [0x03] = { "token", { { "token", "u64" } },
        { { "id", "u64" }, { "kind", "u8", vs = TOKEN_KINDS }, { "symbol", "text", 24 }, { "decimals", "u8" },
            { "agents", "list", { "agent", "pubkey" }, 8 }, { "paused", "bool" }, { "total_supply", "u128" },
            { "max_supply", "u128" }, { "compliance", "optional", { "compliance", "struct", "compliance" } },
            { "resource", "optional", { "resource", "u64" } } } },
    [0x04] = { "holding", { { "token", "u64" }, { "account", "pubkey" } },
        { { "balance", "u128" }, { "frozen_amount", "u128" }, { "frozen", "bool" } } },
    [0x05] = { "resource", { { "resource", "u64" } },
        { { "id", "u64" }, { "registration", "struct", "resource" }, { "registrar", "pubkey" },
            { "height", "u64" }, { "token", "optional", { "token", "u64" } } } },
    [0x06] = { "pool", { { "token", "u64" } },
        { { "token", "u64" }, { "share_token", "u64" }, { "account", "pubkey" }, { "licence_reserve", "u128" },
            { "stablecoin_reserve", "u128" }, { "total_shares", "u128" }, { "licence_price_cumulative", "u256" },
            { "stablecoin_price_cumulative", "u256" }, { "last_timestamp", "u32" } } },
    [0x07] = { "channel", { { "channel_id", "digest" } },
        { { "terms", "struct", "terms" }, { "status", "u8", vs = CHANNEL_STATUS }, { "nonce", "u64" },
            { "paid", "u128" }, { "paid_through_seconds", "u64" }, { "challenge_deadline_ms", "u64" } } },
    [0x08] = { "leased_slice_hour", { { "licence_token", "u64" }, { "slice", "u8" }, { "hour", "u64" } },
        { { "channel", "digest" } } },
    [0x09] = { "rent_index", { { "licence_token", "u64" } },
        { { "per_unit", "u256" }, { "remainder", "u128" }, { "distributed", "u128" } } },
    [0x0A] = { "rent_position", { { "licence_token", "u64" }, { "holder", "pubkey" } },
        { { "index", "u256" }, { "accrued", "u256" } } },
}
local STATE_KIND_NAMES = {}
for k, v in pairs(STATE_KINDS) do STATE_KIND_NAMES[k] = v[1] end

local MESSAGE_NAMES = {}
for t, m in pairs(MESSAGES) do MESSAGE_NAMES[t] = m[1] end

---------------------------------------------------------------------------------------------
-- Fields: built from the tables above, so every field of the spec gets a filterable name.
---------------------------------------------------------------------------------------------
local F = {} -- abbr -> ProtoField
local function field(abbr, ctor, label, ...)
    if not F[abbr] then F[abbr] = ctor(abbr, label, ...) end
    return F[abbr]
end

local function label_of(name) return (name:gsub("_", " ")) end

local define -- forward
local function abbr_of(entry, prefix) return entry.abbr or (prefix .. "." .. entry[1]) end

local defined_structs = {}
local function define_struct(sname)
    if defined_structs[sname] then return end
    defined_structs[sname] = true
    for _, e in ipairs(STRUCTS[sname]) do define(e, "rwanet." .. sname) end
end

function define(entry, prefix)
    local name, ty = entry[1], entry[2]
    local abbr = abbr_of(entry, prefix)
    local label = label_of(name)
    if ty == "u8" then field(abbr, ProtoField.uint8, label, base.DEC, entry.vs)
    elseif ty == "u16" then
        if entry.vs then field(abbr, ProtoField.uint16, label, base.HEX, entry.vs)
        else field(abbr, ProtoField.uint16, label, base.DEC) end
    elseif ty == "u32" then field(abbr, ProtoField.uint32, label, base.DEC)
    elseif ty == "u64" then field(abbr, ProtoField.uint64, label, base.DEC)
    elseif ty == "u128" then
        field(abbr, ProtoField.uint64, label, base.DEC) -- amounts that fit 64 bits (filterable as numbers)
        field(abbr .. "_u128", ProtoField.string, label .. " (u128)")
    elseif ty == "u256" then
        field(abbr, ProtoField.bytes, label)
        field(abbr .. "_dec", ProtoField.string, label .. " (decimal)")
    elseif ty == "bool" then field(abbr, ProtoField.bool, label)
    elseif ty == "digest" or ty == "pubkey" or ty == "signature" or ty == "x25519" then
        field(abbr, ProtoField.bytes, label)
    elseif ty == "bytes" or ty == "features" then
        field(abbr .. "_length", ProtoField.uint16, label .. " length", base.DEC)
        field(abbr, ProtoField.bytes, label)
    elseif ty == "text" then
        field(abbr .. "_length", ProtoField.uint16, label .. " length", base.DEC)
        field(abbr, ProtoField.string, label)
    elseif ty == "set16" then
        field(abbr .. "_count", ProtoField.uint8, label .. " count", base.DEC)
        field(abbr, ProtoField.uint16, label, base.DEC)
    elseif ty == "list" then
        field(abbr .. "_count", ProtoField.uint8, label .. " count", base.DEC)
        define(entry[3], abbr_of(entry, prefix):match("^(.*)%.[^.]*$"))
    elseif ty == "optional" then
        field(abbr .. "_present", ProtoField.bool, label .. " present")
        define(entry[3], abbr:match("^(.*)%.[^.]*$"))
    elseif ty == "struct" then
        define_struct(entry[3])
    elseif ty == "tx" or ty == "header" or ty == "statekey" or ty == "statevalue" then
        field(abbr .. "_length", ProtoField.uint16, label .. " length", base.DEC)
        field(abbr, ProtoField.bytes, label)
        if ty == "tx" then define_struct("transaction")
        elseif ty == "header" then define_struct("block_header") end
    elseif ty == "operation" then
        field("rwanet.operation.tag", ProtoField.uint8, "operation tag", base.HEX, OP_NAMES)
        field("rwanet.operation.name", ProtoField.string, "operation")
        for _, o in pairs(OPERATIONS) do
            for _, e in ipairs(o[2]) do define(e, "rwanet.operation") end
        end
    else
        error("rwanet.lua: unknown field type " .. tostring(ty))
    end
end

for _, m in pairs(MESSAGES) do
    for _, e in ipairs(m[2]) do define(e, "rwanet." .. m[1]) end
end
field("rwanet.state_key.kind", ProtoField.uint8, "state key kind", base.HEX, STATE_KIND_NAMES)
for _, k in pairs(STATE_KINDS) do
    for _, e in ipairs(k[2]) do define(e, "rwanet.state_key") end
    for _, e in ipairs(k[3]) do define(e, "rwanet." .. k[1]) end
end

-- Frame, record and packet fields.
local f = {
    msg_type = field("rwanet.msg_type", ProtoField.uint16, "Message type", base.HEX, MESSAGE_NAMES),
    msg_name = field("rwanet.msg_name", ProtoField.string, "Message name"),
    frame_len = field("rwanet.frame_length", ProtoField.uint32, "Frame length", base.DEC),
    direction = field("rwanet.direction", ProtoField.string, "Direction"),
    rec_len = field("rwanet.record.length", ProtoField.uint32, "Record length", base.DEC),
    rec_sealed = field("rwanet.record.sealed", ProtoField.bool, "Sealed"),
    rec_counter = field("rwanet.record.counter", ProtoField.uint64, "AEAD counter (record number)", base.DEC),
    rec_payload = field("rwanet.record.payload", ProtoField.bytes, "Payload"),
    rec_partial = field("rwanet.record.continuation", ProtoField.uint32, "Bytes of a record continued in a later segment", base.DEC),
    ciphertext = field("rwanet.ciphertext", ProtoField.bytes, "Ciphertext"),
    tag = field("rwanet.tag", ProtoField.bytes, "Poly1305 tag"),
    tag_ok = field("rwanet.tag_ok", ProtoField.bool, "Tag verified"),
    decrypted = field("rwanet.decrypted", ProtoField.bool, "Decrypted"),
    udp_kind = field("rwanet.udp.kind", ProtoField.uint8, "Packet kind", base.HEX, UDP_KINDS),
    udp_pn = field("rwanet.udp.packet_number", ProtoField.uint64, "Packet number", base.DEC),
    udp_ack_next = field("rwanet.udp.ack_next", ProtoField.uint64, "ack_next", base.DEC),
    udp_sacks = field("rwanet.udp.selective_acks", ProtoField.uint64, "selective_acks", base.HEX),
    udp_seq = field("rwanet.udp.sequence", ProtoField.uint64, "sequence", base.DEC),
    udp_cookie = field("rwanet.udp.cookie", ProtoField.bytes, "Cookie"),
    unknown_body = field("rwanet.body", ProtoField.bytes, "Body (unknown type)"),
    session_eph = field("rwanet.session.ephemeral_key", ProtoField.string, "Session (initiator ephemeral key)"),
    session_keyed = field("rwanet.session.key_found", ProtoField.bool, "Session keys in the key log"),
    feature_bit = field("rwanet.feature_bit", ProtoField.uint8, "Feature bit", base.DEC),
    tx_hash_note = field("rwanet.transaction.op_name", ProtoField.string, "Operation"),
    cos_channel = field("rwanet.cosigned.channel_id", ProtoField.string, "Co-signed state: channel id"),
    cos_nonce = field("rwanet.cosigned.nonce", ProtoField.uint64, "Co-signed state: nonce", base.DEC),
    cos_paid = field("rwanet.cosigned.paid", ProtoField.string, "Co-signed state: paid"),
    cos_state = field("rwanet.cosigned.state", ProtoField.string, "Co-signed state: the 65 state bytes"),
    cos_sigs = field("rwanet.cosigned.signatures", ProtoField.string, "Co-signed state: both signatures"),
    cos_source = field("rwanet.cosigned.source", ProtoField.string, "Co-signed state: seen as"),
    cos_update_frame = field("rwanet.cosigned.update_frame", ProtoField.framenum, "The lease_update it countersigns"),
}

local pf = {}
for _, v in pairs(F) do pf[#pf + 1] = v end
rwanet.fields = pf

local ef = {
    malformed = ProtoExpert.new("rwanet.malformed", "Malformed rwanet frame", expert.group.MALFORMED, expert.severity.ERROR),
    decrypt = ProtoExpert.new("rwanet.decryption_failed", "Tag does not verify", expert.group.DECRYPTION, expert.severity.ERROR),
    nokey = ProtoExpert.new("rwanet.no_key", "Sealed, no key in the key log", expert.group.DECRYPTION, expert.severity.WARN),
    unknown = ProtoExpert.new("rwanet.unknown_type", "Unknown message type", expert.group.UNDECODED, expert.severity.WARN),
    error_frame = ProtoExpert.new("rwanet.error_frame", "rwanet error frame", expert.group.RESPONSE_CODE, expert.severity.NOTE),
    refusal = ProtoExpert.new("rwanet.refusal", "rwanet refusal answer", expert.group.RESPONSE_CODE, expert.severity.NOTE),
    gap = ProtoExpert.new("rwanet.stream_gap", "TCP stream gap: record boundaries lost", expert.group.SEQUENCE, expert.severity.WARN),
    content = ProtoExpert.new("rwanet.bad_content", "Embedded structure does not decode (the frame itself is valid)",
        expert.group.UNDECODED, expert.severity.WARN),
    internal = ProtoExpert.new("rwanet.internal", "rwanet dissector error", expert.group.MALFORMED, expert.severity.ERROR),
}
rwanet.experts = { ef.malformed, ef.decrypt, ef.nokey, ef.unknown, ef.error_frame, ef.refusal, ef.gap, ef.internal, ef.content }

---------------------------------------------------------------------------------------------
-- Preferences and the key log
---------------------------------------------------------------------------------------------
rwanet.prefs.tcp_ports = Pref.range("TCP ports", "7700,7710,7720", "TCP ports (arbiter, exchange, lessor)", 65535)
rwanet.prefs.udp_ports = Pref.range("UDP ports", "7700,7710,7720", "UDP ports (arbiter, exchange, lessor)", 65535)
rwanet.prefs.keylog = Pref.string("Key log file", os.getenv("RWANET_KEYLOG") or "",
    "File of RWANET_SESSION lines (the RWANET_KEYLOG the peers wrote)")
rwanet.prefs.heuristic = Pref.bool("Find sessions on any port", true,
    "Recognise a conversation by its plaintext hello (ephemeral ports)")

local keylog = { path = nil, keys = {}, loaded_at = -1 }
local function load_keylog()
    local path = rwanet.prefs.keylog
    keylog.path, keylog.keys, keylog.loaded_at = path, {}, os.time()
    if not path or path == "" then return end
    local fh = io.open(path, "r")
    if not fh then return end
    for line in fh:lines() do
        local e, i2r, r2i = line:match("^RWANET_SESSION%s+(%x+)%s+(%x+)%s+(%x+)")
        if e and #e == 64 and #i2r == 64 and #r2i == 64 then
            keylog.keys[e:lower()] = { i2r = unhex(i2r:lower()), r2i = unhex(r2i:lower()) }
        end
    end
    fh:close()
end

local function lookup_keys(eph_hex)
    if keylog.path ~= rwanet.prefs.keylog then load_keylog() end
    local k = keylog.keys[eph_hex]
    if not k and os.time() ~= keylog.loaded_at then -- a live capture: the line may be new
        load_keylog()
        k = keylog.keys[eph_hex]
    end
    return k
end

---------------------------------------------------------------------------------------------
-- State kept across packets (cleared by init, i.e. on every reload / preference change)
---------------------------------------------------------------------------------------------
local convs, frames, pending_updates, stats
local function reset()
    convs = {}          -- conversation key -> session model
    frames = {}         -- pinfo.number -> list of record / packet results
    pending_updates = {} -- conv key .. channel .. nonce -> the lease_update it countersigns
    stats = {}
end
reset()
function rwanet.init()
    reset()
    keylog.path = nil
end

---------------------------------------------------------------------------------------------
-- The field walker
---------------------------------------------------------------------------------------------
-- A reader over a TvbRange; a failure raises {rwanet=true, msg=...} caught by the frame.
local Malformed = {}
local function fail(msg) error(setmetatable({ msg = msg }, Malformed), 0) end

local function need(r, n, what)
    if r.off + n > r.limit then
        fail(string.format("%s: truncated (needs %d bytes, %d left)", what, n, r.limit - r.off))
    end
end

local walk -- forward

local function add_u128(tree, abbr, range)
    local raw = range:raw()
    local dec = decimal(raw)
    if raw:sub(1, 8) == string.rep("\0", 8) then
        tree:add(F[abbr], range, range:range(8, 8):uint64())
    else
        tree:add(F[abbr .. "_u128"], range, dec)
    end
    return dec
end

local read = {}
-- The next n bytes of the field `abbr`, which must be there.
local function take(r, n, abbr)
    need(r, n, abbr)
    local range = r.tvb:range(r.off, n)
    r.off = r.off + n
    return range
end
local function fixed(n)
    return function(r, tree, abbr, e)
        local range = take(r, n, abbr)
        return range, tree:add(F[abbr], range)
    end
end
read.digest, read.pubkey, read.x25519 = fixed(32), fixed(32), fixed(32)
read.signature = fixed(64)
read.u8 = function(r, tree, abbr, e)
    local range = take(r, 1, abbr)
    local v = range:uint()
    tree:add(F[abbr], range)
    if e.enum and not e.enum[v] then fail(abbr .. ": invalid value " .. v) end
    if e.max and v > e.max then fail(abbr .. ": above its maximum " .. e.max) end
    return v
end
local function unsigned(n)
    return function(r, tree, abbr)
        local range = take(r, n, abbr)
        tree:add(F[abbr], range)
        return range:uint()
    end
end
read.u16, read.u32 = unsigned(2), unsigned(4)
read.u64 = function(r, tree, abbr)
    local range = take(r, 8, abbr)
    local v = range:uint64()
    tree:add(F[abbr], range, v)
    return v
end
read.u128 = function(r, tree, abbr) return add_u128(tree, abbr, take(r, 16, abbr)) end
read.u256 = function(r, tree, abbr)
    local range = take(r, 32, abbr)
    tree:add(F[abbr], range)
    tree:add(F[abbr .. "_dec"], range, decimal(range:raw()))
end
read.bool = function(r, tree, abbr)
    local range = take(r, 1, abbr)
    local v = range:uint()
    tree:add(F[abbr], range)
    if v > 1 then fail(abbr .. ": bool byte 0x" .. string.format("%02x", v) .. " (non_canonical)") end
    return v == 1
end

-- u16 length | bytes, checked against max; returns the content range (or nil when empty).
local function length_prefixed(r, tree, abbr, max)
    need(r, 2, abbr .. " length")
    local lrange = r.tvb:range(r.off, 2)
    local n = lrange:uint()
    if n > max then
        tree:add(F[abbr .. "_length"], lrange)
        fail(string.format("%s length %d above its maximum %d", abbr, n, max))
    end
    r.off = r.off + 2
    need(r, n, abbr)
    local crange = n > 0 and r.tvb:range(r.off, n) or nil
    r.off = r.off + n
    return lrange, crange, n
end

read.bytes = function(r, tree, abbr, e)
    local lrange, crange, n = length_prefixed(r, tree, abbr, e[3])
    local st = tree:add(F[abbr], crange or lrange:range(0, 0))
    st:append_text(string.format(" (%d bytes)", n))
    tree:add(F[abbr .. "_length"], lrange)
    return crange
end
read.text = function(r, tree, abbr, e)
    local lrange, crange, n = length_prefixed(r, tree, abbr, e[3])
    local s = crange and crange:raw() or ""
    local shown = valid_utf8(s) and s or s:gsub("[\128-\255]", "?")
    if crange then tree:add(F[abbr], crange, shown) else tree:add(F[abbr], lrange:range(0, 0), "") end
    tree:add(F[abbr .. "_length"], lrange)
    if not valid_utf8(s) then fail(abbr .. ": invalid UTF-8") end
    return s
end
read.features = function(r, tree, abbr, e)
    local lrange, crange, n = length_prefixed(r, tree, abbr, 32)
    local item = tree:add(F[abbr], crange or lrange:range(0, 0))
    tree:add(F[abbr .. "_length"], lrange)
    if crange then
        if crange:range(0, 1):uint() == 0 then fail(abbr .. ": leading zero byte (non_canonical)") end
        local bits = {}
        for i = 0, n - 1 do
            local byte = crange:range(i, 1):uint()
            for k = 0, 7 do
                if band(byte, bit.lshift(1, k)) ~= 0 then
                    local b = (n - 1 - i) * 8 + k
                    bits[#bits + 1] = b
                    item:add(f.feature_bit, crange:range(i, 1), b):append_text(b % 2 == 0 and " (required)" or " (optional)")
                end
            end
        end
        table.sort(bits)
        item:append_text(" {" .. table.concat(bits, ", ") .. "}")
    else
        item:append_text(" (none)")
    end
end
read.set16 = function(r, tree, abbr, e)
    need(r, 1, abbr .. " count")
    local crange = r.tvb:range(r.off, 1)
    local count = crange:uint()
    local sub = tree:add(rwanet, crange, label_of(e[1]) .. ": " .. count .. " values")
    sub:add(F[abbr .. "_count"], crange)
    if count > e[3] then fail(abbr .. " count above its maximum") end
    r.off = r.off + 1
    local prev, vals = -1, {}
    for _ = 1, count do
        need(r, 2, abbr)
        local range = r.tvb:range(r.off, 2)
        local v = range:uint()
        sub:add(F[abbr], range)
        r.off = r.off + 2
        if v <= prev then fail(abbr .. ": not strictly increasing (non_canonical)") end
        prev = v
        vals[#vals + 1] = v
    end
    sub:append_text(" {" .. table.concat(vals, ", ") .. "}")
end

local function parent_prefix(abbr) return abbr:match("^(.*)%.[^.]*$") end

read.list = function(r, tree, abbr, e, ctx)
    need(r, 1, abbr .. " count")
    local crange = r.tvb:range(r.off, 1)
    local count = crange:uint()
    local start = r.off
    local sub = tree:add(rwanet, crange, label_of(e[1]) .. ": " .. count .. " items")
    sub:add(F[abbr .. "_count"], crange)
    if count > e[4] then fail(string.format("%s count %d above its maximum %d (length_above_maximum)", abbr, count, e[4])) end
    r.off = r.off + 1
    for i = 1, count do walk(r, sub, e[3], parent_prefix(abbr), ctx, " #" .. i) end
    sub:set_len(r.off - start)
end
read.optional = function(r, tree, abbr, e, ctx)
    need(r, 1, abbr .. " present")
    local prange = r.tvb:range(r.off, 1)
    local p = prange:uint()
    r.off = r.off + 1
    if p > 1 then fail(abbr .. " present: not a bool (non_canonical)") end
    if p == 0 then
        tree:add(F[abbr .. "_present"], prange):set_text(label_of(e[1]) .. ": absent")
        return nil
    end
    tree:add(F[abbr .. "_present"], prange)
    return walk(r, tree, e[3], parent_prefix(abbr), ctx)
end
read.struct = function(r, tree, abbr, e, ctx, suffix)
    local sname = e[3]
    local start = r.off
    local sub = tree:add(rwanet, r.tvb:range(r.off, 0), label_of(e[1]) .. (suffix or ""))
    local values = {}
    for _, fe in ipairs(STRUCTS[sname]) do
        values[fe[1]] = walk(r, sub, fe, "rwanet." .. sname, ctx)
    end
    sub:set_len(r.off - start)
    local range = r.tvb:range(start, r.off - start)
    if ctx.on_struct then ctx.on_struct(sname, range, values, sub) end
    return values
end

-- A transaction (Transactions): the operation body by its tag.
read.operation = function(r, tree, abbr, e, ctx)
    need(r, 1, "operation.tag")
    local trange = r.tvb:range(r.off, 1)
    local tag = trange:uint()
    r.off = r.off + 1
    local o = OPERATIONS[tag]
    local start = r.off - 1
    local sub = tree:add(rwanet, trange, "operation: " .. (o and o[1] or string.format("unknown 0x%02x", tag)))
    sub:add(F["rwanet.operation.tag"], trange)
    if not o then fail(string.format("operation tag 0x%02x unknown (invalid_value)", tag)) end
    sub:add(F["rwanet.operation.name"], trange, o[1])
    ctx.op_names = ctx.op_names or {}
    ctx.op_names[#ctx.op_names + 1] = o[1]
    for _, fe in ipairs(o[2]) do walk(r, sub, fe, "rwanet.operation", ctx) end
    sub:set_len(r.off - start)
    return o[1]
end

-- bytes<max> whose content is parsed by `inner(sub_reader, subtree)`.
local function embedded(inner)
    return function(r, tree, abbr, e, ctx)
        local lrange, crange, n = length_prefixed(r, tree, abbr, e[3])
        local item = tree:add(F[abbr], crange or lrange:range(0, 0))
        item:append_text(string.format(" (%d bytes)", n))
        item:add(F[abbr .. "_length"], lrange)
        if crange then
            local sr = { tvb = crange:tvb(), off = 0, limit = n }
            -- an inner structure that does not decode is shown, not fatal: the frame layer
            -- only checks the length (Arbiter messages)
            local ok, err = pcall(inner, sr, item, ctx)
            if not ok then
                local msg = type(err) == "table" and err.msg or tostring(err)
                item:add_proto_expert_info(ef.content, "content: " .. msg)
                ctx.inner_errors = (ctx.inner_errors or 0) + 1
            elseif sr.off ~= sr.limit then
                item:add_proto_expert_info(ef.content, "content: trailing bytes")
            end
        end
        return crange
    end
end
read.tx = embedded(function(sr, item, ctx)
    for _, fe in ipairs(STRUCTS.transaction) do walk(sr, item, fe, "rwanet.transaction", ctx) end
end)
read.header = embedded(function(sr, item, ctx)
    if sr.limit ~= 148 then fail("block header of " .. sr.limit .. " bytes, not 148") end
    for _, fe in ipairs(STRUCTS.block_header) do walk(sr, item, fe, "rwanet.block_header", ctx) end
end)
read.statekey = embedded(function(sr, item, ctx)
    need(sr, 1, "state_key.kind")
    local krange = sr.tvb:range(0, 1)
    local kind = krange:uint()
    item:add(F["rwanet.state_key.kind"], krange)
    sr.off = 1
    local k = STATE_KINDS[kind]
    if not k then fail(string.format("state key kind 0x%02x unknown", kind)) end
    ctx.state_kind = kind
    for _, fe in ipairs(k[2]) do walk(sr, item, fe, "rwanet.state_key", ctx) end
end)
read.statevalue = embedded(function(sr, item, ctx)
    local k = STATE_KINDS[ctx.state_kind or -1]
    if not k then sr.off = sr.limit; return end
    for _, fe in ipairs(k[3]) do walk(sr, item, fe, "rwanet." .. k[1], ctx) end
end)

function walk(r, tree, e, prefix, ctx, suffix)
    if e.cond and not ctx.values[e.cond] then return nil end
    local abbr = abbr_of(e, prefix)
    local fn = read[e[2]]
    local v = fn(r, tree, abbr, e, ctx, suffix)
    if ctx.values then ctx.values[e[1]] = v end
    return v
end

---------------------------------------------------------------------------------------------
-- Frames
---------------------------------------------------------------------------------------------
-- Dissects one frame (u16 type | body) held in `tvb` (a whole Tvb). Returns the message name.
-- `rec` is the stored record result (for per-frame cached cross-packet facts); `conv` the session.
local session_keys -- defined with the sessions, below
local function dissect_frame(tvb, pinfo, tree, conv, rec)
    local n = tvb:len()
    local ftree = tree:add(rwanet, tvb:range(0, n), "Frame")
    ftree:add(f.frame_len, tvb:range(0, 0), n):set_generated()
    if n < 2 then
        ftree:add_proto_expert_info(ef.malformed, "frame shorter than its type (truncated)")
        return "malformed"
    end
    local trange = tvb:range(0, 2)
    local t = trange:uint()
    local m = MESSAGES[t]
    local name = m and m[1] or string.format("type_0x%04x", t)
    ftree:set_text(string.format("Frame: %s (0x%04x), %d bytes", name, t, n))
    ftree:add(f.msg_type, trange)
    ftree:add(f.msg_name, trange, name)
    stats[name] = true
    if not m then
        if n > 2 then ftree:add(f.unknown_body, tvb:range(2, n - 2)) end
        if t % 2 == 0 then
            ftree:add_proto_expert_info(ef.malformed, string.format("unknown even type 0x%04x (unknown_required_type)", t))
        else
            ftree:add_proto_expert_info(ef.unknown, string.format("unknown odd type 0x%04x (ignored by receivers)", t))
        end
        return name
    end
    local r = { tvb = tvb, off = 2, limit = n }
    local cosigned = {}
    local ctx = { values = {}, on_struct = function(sname, range, values, sub)
        if sname == "state" then
            cosigned.state_range, cosigned.state = range, values
        elseif sname == "cosigned_state" then
            cosigned.full = range
        end
    end }
    local ok, err = pcall(function()
        for _, e in ipairs(m[2]) do walk(r, ftree, e, "rwanet." .. name, ctx) end
    end)
    if not ok then
        local msg = getmetatable(err) == Malformed and err.msg or ("dissector bug: " .. tostring(err))
        ftree:add_proto_expert_info(getmetatable(err) == Malformed and ef.malformed or ef.internal, msg)
        return name
    end
    if r.off < n then
        ftree:add_proto_expert_info(ef.malformed, string.format("%d bytes after the last field (trailing_bytes)", n - r.off))
    end
    local v = ctx.values
    if EVENTS[t] and tostring(v.request_id) ~= "0" then
        ftree:add_proto_expert_info(ef.malformed, "event with a request id other than 0 (invalid_value)")
    end
    if ctx.op_names then name = name .. "(" .. table.concat(ctx.op_names, ",") .. ")" end
    -- Expected refusals are answers, not errors (Errors, Arbiter messages): notes only.
    if t == 0x0020 or t == 0x0021 then
        ftree:add_proto_expert_info(ef.error_frame, string.format("%s %s: %s", m[1], ERROR_CODES[v.code] or
            string.format("code_0x%04x", v.code), v.text))
    elseif t == 0x0202 or t == 0x020C or t == 0x0708 or t == 0x070A or t == 0x0404 or t == 0x0414 then
        ftree:add_proto_expert_info(ef.refusal, string.format("%s: %s", ERROR_CODES[v.code] or
            string.format("code_0x%04x", v.code), v.reason or ""))
    end
    -- The hello names the session: the key log line is found by its ephemeral key.
    if t == 0x0010 and conv and conv.eph then
        local item = ftree:add(f.session_keyed, tvb:range(0, 0), session_keys(conv) ~= nil)
        item:set_generated()
    end
    -- Co-signed states: a lease_latest_state or a channel transaction carries one whole; a
    -- lease_update (proposer's signature) and the lease_countersign that answers it
    -- (receiver's signature) make one together.
    local function show_cosigned(channel, nonce, paid, state_bytes, sigs, source, upd_frame)
        local ct = ftree:add(rwanet, tvb:range(0, 0), string.format("Co-signed state: nonce %s, paid %s (%s)",
            tostring(nonce), paid, source))
        ct:set_generated()
        ct:add(f.cos_channel, tvb:range(0, 0), hex(channel)):set_generated()
        ct:add(f.cos_nonce, tvb:range(0, 0), nonce):set_generated()
        ct:add(f.cos_paid, tvb:range(0, 0), paid):set_generated()
        ct:add(f.cos_state, tvb:range(0, 0), hex(state_bytes)):set_generated()
        ct:add(f.cos_sigs, tvb:range(0, 0), hex(sigs)):set_generated()
        ct:add(f.cos_source, tvb:range(0, 0), source):set_generated()
        if upd_frame then ct:add(f.cos_update_frame, tvb:range(0, 0), upd_frame):set_generated() end
    end
    if cosigned.full then
        local raw = cosigned.full:raw()
        local s = raw:sub(1, 65)
        local st = cosigned.state
        show_cosigned(s:sub(1, 32), st.nonce, st.paid, s, raw:sub(66, 193), name)
    end
    if t == 0x0410 and conv and rec and not rec.visited then
        -- remember the proposal for the countersignature, in this conversation's other direction
        local raw = cosigned.state_range:raw()
        local key = rec.conv_key .. "|" .. hex(raw:sub(1, 32)) .. "|" .. tostring(v.state and v.state.nonce or "")
        pending_updates[key .. "|" .. rec.dir] = { state = raw, sig = tvb:range(2 + 8 + 65, 64):raw(),
            frame = pinfo.number, nonce = cosigned.state.nonce, paid = cosigned.state.paid }
    end
    if t == 0x0412 and conv and rec then
        if not rec.visited then
            local other = rec.dir == "i2r" and "r2i" or "i2r"
            local key = rec.conv_key .. "|" .. hex(tvb:range(10, 32):raw()) .. "|" .. tostring(v.nonce)
            local upd = pending_updates[key .. "|" .. other]
            if upd then
                rec.cosigned = { channel = upd.state:sub(1, 32), nonce = upd.nonce, paid = upd.paid,
                    state = upd.state, sigs = upd.sig .. tvb:range(2 + 8 + 40, 64):raw(), frame = upd.frame }
            end
        end
        local c = rec.cosigned
        if c then show_cosigned(c.channel, c.nonce, c.paid, c.state, c.sigs, "lease_update + lease_countersign", c.frame) end
    end
    return name
end

---------------------------------------------------------------------------------------------
-- Sessions
---------------------------------------------------------------------------------------------
local f_tcp_seq = Field.new("tcp.seq")
local f_tcp_stream = Field.new("tcp.stream")

local function endpoint(addr, port) return tostring(addr) .. ":" .. tostring(port) end

local function conv_key_of(pinfo, transport, stream)
    local a, b = endpoint(pinfo.src, pinfo.src_port), endpoint(pinfo.dst, pinfo.dst_port)
    if a > b then a, b = b, a end
    return transport .. "|" .. a .. "|" .. b .. (stream and ("|" .. stream) or "")
end

local function new_conv(key, transport, initiator)
    local c = { key = key, transport = transport, initiator = initiator, dirs = {} }
    convs[key] = c
    return c
end

function session_keys(conv)
    if conv.keys then return conv.keys end
    if conv.eph then conv.keys = lookup_keys(conv.eph) end
    return conv.keys
end

-- hello frame check: exact length for its features (Messages: hello is 102 + F bytes).
local function is_hello(s, off) -- s: raw string, off: 1-based start of the frame
    if #s < off + 101 then return false end
    if s:byte(off) ~= 0x00 or s:byte(off + 1) ~= 0x10 then return false end
    local flen = s:byte(off + 4) * 256 + s:byte(off + 5)
    return flen <= 32, 102 + flen
end

---------------------------------------------------------------------------------------------
-- TCP
---------------------------------------------------------------------------------------------
local function u32_at(s, i) -- big-endian
    local a, b, c, d = s:byte(i, i + 3)
    return ((a * 256 + b) * 256 + c) * 256 + d
end

-- First pass: feed this segment's payload to the direction's stream and cut complete records.
local function tcp_first_pass(tvb, pinfo, conv)
    local src = endpoint(pinfo.src, pinfo.src_port)
    local dirname = (src == conv.initiator) and "i2r" or "r2i"
    local d = conv.dirs[dirname]
    if not d then
        d = { buf = "", buf_start = 0, next_seq = nil, records = 0, sealed = false, counter = 0 }
        conv.dirs[dirname] = d
    end
    local payload = tvb:raw()
    local seqf = f_tcp_seq()
    local seq = seqf and seqf.value or nil
    local result = { dir = dirname, recs = {} }
    if seq and d.next_seq then
        if seq + #payload <= d.next_seq then
            result.retransmission = true
            return result
        elseif seq < d.next_seq then
            payload = payload:sub(d.next_seq - seq + 1)
            result.skip = d.next_seq - seq
        elseif seq > d.next_seq then
            result.gap = true
            d.broken = true
        end
    end
    if seq then d.next_seq = seq + (result.skip or 0) + #payload end
    if d.broken then result.broken = true; return result end
    local offset_in_tvb = (result.skip or 0) - #d.buf -- where d.buf starts relative to this tvb
    d.buf = d.buf .. payload
    local pos = 1
    while #d.buf - pos + 1 >= 4 do
        local len = u32_at(d.buf, pos)
        local rec = { dir = dirname, conv_key = conv.key, len = len }
        if len < 2 or len > 65552 then
            rec.bad_length = true
            result.recs[#result.recs + 1] = rec
            d.broken = true
            pos = #d.buf + 1
            break
        end
        if #d.buf - pos + 1 < 4 + len then break end
        local bytes = d.buf:sub(pos, pos + 3 + len)
        local start = offset_in_tvb + pos - 1
        if start >= 0 then rec.tvb_off = start else rec.reassembled = bytes end
        rec.record_number = d.records
        d.records = d.records + 1
        -- The switch (TCP records, "When each side switches"): the initiator seals after its
        -- hello_finish; the responder after it has seen the initiator's hello_finish.
        if d.sealed then
            rec.sealed = true
            rec.counter = d.counter
            d.counter = d.counter + 1
            local keys = session_keys(conv)
            if keys then
                local key = keys[dirname]
                local plain, ok = aead_open(key, 0, rec.counter, bytes:sub(1, 4), bytes:sub(5))
                rec.tag_ok = ok
                rec.plain = plain
                if not ok and bytes:sub(5, 6):byte(1) == 0 and bytes:byte(6) == 0x20 then
                    -- a plaintext error where a sealed record was expected (a failed handshake)
                    rec.sealed, rec.plain, rec.counter = false, bytes:sub(5), nil
                    d.counter = d.counter - 1
                end
            end
        else
            rec.plain = bytes:sub(5)
            local t = len >= 2 and (bytes:byte(5) * 256 + bytes:byte(6)) or -1
            if dirname == "i2r" and t == 0x0010 and d.records == 1 then
                local _, hlen = is_hello(bytes, 5)
                if hlen == len then conv.eph = hex(bytes:sub(5 + len - 32, 4 + len)) end
            end
            if dirname == "i2r" and t == 0x0014 then
                d.sealed = true
                local other = conv.dirs.r2i
                if not other then
                    other = { buf = "", records = 0, sealed = false, counter = 0 }
                    conv.dirs.r2i = other
                end
                other.sealed = true
            end
        end
        result.recs[#result.recs + 1] = rec
        pos = pos + 4 + len
    end
    d.buf = d.buf:sub(pos)
    if #d.buf > 0 then result.pending = #d.buf end
    return result
end

local function show_record(tvb, pinfo, tree, conv, rec)
    local rtvb, base_off
    if rec.tvb_off then
        rtvb, base_off = tvb, rec.tvb_off
    else
        rtvb, base_off = ByteArray.new(hex(rec.reassembled)):tvb("Reassembled rwanet record"), 0
    end
    if rec.bad_length then
        local item = tree:add(rwanet, tvb:range(0, math.min(4, tvb:len())), "TCP record with an impossible length")
        item:add_proto_expert_info(ef.malformed, string.format("record length %d outside 2..65552", rec.len))
        return "malformed"
    end
    local rt = tree:add(rwanet, rtvb:range(base_off, 4 + rec.len), string.format("TCP record #%d (%s), %d bytes%s",
        rec.record_number, rec.dir, rec.len, rec.tvb_off and "" or ", reassembled"))
    rt:add(f.rec_len, rtvb:range(base_off, 4))
    rt:add(f.direction, rtvb:range(base_off, 0), rec.dir):set_generated()
    rt:add(f.rec_sealed, rtvb:range(base_off, 0), rec.sealed == true):set_generated()
    if conv.eph then rt:add(f.session_eph, rtvb:range(base_off, 0), conv.eph):set_generated() end
    local body = rtvb:range(base_off + 4, rec.len)
    if not rec.sealed then
        return dissect_frame(body:tvb(), pinfo, rt, conv, rec)
    end
    rt:add(f.rec_counter, rtvb:range(base_off, 0), UInt64.new(rec.counter)):set_generated()
    if rec.len < 18 then
        rt:add_proto_expert_info(ef.malformed, "sealed record shorter than 18 bytes")
        return "malformed"
    end
    rt:add(f.ciphertext, rtvb:range(base_off + 4, rec.len - 16))
    rt:add(f.tag, rtvb:range(base_off + 4 + rec.len - 16, 16))
    if not rec.plain then
        rt:add_proto_expert_info(ef.nokey, "no key for session " .. tostring(conv.eph))
        rt:add(f.decrypted, rtvb:range(base_off, 0), false):set_generated()
        return "sealed"
    end
    rt:add(f.decrypted, rtvb:range(base_off, 0), true):set_generated()
    local ti = rt:add(f.tag_ok, rtvb:range(base_off + 4 + rec.len - 16, 16), rec.tag_ok)
    ti:set_generated()
    if not rec.tag_ok then
        ti:add_proto_expert_info(ef.decrypt, "Poly1305 tag does not verify (counter " .. rec.counter .. ")")
        return "undecryptable"
    end
    local ptvb = ByteArray.new(hex(rec.plain)):tvb("Decrypted rwanet record")
    return dissect_frame(ptvb, pinfo, rt, conv, rec)
end

local function dissect_tcp(tvb, pinfo, tree, conv)
    local result = frames[pinfo.number]
    if not result then
        result = tcp_first_pass(tvb, pinfo, conv)
        frames[pinfo.number] = result
    else
        for _, rec in ipairs(result.recs) do rec.visited = true end
    end
    pinfo.cols.protocol = "RWANET"
    local root = tree:add(rwanet, tvb:range(0, tvb:len()))
    local names = {}
    if result.retransmission then
        root:append_text(", retransmitted segment")
        names[#names + 1] = "[retransmission]"
    end
    if result.gap or result.broken then
        root:add_proto_expert_info(ef.gap)
        names[#names + 1] = "[stream gap]"
    end
    for _, rec in ipairs(result.recs) do
        local ok, name = pcall(show_record, tvb, pinfo, root, conv, rec)
        if not ok then
            root:add_proto_expert_info(ef.internal, tostring(name))
            name = "error"
        end
        names[#names + 1] = name
    end
    if result.pending then
        root:add(f.rec_partial, tvb:range(0, 0), result.pending):set_generated()
        if #result.recs == 0 then names[#names + 1] = "[record continues]" end
    end
    pinfo.cols.info = table.concat(names, ", ")
    return tvb:len()
end

local function tcp_entry(tvb, pinfo, tree, heuristic)
    local sf = f_tcp_stream()
    local key = conv_key_of(pinfo, "tcp", sf and tostring(sf.value))
    local conv = convs[key]
    if not conv then
        if pinfo.visited and not frames[pinfo.number] then return 0 end
        local s = tvb:raw(0, math.min(tvb:len(), 200))
        local hello, hlen = false, nil
        -- the hello may be cut by the segment: its length, type and features length suffice
        if #s >= 10 then
            local len, flen = u32_at(s, 1), s:byte(9) * 256 + s:byte(10)
            hello = s:byte(5) == 0 and s:byte(6) == 0x10 and flen <= 32 and len == 102 + flen
        end
        if hello then
            conv = new_conv(key, "tcp", endpoint(pinfo.src, pinfo.src_port))
        elseif heuristic then
            return 0
        else
            -- a registered port without the handshake in the capture: guess the direction
            conv = new_conv(key, "tcp", endpoint(pinfo.src, pinfo.src_port))
            conv.dirs.i2r = { buf = "", records = 2, sealed = true, counter = 0, unknown = true }
            conv.dirs.r2i = { buf = "", records = 1, sealed = true, counter = 0, unknown = true }
        end
    end
    return dissect_tcp(tvb, pinfo, tree, conv)
end

---------------------------------------------------------------------------------------------
-- UDP
---------------------------------------------------------------------------------------------
local function dissect_udp(tvb, pinfo, tree, conv)
    pinfo.cols.protocol = "RWANET"
    local n = tvb:len()
    local src = endpoint(pinfo.src, pinfo.src_port)
    local dirname = (src == conv.initiator) and "i2r" or "r2i"
    local root = tree:add(rwanet, tvb:range(0, n))
    if n == 0 then return 0 end
    local kind = tvb:range(0, 1):uint()
    root:append_text(", " .. (UDP_KINDS[kind] or "invalid kind") .. " packet (" .. dirname .. ")")
    root:add(f.udp_kind, tvb:range(0, 1))
    root:add(f.direction, tvb:range(0, 0), dirname):set_generated()
    local rec = frames[pinfo.number]
    if not rec then
        rec = { dir = dirname, conv_key = conv.key }
        frames[pinfo.number] = rec
    else
        rec.visited = true
    end
    local name
    if n > 1200 then root:add_proto_expert_info(ef.malformed, "datagram above 1 200 bytes") end
    if kind == 1 or kind == 5 then
        local off = 1
        if kind == 5 then
            if n < 17 then root:add_proto_expert_info(ef.malformed, "cookie handshake packet too short"); return n end
            root:add(f.udp_cookie, tvb:range(1, 16))
            off = 17
        end
        if not rec.visited and dirname == "i2r" and n - off >= 102 then
            local s = tvb:raw(off, n - off)
            local ok, hlen = is_hello(s, 1)
            if ok and hlen == #s then
                local eph = hex(s:sub(#s - 31))
                if conv.eph ~= eph then conv.eph, conv.keys = eph, nil end -- a new session on this pair
            end
        end
        if conv.eph then root:add(f.session_eph, tvb:range(0, 0), conv.eph):set_generated() end
        if n - off < 2 then
            root:add_proto_expert_info(ef.malformed, "handshake packet without a frame")
            name = "malformed"
        else
            name = dissect_frame(tvb:range(off, n - off):tvb(), pinfo, root, conv, rec)
        end
        if kind == 5 then name = "cookie+" .. name end
    elseif kind == 4 then
        if n ~= 17 then root:add_proto_expert_info(ef.malformed, "cookie packet of " .. n .. " bytes, not 17") end
        root:add(f.udp_cookie, tvb:range(1, math.min(16, n - 1)))
        name = "cookie"
    elseif kind == 2 or kind == 3 then
        if n < 9 + 16 then
            root:add_proto_expert_info(ef.malformed, "sealed packet too short")
            pinfo.cols.info = "malformed"
            return n
        end
        local pn = tvb:range(1, 8):uint64()
        root:add(f.udp_pn, tvb:range(1, 8))
        root:add(f.rec_sealed, tvb:range(0, 0), true):set_generated()
        if conv.eph then root:add(f.session_eph, tvb:range(0, 0), conv.eph):set_generated() end
        root:add(f.ciphertext, tvb:range(9, n - 25))
        root:add(f.tag, tvb:range(n - 16, 16))
        if rec.plain == nil and not rec.visited then
            local keys = session_keys(conv)
            if keys then
                local raw = tvb:raw()
                rec.plain, rec.tag_ok = aead_open(keys[dirname], pn:higher(), pn:lower(), raw:sub(1, 9), raw:sub(10))
            end
        end
        name = kind == 2 and "data" or "ack"
        if not rec.plain then
            root:add_proto_expert_info(ef.nokey, "no key for session " .. tostring(conv.eph))
            root:add(f.decrypted, tvb:range(0, 0), false):set_generated()
            name = name .. " [sealed]"
        else
            root:add(f.decrypted, tvb:range(0, 0), true):set_generated()
            local ti = root:add(f.tag_ok, tvb:range(n - 16, 16), rec.tag_ok)
            ti:set_generated()
            if not rec.tag_ok then
                ti:add_proto_expert_info(ef.decrypt, "Poly1305 tag does not verify (packet number " .. tostring(pn) .. ")")
                name = name .. " [undecryptable]"
            else
                local ptvb = ByteArray.new(hex(rec.plain)):tvb("Decrypted rwanet packet")
                local pl = ptvb:len()
                local ct = root:add(rwanet, ptvb:range(0, pl), "Sealed content")
                if pl < 16 then
                    ct:add_proto_expert_info(ef.malformed, "sealed content shorter than an acknowledgement")
                else
                    ct:add(f.udp_ack_next, ptvb:range(0, 8))
                    ct:add(f.udp_sacks, ptvb:range(8, 8))
                    if kind == 3 then
                        if pl ~= 16 then ct:add_proto_expert_info(ef.malformed, "ack content with trailing bytes") end
                        name = "ack " .. tostring(ptvb:range(0, 8):uint64())
                    elseif pl < 26 then
                        ct:add_proto_expert_info(ef.malformed, "data content without a frame")
                    else
                        ct:add(f.udp_seq, ptvb:range(16, 8))
                        name = dissect_frame(ptvb:range(24, pl - 24):tvb(), pinfo, ct, conv, rec)
                    end
                end
            end
        end
    else
        root:add_proto_expert_info(ef.malformed, string.format("unknown packet kind 0x%02x", kind))
        name = "invalid kind"
    end
    pinfo.cols.info = name
    return n
end

local function udp_entry(tvb, pinfo, tree, heuristic)
    local key = conv_key_of(pinfo, "udp")
    local conv = convs[key]
    if not conv then
        local n = tvb:len()
        if n < 1 then return 0 end
        local kind = tvb:range(0, 1):uint()
        local off = (kind == 1 and 1) or (kind == 5 and 17) or nil
        local ok, hlen = false, nil
        if off and n - off >= 102 then ok, hlen = is_hello(tvb:raw(off, n - off), 1) end
        if ok and hlen == n - off then
            conv = new_conv(key, "udp", endpoint(pinfo.src, pinfo.src_port))
        elseif heuristic then
            return 0
        else
            conv = new_conv(key, "udp", endpoint(pinfo.src, pinfo.src_port))
        end
    end
    return dissect_udp(tvb, pinfo, tree, conv)
end

---------------------------------------------------------------------------------------------
-- Registration
---------------------------------------------------------------------------------------------
function rwanet.dissector(tvb, pinfo, tree)
    if f_tcp_stream() then return tcp_entry(tvb, pinfo, tree, false) end
    return udp_entry(tvb, pinfo, tree, false)
end

local function heur_tcp(tvb, pinfo, tree)
    if not rwanet.prefs.heuristic then return false end
    return tcp_entry(tvb, pinfo, tree, true) > 0
end
local function heur_udp(tvb, pinfo, tree)
    if not rwanet.prefs.heuristic then return false end
    return udp_entry(tvb, pinfo, tree, true) > 0
end
rwanet:register_heuristic("tcp", heur_tcp)
rwanet:register_heuristic("udp", heur_udp)

local registered = { tcp = nil, udp = nil }
local function register_ports()
    local tcp_table, udp_table = DissectorTable.get("tcp.port"), DissectorTable.get("udp.port")
    tcp_table:remove_all(rwanet)
    udp_table:remove_all(rwanet)
    registered.tcp, registered.udp = tostring(rwanet.prefs.tcp_ports), tostring(rwanet.prefs.udp_ports)
    if registered.tcp ~= "" then tcp_table:add(registered.tcp, rwanet) end
    if registered.udp ~= "" then udp_table:add(registered.udp, rwanet) end
end
function rwanet.prefs_changed()
    register_ports()
    keylog.path = nil
end
register_ports()

-- For tests and other scripts: the vectors' crypto, reachable without a capture.
rwanet_internal = { aead_open = aead_open, hex = hex, unhex = unhex, decimal = decimal }
