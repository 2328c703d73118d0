//! The transform U of spec/PROTOCOL.md as a streaming transducer: sans-I/O, no sockets, no files.
//!
//! `feed` appends to `out` the transform of everything it was given except a held-back tail (D-2): the
//! incomplete end of the input, only while it is a proper prefix of some well-formed sequence (at most 3
//! bytes). `finish` appends that tail unchanged at end of stream (E-1, T-3).
//!
//! Scanning (T-2, T-3): from the current byte, a well-formed sequence of Unicode Table 3-7 is mapped through
//! the table (T-4) and skipped; any other byte is copied and the scan moves one byte on. The hot loop
//! (`feed_from`) takes 64 bytes at a time when the table's ASCII part is exactly a-z -> A-Z (it is, checked
//! when the table is loaded): it stores them uppercased, then replaces the two- and three-byte characters
//! among them in place, found from a bit mask of their lead bytes.

use crate::table::{key, packed_len, unpack, Table, THREE_BYTE_KEY, TWO_BYTE_KEY};

pub struct Transducer {
    table: &'static Table,
    tail: [u8; 3],
    tail_len: usize,
}

/// What starts at the current byte.
enum Scan {
    /// A well-formed sequence of this many bytes, and its code point.
    Char(usize, u32),
    /// Not the start of a well-formed sequence: copy one byte.
    Invalid,
    /// A proper prefix of a well-formed sequence that the input ends in.
    Incomplete,
}

/// Table 3-7: the range of the second byte after a lead byte, and the sequence length.
#[inline]
fn lead(b: u8) -> Option<(u8, u8, usize)> {
    Some(match b {
        0xC2..=0xDF => (0x80, 0xBF, 2),
        0xE0 => (0xA0, 0xBF, 3),
        0xE1..=0xEC | 0xEE..=0xEF => (0x80, 0xBF, 3),
        0xED => (0x80, 0x9F, 3),
        0xF0 => (0x90, 0xBF, 4),
        0xF1..=0xF3 => (0x80, 0xBF, 4),
        0xF4 => (0x80, 0x8F, 4),
        _ => return None,
    })
}

/// Classify what starts at `bytes[0]` (`bytes` not empty, `bytes[0]` not ASCII).
#[inline(always)]
fn scan(bytes: &[u8]) -> Scan {
    let b0 = bytes[0];
    let (low, high, len) = match lead(b0) {
        Some(found) => found,
        None => return Scan::Invalid,
    };
    let mut code_point = u32::from(b0) & (0x7F >> len);
    for k in 1..len {
        let b = match bytes.get(k) {
            Some(&b) => b,
            None => return Scan::Incomplete,
        };
        let (lo, hi) = if k == 1 { (low, high) } else { (0x80, 0xBF) };
        if b < lo || b > hi {
            return Scan::Invalid;
        }
        code_point = (code_point << 6) | u32::from(b & 0x3F);
    }
    Scan::Char(len, code_point)
}

/// What a first byte starts, for the two- and three-byte sequences of Table 3-7.
#[derive(Clone, Copy)]
struct Lead {
    /// The bits of the next two bytes (a little-endian u16) that a well-formed sequence fixes, and to what.
    /// For a byte that starts neither, nothing matches.
    fixed: u16,
    expected: u16,
    len: u16,
    /// For `table::key`.
    key_multiplier: u32,
}

static LEADS: [Lead; 256] = leads();

const fn leads() -> [Lead; 256] {
    let mut leads = [Lead { fixed: 0, expected: 1, len: 0, key_multiplier: 0 }; 256];
    let mut first = 0xC2;
    while first <= 0xEF {
        leads[first] = if first <= 0xDF {
            Lead { fixed: 0x00C0, expected: 0x0080, len: 2, key_multiplier: TWO_BYTE_KEY }
        } else {
            Lead { fixed: 0xC0C0, expected: 0x8080, len: 3, key_multiplier: THREE_BYTE_KEY }
        };
        first += 1;
    }
    leads[0xE0].fixed = 0xC0E0; // A0..BF: not overlong
    leads[0xE0].expected = 0x80A0;
    leads[0xED].fixed = 0xC0E0; // 80..9F: not a surrogate
    leads[0xED].expected = 0x8080;
    leads
}

