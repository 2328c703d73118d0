//! The transform U of spec/PROTOCOL.md as a streaming transducer: sans-I/O, no sockets, no files.
//!
//! `feed` appends to `out` the transform of everything it was given except a held-back tail (D-2): the
//! incomplete end of the input, only while it is a proper prefix of some well-formed sequence (at most 3
//! bytes). `finish` appends that tail unchanged at end of stream (E-1, T-3).
//!
//! Scanning (T-2, T-3): from the current byte, a well-formed sequence of Unicode Table 3-7 is mapped through
//! the table (T-4) and skipped; any other byte is copied and the scan moves one byte on. ASCII runs take a
//! fast path: eight bytes are tested at a time, and when the table's ASCII part is exactly a-z -> A-Z (it is,
//! checked when the table is loaded) they are uppercased with arithmetic the compiler vectorizes. Two- and
//! three-byte characters are decoded from the same 8-byte word and looked up directly (`feed_from`).

use crate::table::{packed_len, unpack, Table};

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

/// Whether the bottom two bytes of `word` (little-endian) are C2..DF 80..BF, a well-formed two-byte sequence.
#[inline(always)]
fn is_two_byte(word: u64) -> bool {
    word & 0xC0E0 == 0x80C0 && word & 0x1E != 0
}

/// Whether the three bytes E0..EF 80..BF 80..BF at the bottom of `word` (little-endian) are well-formed: not
/// overlong (E0 80..9F) and not a surrogate (ED A0..BF).
#[inline]
fn three_byte_is_well_formed(word: u32) -> bool {
    let b1 = (word >> 8) & 0xFF;
    match word & 0xFF {
        0xE0 => b1 >= 0xA0,
        0xED => b1 <= 0x9F,
        _ => true,
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

/// The 8 bytes at the start of `bytes`, little-endian.
#[inline(always)]
fn load_word(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// a-z -> A-Z in each byte of a word of ASCII bytes (no other byte changes). A byte >= 0x80 may carry into
/// the bytes after it, never into those before it: the caller keeps only the bytes before the first one.
#[inline]
fn upper_ascii_word(word: u64) -> u64 {
    let at_least_a = word.wrapping_add(0x1F1F_1F1F_1F1F_1F1F); // high bit set where byte >= 0x61
    let above_z = word.wrapping_add(0x0505_0505_0505_0505); // high bit set where byte >= 0x7B
    word ^ ((at_least_a & !above_z & HIGH_BITS) >> 2)
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
    /// Every character's output is one packed word (`table.rs`: up to 7 bytes and the length), written with
    /// one unaligned 8-byte store that may run up to 7 bytes past what is kept (the length only advances by
    /// what is meant). So the loop reserves 3 bytes per input byte (T-4's bound) plus 8 of slack, and every
    /// store is within that reservation.
    ///
    /// Two parts. While at least 8 bytes are left, each step reads one 8-byte word at `i`: eight ASCII bytes
    /// are uppercased at once; otherwise the ASCII bytes before the first other one are, or the character
    /// starting at `i` is decoded from the word itself (it is complete: a sequence is at most 4 bytes). The
    /// common characters (two- and three-byte sequences) are told apart by branches, not arithmetic, so that
    /// the position of the next step does not wait for the loads of this one. The last bytes, and anything
    /// else, go one character at a time through `scan`, which also finds the held-back tail.
    fn feed_from(&mut self, input: &[u8], mut i: usize, out: &mut Vec<u8>) {
        let table = self.table;
        let n = input.len();
        out.reserve((n - i) * 3 + 8);
        let limit = out.len() + (n - i) * 3 + 8;
        let base = out.as_mut_ptr();
        let mut o = out.len();
        // SAFETY (for every store below): `o` only grows by at most 3 per input byte consumed (T-4), so
        // `o + 8 <= limit <= capacity` before each store.
        let store = |o: usize, word: u64| {
            debug_assert!(o + 8 <= limit);
            unsafe { std::ptr::write_unaligned(base.add(o) as *mut u64, word.to_le()) }
        };
        if table.ascii_is_a_to_z {
            'words: while i + 8 <= n {
                let mut word = load_word(&input[i..]);
                if word & 0x80 == 0 {
                    // ASCII, eight bytes at a time while all eight are; then the bytes before the first other
                    // one (the store is right for those, and later stores overwrite the rest).
                    loop {
                        store(o, upper_ascii_word(word));
                        let high = word & HIGH_BITS;
                        if high != 0 {
                            let ascii = (high.trailing_zeros() / 8) as usize;
                            i += ascii;
                            o += ascii;
                            break;
                        }
                        i += 8;
                        o += 8;
                        if i + 8 > n {
                            break 'words;
                        }
                        word = load_word(&input[i..]);
                    }
                    if i + 8 > n {
                        break;
                    }
                    word = load_word(&input[i..]);
                }
                // A character that is not ASCII starts at i, and all of it is in `word`.
                if is_two_byte(word) {
                    // C2..DF 80..BF: two-byte sequences, while they last; `small` holds the mapping of every one.
                    loop {
                        let packed = table.small(((word as u32 & 0x1F) << 6) | ((word as u32 >> 8) & 0x3F));
                        store(o, packed);
                        o += packed_len(packed);
                        i += 2;
                        if i + 8 > n {
                            break;
                        }
                        word = load_word(&input[i..]);
                        if !is_two_byte(word) {
                            continue 'words;
                        }
                    }
                    break;
                }
                let packed = if word & 0xC0_C0F0 == 0x80_80E0 && three_byte_is_well_formed(word as u32) {
                    i += 3;
                    let code_point =
                        ((word as u32 & 0x0F) << 12) | ((word as u32 >> 2) & 0xFC0) | ((word as u32 >> 16) & 0x3F);
                    mapped(table, code_point, &input[i - 3..i])
                } else {
                    match scan(&input[i..]) {
                        Scan::Char(len, code_point) => {
                            i += len;
                            mapped(table, code_point, &input[i - len..i])
                        }
                        Scan::Invalid | Scan::Incomplete => {
                            i += 1; // (never incomplete with 8 bytes left)
                            (word & 0xFF) | 1 << 56
                        }
                    }
                };
                store(o, packed);
                o += packed_len(packed);
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
        debug_assert!(o <= limit - 8);
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
    fn ascii_words_change_a_to_z_only_and_keep_the_bytes_before_a_non_ascii_one() {
        for b in 0..=255u8 {
            for position in 0..8 {
                let mut bytes = *b"azAZ@[`{";
                bytes[position] = b;
                let word = upper_ascii_word(u64::from_le_bytes(bytes)).to_le_bytes();
                let kept = bytes.iter().position(|&x| x >= 0x80).unwrap_or(8);
                let expected: Vec<u8> =
                    bytes.iter().map(|&x| if x.is_ascii_lowercase() { x - 32 } else { x }).collect();
                assert_eq!(word[..kept], expected[..kept], "byte {:#04x} at {}", b, position);
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