/// The well-formed two- or three-byte sequence at the bottom of `bytes` (little-endian), as its length and
/// `table::key`; None for anything else. Without a branch on which length: both mix within a line of text.
#[inline(always)]
fn two_or_three_bytes(bytes: u32) -> Option<(usize, u16)> {
    let lead = LEADS[(bytes & 0xFF) as usize];
    if (bytes >> 8) as u16 & lead.fixed != lead.expected {
        return None;
    }
    Some((lead.len as usize, key(bytes, lead.key_multiplier)))
}

/// What starts at `bytes[0]`, a lead byte that starts no two- or three-byte sequence and is followed by at least
/// 3 bytes, as its length and U packed: a four-byte character, or one invalid byte as it is. Out of line: rare in
/// text, and the hot loop stays small.
#[cold]
#[inline(never)]
fn four_bytes_or_invalid(table: &Table, bytes: &[u8]) -> (usize, u64) {
    match scan(bytes) {
        Scan::Char(len, code_point) => (len, mapped(table, code_point, &bytes[..len])),
        Scan::Invalid | Scan::Incomplete => (1, u64::from(bytes[0]) | 1 << 56),
    }
}

/// The packed replacement of a well-formed sequence: from the table, or the sequence's own bytes.
#[inline(always)]
fn mapped(table: &Table, code_point: u32, original: &[u8]) -> u64 {
    match table.packed(code_point) {
        0 => {
            let mut own = [0u8; 8];
            own[..original.len()].copy_from_slice(original);
            own[7] = original.len() as u8;
            u64::from_le_bytes(own)
        }
        packed => packed,
    }
}

/// The hot loop's 64-byte blocks: stored with a-z uppercased, and where their lead bytes are. SSE2 on
/// x86_64 (every x86_64 has it); elsewhere the same from 8-byte words.
mod block {
    pub const LEN: usize = 64;

    /// Store `from` at `to` with a-z uppercased (no other byte changes); whether all of it is ASCII.
    ///
    /// # Safety
    /// `to` is valid for writes of `LEN` bytes.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub unsafe fn store_upper(from: &[u8; LEN], to: *mut u8) -> bool {
        use std::arch::x86_64::*;
        let mut high_bits = _mm_setzero_si128();
        for k in 0..LEN / 16 {
            // SAFETY: 16 bytes within `from`, and within `to` by the caller's promise.
            let bytes = _mm_loadu_si128(from.as_ptr().add(16 * k) as *const __m128i);
            // Moved by 0x1F, a..z are the 26 least signed bytes (0x80..0x99), and no other byte is.
            let lower = _mm_cmplt_epi8(_mm_add_epi8(bytes, _mm_set1_epi8(0x1F)), _mm_set1_epi8(-0x80 + 26));
            let upper = _mm_xor_si128(bytes, _mm_and_si128(lower, _mm_set1_epi8(0x20)));
            _mm_storeu_si128(to.add(16 * k) as *mut __m128i, upper);
            high_bits = _mm_or_si128(high_bits, bytes);
        }
        _mm_movemask_epi8(high_bits) == 0
    }

    /// The lead bytes (C0..FF) of `from`: bit k for byte k.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub fn leads(from: &[u8; LEN]) -> u64 {
        use std::arch::x86_64::*;
        let mut leads = 0;
        for k in 0..LEN / 16 {
            // SAFETY: SSE2 is part of x86_64, and the 16 bytes are within `from`.
            unsafe {
                let bytes = _mm_loadu_si128(from.as_ptr().add(16 * k) as *const __m128i);
                // Doubled, each byte has its bit 6 on top, where movemask takes it from.
                let [bit_7, bit_6] = [bytes, _mm_add_epi8(bytes, bytes)].map(|v| _mm_movemask_epi8(v) as u16);
                leads |= u64::from(bit_7 & bit_6) << (16 * k);
            }
        }
        leads
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub use portable::{leads, store_upper};

    /// The same from 8-byte words (also compiled for tests, which hold both to the same answers).
    #[cfg(any(test, not(target_arch = "x86_64")))]
    pub mod portable {
        use super::LEN;

        const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

        /// # Safety
        /// `to` is valid for writes of `LEN` bytes.
        pub unsafe fn store_upper(from: &[u8; LEN], to: *mut u8) -> bool {
            let mut high_bits = 0;
            for (k, word) in words(from).enumerate() {
                // SAFETY: within `to` by the caller's promise.
                std::ptr::write_unaligned(to.add(8 * k) as *mut u64, upper_ascii_word(word).to_le());
                high_bits |= word & HIGH_BITS;
            }
            high_bits == 0
        }

        pub fn leads(from: &[u8; LEN]) -> u64 {
            let mut leads = 0;
            for (k, word) in words(from).enumerate() {
                leads |= gather(word & (word << 1) & HIGH_BITS) << (8 * k);
            }
            leads
        }

        fn words(block: &[u8; LEN]) -> impl Iterator<Item = u64> + '_ {
            block.chunks_exact(8).map(|word| u64::from_le_bytes(word.try_into().unwrap()))
        }

        /// a-z -> A-Z in each ASCII byte of a word. The sums are of the low 7 bits of each byte, so no carry
        /// crosses into the next byte, and a byte >= 0x80 is left as it is.
        fn upper_ascii_word(word: u64) -> u64 {
            let low_bits = word & !HIGH_BITS;
            let at_least_a = low_bits + 0x1F1F_1F1F_1F1F_1F1F; // high bit set where the low bits >= 0x61
            let above_z = low_bits + 0x0505_0505_0505_0505; // high bit set where the low bits >= 0x7B
            word ^ ((at_least_a & !above_z & !word & HIGH_BITS) >> 2)
        }

        /// The top bits of a word's bytes (nothing else set) as 8 bits, bit k for byte k. The multiply moves
        /// bit 8k + 7 to bit 56 + k, and no two of its partial products meet, so nothing carries.
        fn gather(top_bits: u64) -> u64 {
            (top_bits >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
        }
    }
}

impl Transducer {
    pub fn new(table: &'static Table) -> Transducer {
        Transducer { table, tail: [0; 3], tail_len: 0 }
    }

    /// The held-back bytes (at most 3, D-2).
    #[cfg(test)]
    pub fn held(&self) -> &[u8] {
        &self.tail[..self.tail_len]
    }

    /// Append U(input) to `out`, holding back a possible-prefix tail (D-2). At most 3 bytes out per byte in
    /// (T-4), plus the 3 held back from before.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut i = 0;
        if self.tail_len > 0 {
            // Finish what started in the tail, on the tail plus at most 3 new bytes.
            let mut joined = [0u8; 6];
            let old = self.tail_len;
            let more = input.len().min(3);
            joined[..old].copy_from_slice(&self.tail[..old]);
            joined[old..old + more].copy_from_slice(&input[..more]);
            let joined = &joined[..old + more];
            let mut at = 0;
            self.tail_len = 0;
            while at < old {
                match scan(&joined[at..]) {
                    Scan::Char(len, code_point) => {
                        self.put(code_point, &joined[at..at + len], out);
                        at += len;
                    }
                    Scan::Invalid => {
                        out.push(joined[at]);
                        at += 1;
                    }
                    Scan::Incomplete => {
                        // Still a prefix: the input was too short to complete it, so all of it is held.
                        self.hold(&joined[at..]);
                        return;
                    }
                }
            }
            i = at - old;
        }
        self.feed_from(input, i, out);
    }

    /// The hot loop: U of `input[i..]` written straight into `out`'s spare capacity.
    ///
    /// Stores may run past what is kept: a character's output is one packed word (`table.rs`: up to 7 bytes
    /// and the length), written with one unaligned 8-byte store, and a block is stored whole before its
    /// characters are known. Lengths only advance by what is meant, and later stores overwrite the rest. So
    /// the loop reserves 3 bytes per input byte (T-4's bound) plus a block and 8 of slack.
    ///
    /// Two parts. While a block and 4 more bytes are left, each step stores the 64 bytes at `i` (a scan
    /// position) with a-z uppercased. If any is a lead byte (C0..FF), each is checked as the start of a whole
    /// well-formed sequence (continuation bytes past the block included) and looked up: two- and three-byte
    /// ones in the flat table, four-byte ones through `scan`. A replacement as long as the original is
    /// written over it with two overlapping two-byte stores that leave the bytes around it alone. A lead byte
    /// that starts no well-formed sequence, and bytes 80..BF that no sequence took, are bytes on their own,
    /// which T-3 copies: already stored as they are. After a replacement of another length, what follows in
    /// the block moves: each later character is stored whole, after the bytes since the one before it, copied
    /// again from the block uppercased. Walking the lead bytes by their mask keeps the loads of one character
    /// off the path to the next, and leaves about one unpredictable branch per block rather than one at every
    /// change of script. The last bytes go one at a time (a character at a time through `scan`, which also
    /// finds the held-back tail).
    fn feed_from(&mut self, input: &[u8], mut i: usize, out: &mut Vec<u8>) {
        let table = self.table;
        let n = input.len();
        out.reserve((n - i) * 3 + block::LEN + 8);
        let limit = out.len() + (n - i) * 3 + block::LEN + 8;
        let base = out.as_mut_ptr();
        let mut o = out.len();
        // SAFETY (for every store below): the output of what has been consumed (counting a block's bytes as
        // consumed as they are written) is at most 3 bytes per input byte (T-4), so wherever the next output
        // byte goes, `o + block::LEN + 8 <= limit <= capacity`; no store reaches further than that past it.
        let store = move |o: usize, word: u64| {
            debug_assert!(o + 8 <= limit);
            unsafe { std::ptr::write_unaligned(base.add(o) as *mut u64, word.to_le()) }
        };
        let store_pair = move |o: usize, pair: u16| {
            debug_assert!(o + 2 <= limit);
            unsafe { std::ptr::write_unaligned(base.add(o) as *mut u16, pair.to_le()) }
        };
        // `block::LEN` bytes from `from` (at least that long).
        let store_copy = move |o: usize, from: &[u8]| {
            debug_assert!(o + block::LEN <= limit);
            unsafe { std::ptr::copy_nonoverlapping(from[..block::LEN].as_ptr(), base.add(o), block::LEN) }
        };
        // What starts at the lead byte `window[at]` (C0..FF), as its length and U packed: a two- or three-byte
        // character from the flat table, anything else through `four_bytes_or_invalid` (4 bytes follow `at`).
        let at_lead = move |window: &[u8], at: usize| {
            let mut sequence = [0u8; 4];
            sequence.copy_from_slice(&window[at..at + 4]);
            match two_or_three_bytes(u32::from_le_bytes(sequence)) {
                Some((len, key)) => (len, table.bmp(key)),
                None => four_bytes_or_invalid(table, &window[at..]),
            }
        };
        if table.ascii_is_a_to_z {
            // The block uppercased, once what follows a character moves; a block of room after it for copies.
            let mut upper = [0u8; 2 * block::LEN];
            // 4 bytes past the block are read for a character that starts in its last byte.
            'blocks: while i + block::LEN + 4 <= n {
                let window = &input[i..i + block::LEN + 4];
                let bytes: &[u8; block::LEN] = window[..block::LEN].try_into().unwrap();
                // SAFETY: see `store`.
                if unsafe { block::store_upper(bytes, base.add(o)) } {
                    i += block::LEN;
                    o += block::LEN;
                    continue;
                }
                let mut starts = block::leads(bytes);
                let mut done = 0; // bytes of the block written (past it if its last character ends past it)
                while starts != 0 {
                    let at = starts.trailing_zeros() as usize;
                    let (len, packed) = at_lead(window, at);
                    if packed_len(packed) != len {
                        // Longer or shorter: what follows in the block moves (`o` is now where the output of
                        // block byte `at`, then `done`, goes).
                        // SAFETY: `upper` has room for a block.
                        unsafe { block::store_upper(bytes, upper.as_mut_ptr()) };
                        let (mut at, mut len, mut packed) = (at, len, packed);
                        o += at;
                        loop {
                            store(o, packed);
                            o += packed_len(packed);
                            done = at + len;
                            starts &= starts - 1;
                            if starts == 0 {
                                break;
                            }
                            at = starts.trailing_zeros() as usize;
                            store_copy(o, &upper[done..]);
                            o += at - done;
                            (len, packed) = at_lead(window, at);
                        }
                        if done < block::LEN {
                            store_copy(o, &upper[done..]);
                            o += block::LEN - done;
                            done = block::LEN;
                        }
                        i += done;
                        continue 'blocks;
                    }
                    // As long as the original: over it, as two overlapping two-byte stores, so that nothing
                    // around it changes. One byte is an invalid one, already stored as it is.
                    if len > 1 {
                        store_pair(o + at, packed as u16);
                        store_pair(o + at + len - 2, (packed >> (8 * (len - 2))) as u16);
                    }
                    done = at + len;
                    starts &= starts - 1;
                }
                let done = done.max(block::LEN);
                i += done;
                o += done;
            }
        }
        while i < n {
            let b0 = input[i];
            if b0 < 0x80 {
                store(o, u64::from(table.ascii[b0 as usize]));
                o += 1;
                i += 1;
                continue;
            }
            match scan(&input[i..]) {
                Scan::Char(len, code_point) => {
                    let packed = mapped(table, code_point, &input[i..i + len]);
                    store(o, packed);
                    o += packed_len(packed);
                    i += len;
                }
                Scan::Invalid => {
                    store(o, u64::from(b0));
                    o += 1;
                    i += 1;
                }
                Scan::Incomplete => {
                    self.hold(&input[i..]);
                    break;
                }
            }
        }
        debug_assert!(o <= limit - block::LEN - 8);
        // SAFETY: every byte below `o` was written above (or was there before).
        unsafe { out.set_len(o) };
    }

    /// One mapped character, for the tail path: the replacement, or the original bytes.
    fn put(&self, code_point: u32, original: &[u8], out: &mut Vec<u8>) {
        match self.table.packed(code_point) {
            0 => out.extend_from_slice(original),
            packed => out.extend_from_slice(&unpack(packed)),
        }
    }

    /// Keep `rest`, a possible prefix of a character, as the tail until more input or the end (D-2).
    fn hold(&mut self, rest: &[u8]) {
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    /// End of stream: the held-back tail passes through unchanged (E-1, T-3).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.tail[..self.tail_len]);
        self.tail_len = 0;
    }
}

/// U over a whole stream.
#[cfg(test)]
pub fn transform(table: &'static Table, input: &[u8]) -> Vec<u8> {
    let mut transducer = Transducer::new(table);
    let mut out = Vec::new();
    transducer.feed(input, &mut out);
    transducer.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> &'static Table {
        Box::leak(Box::new(Table::embedded()))
    }

    fn hex(text: &str) -> Vec<u8> {
        text.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
    }

    /// (id in spec/vectors/*.json, input, expected): a few of the language-neutral vectors.
    fn vectors() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
        vec![
            ("basic.json hello-world", b"Hello World\n".to_vec(), b"HELLO WORLD\n".to_vec()),
            ("special-casing.json sharp-s", "straße\n".into(), "STRASSE\n".into()),
            ("special-casing.json capital-sharp-s", "ẞ".into(), "ẞ".into()),
            ("special-casing.json latin-ligatures", "ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ".into(), "FF FI FL FFI FFL ST ST".into()),
            ("special-casing.json n-preceded-by-apostrophe", "ŉ".into(), "ʼN".into()),
            ("special-casing.json j-with-caron", "ǰ".into(), "J\u{030c}".into()),
            ("special-casing.json greek-ypogegrammeni", "ᾳ ῃ ῳ".into(), "ΑΙ ΗΙ ΩΙ".into()),
            ("growth: ΐ 2 bytes to 6", "ΐ".into(), "\u{0399}\u{0308}\u{0301}".into()),
            ("letters: dotless i, micro, Deseret, Georgian, Cherokee", "ı µ 𐐨 ა ꭰ".into(), "I Μ 𐐀 Ა Ꭰ".into()),
            ("T-5: i under every locale", "istanbul İ".into(), "ISTANBUL İ".into()),
            ("astral: emoji maps to itself", "😀".into(), "😀".into()),
            ("invalid-utf8.json: truncated then ASCII (T-3)", hex("e2 82 41"), hex("e2 82 41")),
            ("invalid-utf8.json: truncated then lowercase (T-3)", hex("e2 82 61"), hex("e2 82 41")),
            ("invalid-utf8.json: overlong", hex("c0 af 61"), hex("c0 af 41")),
            ("invalid-utf8.json: surrogate", hex("ed a0 80 62"), hex("ed a0 80 42")),
            ("invalid-utf8.json: above 10FFFF", hex("f4 90 80 80 63"), hex("f4 90 80 80 43")),
            ("invalid-utf8.json: lone continuation and FF", hex("80 ff 64"), hex("80 ff 44")),
            ("E-1: tail at end of stream", hex("61 f0 90 90"), hex("41 f0 90 90")),
        ]
    }

    #[test]
    fn vectors_whole() {
        let table = table();
        for (id, input, expected) in vectors() {
            assert_eq!(transform(table, &input), expected, "{}", id);
        }
    }

    #[test]
    fn vectors_split_at_every_position_and_byte_by_byte() {
        let table = table();
        for (id, input, expected) in vectors() {
            for cut in 0..=input.len() {
                let mut transducer = Transducer::new(table);
                let mut out = Vec::new();
                transducer.feed(&input[..cut], &mut out);
                transducer.feed(&input[cut..], &mut out);
                transducer.finish(&mut out);
                assert_eq!(out, expected, "{} cut at {}", id, cut);
            }
            let mut transducer = Transducer::new(table);
            let mut out = Vec::new();
            for byte in &input {
                transducer.feed(std::slice::from_ref(byte), &mut out);
                assert!(transducer.held().len() <= 3);
            }
            transducer.finish(&mut out);
            assert_eq!(out, expected, "{} byte by byte", id);
        }
    }

    #[test]
    fn blocks_uppercase_a_to_z_only_and_find_the_lead_bytes() {
        type StoreUpper = unsafe fn(&[u8; block::LEN], *mut u8) -> bool;
        type Leads = fn(&[u8; block::LEN]) -> u64;
        let ways: [(StoreUpper, Leads); 2] =
            [(block::store_upper, block::leads), (block::portable::store_upper, block::portable::leads)];
        // Every byte value at every position, among ASCII bytes and among bytes of every kind.
        for spread in [|k: usize| (k * 7 + 0x5B) as u8 & 0x7F, |k: usize| (k * 37 + 11) as u8] {
            for b in 0..=255u8 {
                for position in 0..block::LEN {
                    let mut bytes = [0u8; block::LEN];
                    for (k, byte) in bytes.iter_mut().enumerate() {
                        *byte = if k == position { b } else { spread(k) };
                    }
                    let upper = bytes.map(|byte| byte.to_ascii_uppercase());
                    let leads = (0..block::LEN).filter(|&k| bytes[k] >= 0xC0).fold(0, |mask, k| mask | 1 << k);
                    for (store_upper, find_leads) in ways {
                        let mut stored = [0u8; block::LEN];
                        // SAFETY: `stored` has room for a block.
                        let ascii = unsafe { store_upper(&bytes, stored.as_mut_ptr()) };
                        let found = (stored, ascii, find_leads(&bytes));
                        assert_eq!(found, (upper, bytes.is_ascii(), leads), "{:x?}", bytes);
                    }
                }
            }
        }
    }

    #[test]
    fn characters_at_every_position_of_a_block() {
        let table = table();
        for (id, input, _) in vectors() {
            for before in 0..block::LEN + 4 {
                let mut long = vec![b'x'; before];
                long.extend_from_slice(&input);
                long.extend_from_slice(&[b'y'; 2 * block::LEN]);
                assert_eq!(transform(table, &long), oracle(table, &long), "{} after {} bytes", id, before);
            }
        }
    }

    #[test]
    fn holds_back_only_a_possible_prefix() {
        let table = table();
        let mut transducer = Transducer::new(table);
        let mut out = Vec::new();
        transducer.feed(b"abc\xf0\x90", &mut out);
        assert_eq!((out.as_slice(), transducer.held()), (&b"ABC"[..], &b"\xf0\x90"[..]));
        out.clear();
        transducer.feed(b"\x90\xa8", &mut out);
        assert_eq!(out, "𐐀".as_bytes());
        for never in [&b"\xe0\x80"[..], b"\xed\xa0", b"\xf4\x90", b"\xc1"] {
            out.clear();
            transducer.feed(never, &mut out);
            assert_eq!((out.as_slice(), transducer.held()), (never, &b""[..]));
        }
    }

    /// A naive oracle of T-2/T-3 over char decoding, for long generated inputs.
    fn oracle(table: &Table, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < input.len() {
            let mut done = false;
            for len in 1..=4 {
                if let Some(piece) = input.get(i..i + len) {
                    if let Ok(text) = std::str::from_utf8(piece) {
                        let c = text.chars().next().unwrap() as u32;
                        match table.get(c) {
                            Some(mapped) => out.extend_from_slice(&mapped),
                            None => out.extend_from_slice(piece),
                        }
                        i += len;
                        done = true;
                        break;
                    }
                }
            }
            if !done {
                out.push(input[i]);
                i += 1;
            }
        }
        out
    }

    #[test]
    fn agrees_with_a_naive_oracle_on_generated_streams() {
        let table = table();
        #[rustfmt::skip] // a table of inputs, kept dense
        let alphabet: Vec<&[u8]> = vec![
            b"a", b"Z", b" ", b"\n", "ß".as_bytes(), "ΐ".as_bytes(), "𐐨".as_bytes(), "€".as_bytes(), b"\xe2\x82",
            b"\xf0\x90", b"\x80", b"\xff", b"\xed\xa0\x80", "ǅ".as_bytes(), "plain ascii run ".as_bytes(),
            "ﬁ".as_bytes(), "ა".as_bytes(), "ꭰ".as_bytes(), "я".as_bytes(), "\u{800}".as_bytes(), "\u{ffff}".as_bytes(),
            b"\xe0\xa0\x80", b"\xe0\x9f\x80", b"\xe0\x81\xa1", b"\xc1\xa1", b"\xed\x9f\xbf", b"\xc2\x80", b"\xc1\xbf", b"\xdf\xbf",
        ];
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for round in 0..3000 {
            let mut input = Vec::new();
            for _ in 0..next(if round % 10 == 0 { 400 } else { 60 }) {
                input.extend_from_slice(alphabet[next(alphabet.len())]);
            }
            let expected = oracle(table, &input);
            let mut transducer = Transducer::new(table);
            let mut out = Vec::new();
            let mut at = 0;
            while at < input.len() {
                let step = 1 + next(if round % 2 == 0 { 7 } else { 300 });
                let end = (at + step).min(input.len());
                transducer.feed(&input[at..end], &mut out);
                at = end;
            }
            transducer.finish(&mut out);
            assert_eq!(out, expected, "input {:x?}", input);
        }
    }
}
